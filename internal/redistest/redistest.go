// Package redistest runs Debian's redis-server for tests and benchmarks: on loopback in the test
// process's own network namespace, or inside a namespace made by internal/nstest, with its own
// temporary directory, no persistence, and stopped by PID.
//
// Start waits for the "Ready to accept connections" line (a Sentinel's "+monitor master"). Stop
// kills the process (SIGKILL, an outage as the gateways see it) and Restart starts a new, empty
// one on the same address and port. Cli runs redis-cli against it from the same namespace.
// Without redis-server, Require skips the test, or fails it under CI=true (nstest.InCI). Launch
// starts one outside a test (a package's shared server, from TestMain).
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// Require skips t unless redis-server and redis-cli are installed (under CI=true it fails it).
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	for _, b := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	if nstest.InCI() {
		t.Fatalf("this test needs %v, missing under CI (apt-get install redis-server)", missing)
	}
	t.Skipf("needs %v (apt-get install redis-server)", missing)
}

// Options configure Start.
type Options struct {
	// NS is the namespace to run in; nil runs in the test process's own namespace.
	NS *nstest.NS
	// Addr is the address to bind (default 127.0.0.1).
	Addr string
	// Port is the TCP port; 0 picks a free one on loopback, and 6379 in a namespace.
	Port int
	// Args are more redis-server arguments ("--requirepass", "x", ...).
	Args []string
	// Dir is the server's working directory (default: a t.TempDir; Launch needs it).
	Dir string
	// TLS, when set, makes the server serve TLS only: Port is the TLS port (--tls-port) and the
	// plain port is off (--port 0). Cli does not speak TLS.
	TLS *TLSFiles
	// Sentinel, when set, is the path of a sentinel configuration file: the server runs as a
	// Sentinel on Port and is ready once it monitors a master (the file must name one). The
	// file must be writable: Sentinel rewrites it.
	Sentinel string
}

// TLSFiles are the PEM files of a TLS server.
type TLSFiles struct {
	Cert, Key string // the server's certificate and private key
	CA        string // the CA that signs the client certificates Redis requires
}

// Server is one redis-server process (or none, between Stop and Restart).
type Server struct {
	Addr string // bound address
	Port int

	ns       *nstest.NS
	dir      string
	args     []string
	tls      *TLSFiles
	sentinel string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *bytes.Buffer
	omu  *sync.Mutex
}

// Start starts redis-server for t and stops it when t ends. It fails t if the server does not
// report ready within 20 s.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	Require(t)
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	s, err := newServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// Launch starts redis-server outside a test, in o.Dir (which must be set), and returns once it
// is ready. The caller stops it with Stop and removes o.Dir. It returns an error if o.Dir is
// empty, no port is free, or the server exits or is not ready within 20 s.
func Launch(o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("redistest: Launch needs Options.Dir")
	}
	s, err := newServer(o)
	if err != nil {
		return nil, err
	}
	return s, s.start()
}

func newServer(o Options) (*Server, error) {
	s := &Server{Addr: o.Addr, Port: o.Port, ns: o.NS, dir: o.Dir, args: o.Args, tls: o.TLS, sentinel: o.Sentinel}
	if s.Addr == "" {
		s.Addr = "127.0.0.1"
	}
	if s.Port == 0 {
		if s.ns != nil {
			s.Port = 6379
		} else {
			p, err := FreePort()
			if err != nil {
				return nil, fmt.Errorf("redistest: %w", err)
			}
			s.Port = p
		}
	}
	return s, nil
}

// FreePort returns a TCP port free on 127.0.0.1 at the time of the call.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// HostPort is "ADDR:PORT".
func (s *Server) HostPort() string { return net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)) }

// URL is a redis:// URL for the server.
func (s *Server) URL() string { return "redis://" + s.HostPort() }

// PID is the running process's id (0 when stopped).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	if s.ns != nil {
		return s.ns.Command(name, args...)
	}
	return exec.Command(name, args...)
}

// serverArgs are the redis-server arguments.
func (s *Server) serverArgs() []string {
	port := strconv.Itoa(s.Port)
	if s.sentinel != "" {
		return append([]string{s.sentinel, "--sentinel", "--port", port, "--bind", s.Addr, "--protected-mode", "no"}, s.args...)
	}
	var tls []string
	if s.tls != nil {
		tls = []string{"--tls-port", port, "--tls-cert-file", s.tls.Cert, "--tls-key-file", s.tls.Key,
			"--tls-ca-cert-file", s.tls.CA}
		port = "0"
	}
	args := []string{"--port", port, "--bind", s.Addr, "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--logfile", "", "--protected-mode", "no"}
	return append(append(args, tls...), s.args...)
}

func (s *Server) start() error {
	args := s.serverArgs()
	ready := "Ready to accept connections"
	if s.sentinel != "" {
		ready = "+monitor master"
	}
	cmd := s.command("redis-server", args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives the test process
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redis-server: %w", err)
	}
	out, omu := &bytes.Buffer{}, &sync.Mutex{}
	readyc := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		var once sync.Once
		for sc.Scan() {
			omu.Lock()
			out.WriteString(sc.Text() + "\n")
			omu.Unlock()
			if strings.Contains(sc.Text(), ready) {
				once.Do(func() { close(readyc) })
			}
		}
		io.Copy(io.Discard, pr)
	}()
	done := make(chan struct{})
	var werr error
	go func() { werr = cmd.Wait(); pw.Close(); close(done) }()
	log := func() string { omu.Lock(); defer omu.Unlock(); return out.String() }
	select {
	case <-readyc:
		s.mu.Lock()
		s.cmd, s.done, s.out, s.omu = cmd, done, out, omu
		s.mu.Unlock()
		return nil
	case <-done:
		return fmt.Errorf("redis-server %v exited (%v):\n%s", args, werr, log())
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server %v not ready after 20 s:\n%s", args, log())
	}
}

// Stop kills the server by PID (SIGKILL: no goodbye to its clients) and waits for it to exit.
// It does nothing when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts a new, empty server on the same address and port (after Stop).
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Log returns the output of the latest process.
func (s *Server) Log() string {
	s.mu.Lock()
	out, omu := s.out, s.omu
	s.mu.Unlock()
	if out == nil {
		return ""
	}
	omu.Lock()
	defer omu.Unlock()
	return out.String()
}

// Cli runs "redis-cli -h ADDR -p PORT args..." in the server's namespace and returns its
// output, trimmed. redis-cli exits 0 for a command Redis answers with an error (check the
// output); Cli fails t if it exits otherwise (no server, for one).
func (s *Server) Cli(t testing.TB, args ...string) string {
	t.Helper()
	cmd := s.command("redis-cli", append([]string{"-h", s.Addr, "-p", strconv.Itoa(s.Port)}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %q: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

package fwknoptest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// DefaultPort is fwknop's SPA port.
const DefaultPort = 62201

// ServerOptions configure StartServer.
type ServerOptions struct {
	// Access is the access.conf text: one or more stanzas, each starting with SOURCE. A
	// packet is tried against every stanza whose SOURCE matches, in file order, until one
	// accepts it; the log names the stanza by number ("(stanza #2)"). Required.
	Access string
	// Config holds extra fwknopd.conf lines ("ENABLE_IPT_FORWARDING Y;"), appended after
	// the harness's own lines (later lines win).
	Config []string
	// TestMode runs fwknopd with -t: packets are decoded and checked but no firewall rule
	// is added (the log still says what it would do).
	TestMode bool
	// PCAPIntf switches from UDP-server mode (the default: a plain socket on Port, bound
	// to 0.0.0.0) to pcap capture on this interface of the namespace.
	PCAPIntf string
	// Port is the UDP port; 0 means DefaultPort.
	Port int
	// Verbose is the number of -v flags; 0 means 2, the level at which fwknopd logs each
	// packet and the field dump of every packet it decodes (Events needs that).
	Verbose int
	// StartTimeout bounds the wait for fwknopd to become ready; 0 means 10 s.
	StartTimeout time.Duration
}

// Server is a real fwknopd running in the foreground inside a namespace. Its configuration,
// run directory and log live in Dir. It is stopped (SIGTERM by PID, then SIGKILL) when the
// test ends, or earlier by Stop; on SIGTERM fwknopd removes its iptables chains.
type Server struct {
	NS      *nstest.NS
	Dir     string // config files (mode 600), run/ (PID file, digest cache) and fwknopd.log
	LogPath string
	Port    int
	PID     int

	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// StartServer writes fwknopd.conf and access.conf (mode 600) to a temporary directory,
// starts "fwknopd -f -v -v -c ... -a ..." inside ns with its output in LogPath, and waits
// until it listens ("Kicking off UDP server" / "Starting fwknopd main event loop"). It fails
// t if fwknopd exits or does not become ready. The namespace's default INPUT policy accepts
// everything, so UDP-server mode receives packets without extra rules; fwknopd creates its
// FWKNOP_* chains with the namespace's iptables (nf_tables backend here).
func StartServer(t testing.TB, ns *nstest.NS, opts ServerOptions) *Server {
	t.Helper()
	nstest.Require(t, "fwknopd", "iptables")
	if opts.Access == "" {
		t.Fatal("fwknoptest.StartServer: ServerOptions.Access is empty")
	}
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Verbose == 0 {
		opts.Verbose = 2
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 10 * time.Second
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := []string{
		"FWKNOP_RUN_DIR " + run + ";",
		"FWKNOP_PID_FILE " + filepath.Join(run, "fwknopd.pid") + ";",
		"DIGEST_FILE " + filepath.Join(run, "digest.cache") + ";",
		"FIREWALL_EXE /usr/sbin/iptables;",
	}
	ready := "Kicking off UDP server"
	if opts.PCAPIntf != "" {
		conf = append(conf, "PCAP_INTF "+opts.PCAPIntf+";",
			"PCAP_FILTER udp port "+strconv.Itoa(opts.Port)+";")
		ready = "Starting fwknopd main event loop"
	} else {
		conf = append(conf, "ENABLE_UDP_SERVER Y;", "UDPSERV_PORT "+strconv.Itoa(opts.Port)+";")
	}
	conf = append(conf, opts.Config...)
	confPath := filepath.Join(dir, "fwknopd.conf")
	accessPath := filepath.Join(dir, "access.conf")
	writeFile(t, confPath, strings.Join(conf, "\n")+"\n")
	writeFile(t, accessPath, opts.Access+"\n")

	s := &Server{NS: ns, Dir: dir, LogPath: filepath.Join(dir, "fwknopd.log"), Port: opts.Port,
		done: make(chan struct{})}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", "-c", confPath, "-a", accessPath}
	for range opts.Verbose {
		args = append(args, "-v")
	}
	if opts.TestMode {
		args = append(args, "-t")
	}
	s.cmd = ns.Command("fwknopd", args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start fwknopd: %v", err)
	}
	logf.Close()
	s.PID = s.cmd.Process.Pid
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.Stop(t) })

	deadline := time.Now().Add(opts.StartTimeout)
	for !strings.Contains(s.Log(), ready) {
		select {
		case <-s.done:
			t.Fatalf("fwknopd exited during start (%v); log:\n%s", s.cmd.ProcessState, s.Log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("fwknopd not ready after %v; log:\n%s", opts.StartTimeout, s.Log())
		}
	}
	return s
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Log returns fwknopd's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Exited reports whether the fwknopd process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// WaitLog waits until fwknopd's log holds at least n lines containing substr and returns
// those lines. It fails t on timeout or if fwknopd exits first.
func (s *Server) WaitLog(t testing.TB, substr string, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var hits []string
		for _, l := range strings.Split(s.Log(), "\n") {
			if strings.Contains(l, substr) {
				hits = append(hits, l)
			}
		}
		if len(hits) >= n {
			return hits
		}
		if s.Exited() {
			t.Fatalf("fwknopd exited while waiting for %d × %q; log:\n%s", n, substr, s.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %d × %q in fwknopd's log, saw %d; log tail:\n%s",
				timeout, n, substr, len(hits), tail(s.Log(), 60))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitEvents waits until done(events) is true for the parsed log and returns the events. It
// fails t on timeout or if fwknopd exits first.
func (s *Server) WaitEvents(t testing.TB, timeout time.Duration, done func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	size := -1
	for {
		// The log can grow to megabytes; parse it only when it changed.
		if log := s.Log(); len(log) != size {
			size = len(log)
			if ev := ParseLog(log); done(ev) {
				return ev
			}
		}
		if s.Exited() {
			t.Fatalf("fwknopd exited while waiting for events; log:\n%s", tail(s.Log(), 80))
		}
		if time.Now().After(deadline) {
			t.Fatalf("fwknopd events not complete after %v; log tail:\n%s", timeout, tail(s.Log(), 80))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Send sends each packet as one UDP datagram from inside the namespace to 127.0.0.1:Port
// (fwknopd sees source 127.0.0.1). Packets go out in order with no pacing; fwknopd's socket
// buffer holds about 160 of them.
func (s *Server) Send(t testing.TB, packets ...[]byte) {
	t.Helper()
	err := s.NS.Do(t, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range packets {
			if _, err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send to fwknopd: %v", err)
	}
}

// Rules returns fwknopd's rules in one iptables chain of the namespace as "iptables -S"
// lines starting with "-A" (for example "-A FWKNOP_INPUT -s 10.99.0.2/32 -p tcp -m tcp
// --dport 22 -m comment --comment _exp_1795432117 -j ACCEPT"). table is "filter" or "nat";
// chain is FWKNOP_INPUT, FWKNOP_FORWARD, FWKNOP_PREROUTING, ... A missing chain gives nil.
func (s *Server) Rules(t testing.TB, table, chain string) []string {
	t.Helper()
	out, err := s.NS.Command("iptables", "-t", table, "-S", chain).CombinedOutput()
	if err != nil {
		// iptables-nft reports a missing chain in several ways ("No chain", "does not
		// exist", "is incompatible"); tell a missing chain from a real failure by listing
		// the table's chains.
		all, err2 := s.NS.Command("iptables", "-t", table, "-S").CombinedOutput()
		if err2 == nil && !strings.Contains("\n"+string(all), "\n-N "+chain+"\n") {
			return nil
		}
		t.Fatalf("iptables -t %s -S %s: %v\n%s", table, chain, err, out)
	}
	var rules []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") {
			rules = append(rules, l)
		}
	}
	return rules
}

// InputRules is Rules(t, "filter", "FWKNOP_INPUT").
func (s *Server) InputRules(t testing.TB) []string { return s.Rules(t, "filter", "FWKNOP_INPUT") }

// Stop sends SIGTERM to fwknopd by PID and waits for it (SIGKILL after 5 s). It is safe to
// call more than once; the test's cleanup calls it too.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.once.Do(func() {
		if s.Exited() {
			return
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Errorf("fwknopd (pid %d) ignored SIGTERM for 5 s; killing it", s.PID)
			s.cmd.Process.Kill()
			<-s.done
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprint(strings.Join(lines, "\n"))
}

// DigestCache returns the digests in fwknopd's replay cache file (the first field of each
// line; the header comment is skipped). fwknopd stores base64(SHA-256(wire)) without '=',
// which spa.ReplayDigest computes. Test mode (-t) stores nothing.
func (s *Server) DigestCache(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "run", "digest.cache"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatalf("read digest cache: %v", err)
	}
	var ds []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			ds = append(ds, f[0])
		}
	}
	return ds
}

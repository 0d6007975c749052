package sesametest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// ServerOptions configure StartServer.
type ServerOptions struct {
	// Config is the fwknopd.conf text. StartServer writes it after its own run-directory
	// lines (FWKNOP_RUN_DIR, FWKNOP_PID_FILE, DIGEST_FILE), so later lines win.
	Config string
	// Access is the access.conf text, written as given.
	Access string
	// Args are extra arguments after "sesame server -f -c CONF -a ACCESS".
	Args []string
	// StartTimeout bounds the wait for "sesame server started"; 0 means 10 s.
	StartTimeout time.Duration
}

// Server is a "sesame server -f" process inside a namespace. Its configuration files, run
// directory and log live in Dir. The test's cleanup stops it (SIGTERM by PID, SIGKILL after
// 5 s) and, if the test failed, logs its output.
type Server struct {
	NS      *nstest.NS
	Dir     string // fwknopd.conf, access.conf (mode 600), run/ and sesame.log
	Conf    string // path of fwknopd.conf
	Access  string // path of access.conf
	LogPath string // stdout and stderr of every start, appended
	PID     int    // of the latest start

	args    []string
	timeout time.Duration
	cmd     *exec.Cmd
	done    chan struct{}
}

// StartServer writes the configuration files into a new directory, starts sesame server in
// ns and waits until it logs "sesame server started". It fails t if the server exits first or
// does not start within opts.StartTimeout.
func StartServer(t testing.TB, ns *nstest.NS, opts ServerOptions) *Server {
	t.Helper()
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Server{NS: ns, Dir: dir, Conf: filepath.Join(dir, "fwknopd.conf"),
		Access: filepath.Join(dir, "access.conf"), LogPath: filepath.Join(dir, "sesame.log"),
		args: opts.Args, timeout: opts.StartTimeout}
	if s.timeout == 0 {
		s.timeout = 10 * time.Second
	}
	conf := fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n%s",
		run, run, run, opts.Config)
	WriteFile(t, s.Conf, conf)
	WriteFile(t, s.Access, opts.Access)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sesame server log (%s):\n%s", s.LogPath, s.Log())
		}
	})
	s.Restart(t)
	return s
}

// Restart starts the server again with the same files and arguments plus args (after Stop,
// or after the process ended by itself), appending to the log, and waits until it logs that
// it started. The previous process must have exited.
func (s *Server) Restart(t testing.TB, args ...string) {
	t.Helper()
	if s.cmd != nil && !s.Exited() {
		t.Fatalf("sesame server restart: pid %d still running", s.PID)
	}
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := len(s.Log())
	all := append([]string{"server", "-f", "-c", s.Conf, "-a", s.Access}, s.args...)
	cmd := s.NS.Command(nstest.Binary(t), append(all, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sesame server: %v", err)
	}
	done := make(chan struct{})
	s.cmd, s.done, s.PID = cmd, done, cmd.Process.Pid
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { s.Stop(t, syscall.SIGTERM) })
	deadline := time.Now().Add(s.timeout)
	for !strings.Contains(s.Log()[before:], "sesame server started") {
		if time.Now().After(deadline) {
			t.Fatalf("sesame server did not start within %v:\n%s", s.timeout, s.Log())
		}
		select {
		case <-done:
			t.Fatalf("sesame server exited at start:\n%s", s.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Stop sends sig to the latest process by PID and waits for it to exit; if it has not after
// 5 s, Stop kills it and fails t. It does nothing if the process has already exited.
func (s *Server) Stop(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.cmd == nil || s.Exited() {
		return
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("sesame server (pid %d) did not stop on %v", s.PID, sig)
	}
}

// Done is closed when the latest process exits.
func (s *Server) Done() <-chan struct{} { return s.done }

// Exited reports whether the latest process has exited.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Log returns the server's output so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// LogLines returns the log lines that contain every one of substrs.
func (s *Server) LogLines(substrs ...string) []string {
	var hits []string
	for _, l := range strings.Split(s.Log(), "\n") {
		ok := true
		for _, sub := range substrs {
			ok = ok && strings.Contains(l, sub)
		}
		if ok {
			hits = append(hits, l)
		}
	}
	return hits
}

// WaitLog waits until the log holds n lines containing every one of substrs and returns
// those lines. It fails t, showing the log, if that takes longer than timeout.
func (s *Server) WaitLog(t testing.TB, n int, timeout time.Duration, substrs ...string) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if hits := s.LogLines(substrs...); len(hits) >= n {
			return hits
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %d log line(s) with %q within %v:\n%s", n, substrs, timeout, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Ctl runs "sesame server -c CONF -a ACCESS args..." in the server's namespace (a control
// command such as -R, -S, -K or --fw-list) and returns its output. It fails t if the command
// fails.
func (s *Server) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	cmd := s.NS.Command(nstest.Binary(t), append([]string{"server", "-c", s.Conf, "-a", s.Access}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame server %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// FWList runs "sesame server --fw-list" and returns the live grants, keyed "ADDR PROTO/PORT",
// with the time each has left. Comment lines (starting with '#') are skipped; any other line
// not of the form "ADDR PROTO/PORT expires in DURATION" fails t.
func (s *Server) FWList(t testing.TB) map[string]time.Duration {
	t.Helper()
	grants, err := ParseFWList(s.Ctl(t, "--fw-list"))
	if err != nil {
		t.Fatal(err)
	}
	return grants
}

// ParseFWList parses the output of "sesame server --fw-list" as FWList describes.
func ParseFWList(out string) (map[string]time.Duration, error) {
	grants := map[string]time.Duration{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		grant, exp, ok := strings.Cut(l, " expires in ")
		d, err := time.ParseDuration(exp)
		if !ok || err != nil {
			return nil, fmt.Errorf("--fw-list line %q: not \"GRANT expires in DURATION\" (%v):\n%s", l, err, out)
		}
		grants[grant] = d
	}
	return grants, nil
}

// WriteFile writes text to path with mode 600, failing t on error.
func WriteFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

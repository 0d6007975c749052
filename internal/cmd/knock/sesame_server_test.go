package knock

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// sesameServer is a "sesame server -f" process started by a test inside a namespace (a
// minimal copy of internal/cmd/server's test harness, whose test files cannot be imported).
type sesameServer struct {
	t       *testing.T
	ns      *nstest.NS
	conf    string
	access  string
	logPath string
}

// startSesameServer writes fwknopd.conf (serverConf after the run-dir settings) and
// access.conf into a new directory, starts sesame server in ns (stopped by PID at cleanup)
// and waits until it logs that it started.
func startSesameServer(t *testing.T, ns *nstest.NS, serverConf, accessConf string) *sesameServer {
	t.Helper()
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &sesameServer{t: t, ns: ns, conf: filepath.Join(dir, "fwknopd.conf"),
		access: filepath.Join(dir, "access.conf"), logPath: filepath.Join(dir, "sesame.log")}
	full := fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n%s",
		run, run, run, serverConf)
	for path, text := range map[string]string{s.conf: full, s.access: accessConf} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command(nstest.Binary(t), "server", "-f", "-c", s.conf, "-a", s.access)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sesame server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { // by PID: SIGTERM, then SIGKILL
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.log(), "sesame server started"); {
		select {
		case <-done:
			t.Fatalf("sesame server exited at start:\n%s", s.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sesame server did not start:\n%s", s.log())
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sesame server log:\n%s", s.log())
		}
	})
	return s
}

func (s *sesameServer) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// logLines returns the log lines that contain every one of substrs.
func (s *sesameServer) logLines(substrs ...string) []string {
	var hits []string
	for _, l := range strings.Split(s.log(), "\n") {
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

// waitLog waits until the log holds a line containing every one of substrs and returns it.
func (s *sesameServer) waitLog(timeout time.Duration, substrs ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if hits := s.logLines(substrs...); len(hits) > 0 {
			return hits[0]
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no log line with %q within %v", substrs, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fwGrant is one line of "sesame server --fw-list": "ADDR PROTO/PORT expires in D".
type fwGrant struct {
	expires time.Duration
}

// fwList runs "sesame server --fw-list" and returns its grants keyed "ADDR PROTO/PORT".
func (s *sesameServer) fwList() map[string]fwGrant {
	s.t.Helper()
	out, err := s.ns.Command(nstest.Binary(s.t), "server", "-c", s.conf, "-a", s.access, "--fw-list").CombinedOutput()
	if err != nil {
		s.t.Fatalf("--fw-list: %v\n%s", err, out)
	}
	grants := map[string]fwGrant{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		grant, exp, ok := strings.Cut(l, " expires in ")
		d, err := time.ParseDuration(exp)
		if !ok || err != nil {
			s.t.Fatalf("--fw-list line %q: %v\n%s", l, err, out)
		}
		grants[grant] = fwGrant{expires: d}
	}
	return grants
}

package demo_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

var stepNames = []string{"namespaces", "server", "silent", "knock", "connect", "replay", "wrong-key", "expiry", "shield", "unsigned", "signed"}

// build compiles the sesame binary into a temporary directory of t.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sesame")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sesame-spa/sesame/cmd/sesame").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// leftovers returns the namespaces of demo process pid that still exist.
func leftovers(t *testing.T, pid int) []string {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var left []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "sesame-demo-") && strings.HasSuffix(f[0], "-"+strconv.Itoa(pid)) {
			left = append(left, f[0])
		}
	}
	return left
}

// TestIntegrationDemo runs "sesame demo" as a user would: every step must behave, be
// narrated by name, and leave nothing behind; an interrupted run (SIGINT, knocking with
// sesame's own client) must stop its processes, delete its namespaces and name the step.
func TestIntegrationDemo(t *testing.T) {
	nstest.Require(t)
	bin := build(t)

	t.Run("complete", func(t *testing.T) {
		cmd := exec.Command(bin, "demo")
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("sesame demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("demo took %v", time.Since(start).Round(100*time.Millisecond))
		out := stdout.String()
		for i, name := range stepNames {
			if want := fmt.Sprintf("[%2d/%d] %s: ", i+1, len(stepNames), name); !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if got := strings.Count(out, "        ok: "); got != len(stepNames) {
			t.Errorf("%d steps ok, want %d", got, len(stepNames))
		}
		for _, want := range []string{"reason=replay", `reason="HMAC mismatch"`, "expires in", "(no live grants)", "TCPMD5NotFound", "done: every step behaved"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Error("escape sequences in the output with NO_COLOR set and no terminal")
		}
		if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
		if t.Failed() {
			t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		cmd := exec.Command(bin, "demo", "--client", "sesame", "--color", "never")
		stdout, stderr := &syncBuffer{}, &syncBuffer{}
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var waitErr error
		go func() { waitErr = cmd.Wait(); close(done) }()
		t.Cleanup(func() {
			select {
			case <-done:
			default:
				cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
		// Interrupt once sesame's own client has knocked and been granted.
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(stdout.String(), "[ 5/11] connect:") {
			if time.Now().After(deadline) {
				t.Fatal("the demo did not reach the connect step")
			}
			select {
			case <-done:
				t.Fatalf("the demo ended early: %v", waitErr)
			case <-time.After(20 * time.Millisecond):
			}
		}
		if !strings.Contains(stdout.String(), "sent with sesame knock") {
			t.Error("--client sesame did not knock with sesame knock")
		}
		m := regexp.MustCompile(`sesame server \(pid (\d+)\) is running`).FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatal("no server pid in the narration")
		}
		serverPID, _ := strconv.Atoi(m[1])
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("the demo did not end within 15 s of SIGINT")
		}
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != 130 {
			t.Errorf("exit: %v, want status 130", waitErr)
		}
		if !regexp.MustCompile(`interrupted \(SIGINT\) during step \d+ \(\w[\w-]*\)`).MatchString(stderr.String()) {
			t.Errorf("stderr does not name the interrupted step: %q", stderr.String())
		}
		if err := syscall.Kill(serverPID, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the server (pid %d) survived the interrupted demo: kill 0: %v", serverPID, err)
		}
		if left := leftovers(t, cmd.Process.Pid); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
}

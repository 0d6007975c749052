package cmdexec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestSplit(t *testing.T) {
	for line, want := range map[string][]string{
		"/usr/bin/touch /tmp/x":      {"/usr/bin/touch", "/tmp/x"},
		"  echo\t'a b'  ":            {"echo", "'a", "b'"},
		"/bin/sh -c echo $IP":        {"/bin/sh", "-c", "echo", "$IP"},
		"nft add element inet t s {": {"nft", "add", "element", "inet", "t", "s", "{"},
	} {
		got, err := Split(line)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Split(%q) = %q, %v; want %q", line, got, err, want)
		}
	}
	if _, err := Split(" \t "); !errors.Is(err, ErrEmpty) {
		t.Errorf("blank line: %v", err)
	}
}

func TestSudoArgv(t *testing.T) {
	got := SudoArgv("/usr/bin/sudo", "alice", "staff", []string{"id", "-u"})
	want := []string{"/usr/bin/sudo", "-u", "alice", "-g", "staff", "id", "-u"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SudoArgv = %q", got)
	}
	if got := SudoArgv("sudo", "", "", []string{"id"}); !reflect.DeepEqual(got, []string{"sudo", "id"}) {
		t.Errorf("SudoArgv without user = %q", got)
	}
}

func TestExpand(t *testing.T) {
	v := CycleVars{IP: "192.0.2.1", PktSrc: "198.51.100.2", Dst: "203.0.113.3", Port: "22", Proto: "6", Timeout: "30", ClientTimeout: "0"}
	got := Expand("nft add element inet x s { $IP . $PROTO . $PORT timeout ${TIMEOUT}s } $SRC $PKT_SRC $DST $CLIENT_TIMEOUT $TIMEOUT $OTHER", v)
	want := "nft add element inet x s { 192.0.2.1 . 6 . 22 timeout ${TIMEOUT}s } 192.0.2.1 198.51.100.2 203.0.113.3 0 30 $OTHER"
	if got != want {
		t.Errorf("Expand =\n %q\nwant\n %q", got, want)
	}
}

func TestExecRun(t *testing.T) {
	r := Exec{}.Run(context.Background(), Spec{Argv: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if r.Exit != 3 || r.Err == nil || !strings.Contains(string(r.Output), "out") || !strings.Contains(string(r.Output), "err") {
		t.Errorf("exit %d err %v output %q", r.Exit, r.Err, r.Output)
	}
	r = Exec{}.Run(context.Background(), Spec{Argv: []string{"true"}})
	if r.Exit != 0 || r.Err != nil {
		t.Errorf("true: exit %d err %v", r.Exit, r.Err)
	}
	r = Exec{}.Run(context.Background(), Spec{Argv: []string{"/nonexistent/program"}})
	if r.Exit != -1 || r.Err == nil {
		t.Errorf("missing program: exit %d err %v", r.Exit, r.Err)
	}
	// A shell is not involved: the argument reaches the program as written.
	r = Exec{}.Run(context.Background(), Spec{Argv: []string{"echo", "$HOME;", "`id`"}})
	if string(r.Output) != "$HOME; `id`\n" {
		t.Errorf("echo output %q", r.Output)
	}
}

func TestExecOutputLimit(t *testing.T) {
	r := Exec{}.Run(context.Background(), Spec{Argv: []string{"head", "-c", "10000", "/dev/zero"}})
	if r.Err != nil || len(r.Output) != MaxOutput || r.Dropped != 10000-MaxOutput {
		t.Errorf("err %v kept %d dropped %d", r.Err, len(r.Output), r.Dropped)
	}
}

// The time limit kills the whole process group, children included.
func TestExecTimeoutKillsGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	r := Exec{}.Run(context.Background(), Spec{
		Argv:    []string{"sh", "-c", "sleep 30 & echo $! > " + pidFile + "; wait"},
		Timeout: 300 * time.Millisecond,
	})
	if !errors.Is(r.Err, ErrTimeout) || r.Exit != -1 {
		t.Fatalf("err %v exit %d, want a timeout", r.Err, r.Exit)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d of a timed-out command still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// As root, CMD_EXEC_USER/GROUP: the command's file belongs to the user and group asked for.
func TestExecAsUser(t *testing.T) {
	if os.Getuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root under CI")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes its parent 0700
	os.Chmod(dir, 0o777)
	file := filepath.Join(dir, "made")
	uid, gid := uint32(65534), uint32(65534)
	r := Exec{}.Run(context.Background(), Spec{Argv: []string{"touch", file}, UID: &uid, GID: &gid})
	if r.Err != nil {
		t.Fatalf("touch as nobody: %v %s", r.Err, r.Output)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != uid || st.Gid != gid {
		t.Errorf("file owned by %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
}

// fakeExec records commands and blocks each until released.
type fakeExec struct {
	mu      sync.Mutex
	ran     [][]string
	release chan struct{}
}

func (f *fakeExec) Run(ctx context.Context, s Spec) Result {
	f.mu.Lock()
	f.ran = append(f.ran, s.Argv)
	f.mu.Unlock()
	select {
	case <-f.release:
	case <-ctx.Done():
	}
	return Result{Argv: s.Argv}
}

func TestPoolBounded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeExec{release: make(chan struct{})}
	p := NewPool(ctx, f, 1, 1)
	done := make(chan Result, 3)
	cb := func(r Result) { done <- r }
	if err := p.Submit(Spec{Argv: []string{"a"}}, cb); err != nil {
		t.Fatal(err)
	}
	// Wait until the worker took "a", so the queue has room for exactly one more.
	for {
		f.mu.Lock()
		n := len(f.ran)
		f.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Submit(Spec{Argv: []string{"b"}}, cb); err != nil {
		t.Fatal(err)
	}
	if err := p.Submit(Spec{Argv: []string{"c"}}, cb); !errors.Is(err, ErrBusy) {
		t.Fatalf("third command: %v, want ErrBusy", err)
	}
	close(f.release)
	for _, want := range []string{"a", "b"} {
		if r := <-done; r.Argv[0] != want {
			t.Errorf("ran %q, want %q", r.Argv[0], want)
		}
	}
	cancel()
	p.Wait()
	if err := p.Submit(Spec{Argv: []string{"d"}}, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("after stop: %v", err)
	}
}

func FuzzSplitExpand(f *testing.F) {
	f.Add("nft add element inet t s { $IP . $PORT }", "10.0.0.1")
	f.Fuzz(func(t *testing.T, line, ip string) {
		argv, err := Split(Expand(line, CycleVars{IP: ip}))
		if err != nil {
			return
		}
		for _, a := range argv {
			if a == "" || strings.ContainsAny(a, " \t") {
				t.Fatalf("word %q", a)
			}
		}
	})
}

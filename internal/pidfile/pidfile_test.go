package pidfile

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// helperEnv makes the test binary a lock holder: "ofd:PATH" holds PATH with Acquire, "posix:PATH"
// with a classic POSIX record lock as fwknopd does. It prints "locked" and waits to be killed.
const helperEnv = "SESAME_PIDFILE_HELPER"

func TestMain(m *testing.M) {
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(helper(v))
	}
	os.Exit(m.Run())
}

func helper(v string) int {
	mode, path, _ := strings.Cut(v, ":")
	switch mode {
	case "ofd":
		if _, err := Acquire(path); err != nil {
			fmt.Println(err)
			return 1
		}
	case "posix":
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		lk := wholeFile(unix.F_WRLCK)
		if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	fmt.Println("locked")
	select {}
}

// startHolder runs a helper holding path and returns it once it holds the lock.
func startHolder(t *testing.T, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode+":"+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("helper %s: %q", mode, line)
	}
	return cmd
}

func dir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	os.Chmod(d, 0o700)
	return d
}

func wantHeld(t *testing.T, err error, path string, pid int) {
	t.Helper()
	var he *HeldError
	if !errors.As(err, &he) {
		t.Fatalf("got %v, want *HeldError", err)
	}
	if he.Path != path || he.PID != pid {
		t.Errorf("HeldError %+v, want pid %d at %s", he, pid, path)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(pid)) || !strings.Contains(err.Error(), path) {
		t.Errorf("message %q names neither pid %d nor %s", err, pid, path)
	}
}

func TestAcquireRelease(t *testing.T) {
	p := filepath.Join(dir(t), "run", "sesame.pid")
	f, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != fmt.Sprintf("%d\n", os.Getpid()) {
		t.Errorf("content %q", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if pid, running, err := Read(p); pid != os.Getpid() || !running || err != nil {
		t.Errorf("Read = %d, %v, %v", pid, running, err)
	}
	// A second open file description conflicts, even in the same process.
	_, err = Acquire(p)
	wantHeld(t, err, p, os.Getpid())
	if err := f.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("released file still there: %v", err)
	}
	if pid, running, err := Read(p); pid != 0 || running || err != nil {
		t.Errorf("Read after release = %d, %v, %v", pid, running, err)
	}
	if err := f.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	f, err = Acquire(p)
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	f.Release()
}

func TestStaleFile(t *testing.T) {
	p := filepath.Join(dir(t), "sesame.pid")
	// pid 1 is alive, but nobody holds the lock: the file is stale.
	os.WriteFile(p, []byte("1\n"), 0o600)
	if pid, running, err := Read(p); pid != 1 || running || err != nil {
		t.Errorf("Read = %d, %v, %v; want 1, not running", pid, running, err)
	}
	f, err := Acquire(p)
	if err != nil {
		t.Fatalf("a stale file blocked the start: %v", err)
	}
	defer f.Release()
	if pid, _, _ := Read(p); pid != os.Getpid() {
		t.Errorf("pid %d after acquire", pid)
	}
}

func TestReleaseKeepsOthersFile(t *testing.T) {
	p := filepath.Join(dir(t), "sesame.pid")
	f, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	// Someone (root) replaced the file: Release must not remove theirs.
	os.Remove(p)
	os.WriteFile(p, []byte("1\n"), 0o600)
	f.Release()
	if b, _ := os.ReadFile(p); string(b) != "1\n" {
		t.Errorf("Release removed or changed a file it did not hold: %q", b)
	}
}

func TestRefusesLinks(t *testing.T) {
	d := dir(t)
	victim := filepath.Join(dir(t), "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	p := filepath.Join(d, "sesame.pid")
	os.Symlink(victim, p)
	_, err := Acquire(p)
	if !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Acquire through a symlink: %v", err)
	}
	if _, _, err := Read(p); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Read through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("link target changed: %q", b)
	}
	// The old code's temporary name is not used either.
	os.Remove(p)
	os.Symlink(victim, p+".tmp")
	f, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Release()
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("link target changed: %q", b)
	}
	// An unsafe directory.
	os.Chmod(d, 0o777)
	if _, err := Acquire(filepath.Join(d, "other.pid")); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Acquire in a world-writable directory: %v", err)
	}
}

// TestCrossProcess: a lock held by another process blocks Acquire and shows in Read; SIGKILL
// frees it, leaving a stale file that does not block.
func TestCrossProcess(t *testing.T) {
	for _, mode := range []string{"ofd", "posix"} {
		t.Run(mode, func(t *testing.T) {
			p := filepath.Join(dir(t), "sesame.pid")
			h := startHolder(t, mode, p)
			hpid := h.Process.Pid
			_, err := Acquire(p)
			wantHeld(t, err, p, hpid)
			if pid, running, err := Read(p); pid != hpid || !running || err != nil {
				t.Errorf("Read = %d, %v, %v; want %d running", pid, running, err, hpid)
			}
			// With no pid in the file, a POSIX holder is still named by the kernel.
			os.WriteFile(p, nil, 0o600)
			want := 0
			if mode == "posix" {
				want = hpid
			}
			if pid, running, _ := Read(p); pid != want || !running {
				t.Errorf("Read of an empty locked file = %d, %v; want %d running", pid, running, want)
			}
			h.Process.Signal(syscall.SIGKILL)
			h.Wait()
			if _, running, _ := Read(p); running {
				t.Error("lock outlived its process")
			}
			f, err := Acquire(p)
			if err != nil {
				t.Fatalf("after SIGKILL: %v", err)
			}
			f.Release()
		})
	}
}

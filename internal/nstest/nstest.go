// Package nstest runs tests against the real kernel inside network namespaces that each test
// creates and removes.
//
// Tests that need root or a system binary call Require first. Outside CI a missing need skips
// the test; with CI=true in the environment it fails it, so CI can never pass by skipping.
//
// Every namespace gets a unique name (sesame-<pid>-<n>) and is deleted at cleanup, after the
// processes started in it with Start have been stopped by PID. Veth pairs are created directly
// inside their namespaces, so interface names only need to be unique per namespace.
package nstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// InCI reports whether the tests run under CI (CI=true), where missing needs fail tests.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips t (or fails it under CI) unless the process is root and every named binary is
// on PATH.
func Require(t testing.TB, binaries ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, b := range append([]string{"ip"}, binaries...) {
		if _, err := exec.LookPath(b); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) == 0 {
		return
	}
	if InCI() {
		t.Fatalf("this test needs %v, missing under CI (install them in .ci/run)", missing)
	}
	t.Skipf("needs %v", missing)
}

// NS is one network namespace created for a test.
type NS struct {
	Name string
	Ifc  string // the namespace's end of the veth made by Pair, if any
}

var seq atomic.Int64

// New creates a network namespace with lo up. It is deleted when the test ends.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	name := fmt.Sprintf("sesame-%d-%d", os.Getpid(), seq.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.Run(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Command returns a command that runs name inside the namespace ("ip netns exec" execs it, so
// the process's PID is the command's).
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs name inside the namespace and returns its combined output. It fails the test if the
// command fails.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("[%s] %s %q: %v\n%s", n.Name, name, args, err, out)
	}
	return string(out)
}

// Start starts cmd (usually from Command). When the test ends the process is sent SIGTERM by
// PID, then SIGKILL after 3 s if it has not exited, and waited for. The namespace's own cleanup
// runs after this one (cleanups run last-registered first).
func (n *NS) Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("[%s] start %v: %v", n.Name, cmd.Args, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

// Do runs fn on a locked OS thread switched into the namespace. Sockets and netlink
// connections that fn opens stay in the namespace after fn returns; goroutines that fn starts
// do not inherit the namespace.
func (n *NS) Do(t testing.TB, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back fails, it dies with the goroutine
		// instead of running other code in the wrong namespace.
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(n.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Handle opens the namespace for APIs that take a netns file descriptor (for example
// nftables.WithNetNSFd). The handle is closed at cleanup.
func (n *NS) Handle(t testing.TB) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		t.Fatalf("open netns %s: %v", n.Name, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var vethSeq atomic.Int64

// Connect joins a and b with a veth pair, assigns the addresses (CIDR form, for example
// "10.99.0.1/24" or "fd99::1/64"; IPv6 without duplicate address detection) and brings both ends
// up. It returns the interface names in a and in b.
func Connect(t testing.TB, a, b *NS, aAddrs, bAddrs []string) (aIf, bIf string) {
	t.Helper()
	i := vethSeq.Add(1)
	aIf, bIf = fmt.Sprintf("veth%da", i), fmt.Sprintf("veth%db", i)
	if out, err := exec.Command("ip", "link", "add", "name", aIf, "netns", a.Name, "type", "veth",
		"peer", "name", bIf, "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add veth: %v: %s", err, out)
	}
	for _, side := range []struct {
		ns    *NS
		ifc   string
		addrs []string
	}{{a, aIf, aAddrs}, {b, bIf, bAddrs}} {
		for _, addr := range side.addrs {
			args := []string{"addr", "add", addr, "dev", side.ifc}
			if bytes.ContainsRune([]byte(addr), ':') {
				args = append(args, "nodad")
			}
			side.ns.Run(t, "ip", args...)
		}
		side.ns.Run(t, "ip", "link", "set", side.ifc, "up")
	}
	// A veth carries traffic only once both ends report the carrier; on a loaded machine that
	// can take a moment, and packets sent before are lost.
	for _, side := range []struct {
		ns  *NS
		ifc string
	}{{a, aIf}, {b, bIf}} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, _ := exec.Command("ip", "-n", side.ns.Name, "-o", "link", "show", "dev", side.ifc).CombinedOutput()
			if bytes.Contains(out, []byte("state UP")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("[%s] %s did not come up: %s", side.ns.Name, side.ifc, out)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return aIf, bIf
}

// Well-known addresses of Pair.
const (
	SrvIP4 = "10.99.0.1"
	CliIP4 = "10.99.0.2"
	SrvIP6 = "fd99::1"
	CliIP6 = "fd99::2"
)

// Pair creates a server and a client namespace joined by a veth pair: the server has
// 10.99.0.1/24 and fd99::1/64, the client 10.99.0.2/24 and fd99::2/64. Each namespace's Ifc is
// its end of the veth pair.
func Pair(t testing.TB) (srv, cli *NS) {
	t.Helper()
	srv, cli = New(t), New(t)
	si, ci := Connect(t, srv, cli, []string{SrvIP4 + "/24", SrvIP6 + "/64"}, []string{CliIP4 + "/24", CliIP6 + "/64"})
	srv.Ifc, cli.Ifc = si, ci
	return srv, cli
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary builds ./cmd/sesame once per test process and returns the binary's path.
func Binary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sesame-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "sesame")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/sesame-spa/sesame/cmd/sesame").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build sesame: %v", binErr)
	}
	return binPath
}

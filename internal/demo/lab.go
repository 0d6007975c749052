package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// A lab is the demo's world: two network namespaces joined by a veth pair, the processes
// started in them, and a scratch directory. close removes all of it.
type lab struct {
	bin      string // the sesame binary (os.Executable)
	dir      string // scratch directory, mode 0700
	srv, cli string // namespace names

	mu       sync.Mutex
	children []*child
	closers  []func()
	nsMade   []string
}

// A child is a long-running process started in a namespace, its output kept.
type child struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
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

// ipCmd runs ip with args and returns an error carrying its output when it fails.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// addNS creates a namespace with lo up; close deletes it.
func (l *lab) addNS(ctx context.Context, name string) error {
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.nsMade = append(l.nsMade, name)
	l.mu.Unlock()
	return ipCmd(ctx, "-n", name, "link", "set", "lo", "up")
}

// veth joins the two namespaces with a veth pair (srvIf in srv, cliIf in cli), gives each
// end its address (CIDR) and waits until both ends carry traffic.
func (l *lab) veth(ctx context.Context, srvIf, srvAddr, cliIf, cliAddr string) error {
	if err := ipCmd(ctx, "link", "add", "name", srvIf, "netns", l.srv, "type", "veth", "peer", "name", cliIf, "netns", l.cli); err != nil {
		return err
	}
	for _, e := range [][3]string{{l.srv, srvIf, srvAddr}, {l.cli, cliIf, cliAddr}} {
		if err := ipCmd(ctx, "-n", e[0], "addr", "add", e[2], "dev", e[1]); err != nil {
			return err
		}
		if err := ipCmd(ctx, "-n", e[0], "link", "set", e[1], "up"); err != nil {
			return err
		}
	}
	for _, e := range [][2]string{{l.srv, srvIf}, {l.cli, cliIf}} {
		err := poll(ctx, 5*time.Second, func() bool {
			out, _ := exec.CommandContext(ctx, "ip", "-n", e[0], "-o", "link", "show", "dev", e[1]).Output()
			return bytes.Contains(out, []byte("state UP"))
		})
		if err != nil {
			return fmt.Errorf("%s in %s did not come up: %w", e[1], e[0], err)
		}
	}
	return nil
}

// command returns a command running name inside namespace ns ("ip netns exec" execs it,
// so the process's PID is the command's). It is killed if the demo dies first.
func command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// start starts a long-running sesame subcommand in ns; close stops it by PID.
func (l *lab) start(ns, name string, args ...string) (*child, error) {
	cmd := command(context.Background(), ns, l.bin, args...)
	c := &child{name: name, cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); close(c.done) }()
	l.mu.Lock()
	l.children = append(l.children, c)
	l.mu.Unlock()
	return c, nil
}

// waitLog waits until c's output contains want, c exits, ctx ends or timeout passes.
func waitLog(ctx context.Context, c *child, want string, timeout time.Duration) error {
	err := poll(ctx, timeout, func() bool { return strings.Contains(c.out.String(), want) || !c.running() })
	if strings.Contains(c.out.String(), want) {
		return nil
	}
	if !c.running() {
		return fmt.Errorf("%s exited (%v) before logging %q", c.name, c.cmd.ProcessState, want)
	}
	return fmt.Errorf("%s did not log %q: %w", c.name, want, err)
}

// logLine returns the first line of c's output after the first skip bytes that contains
// every one of want, and the offset after it.
func logLine(c *child, skip int, want ...string) (string, bool) {
	out := c.out.String()
	skip = min(max(skip, 0), len(out))
	for _, line := range strings.Split(out[skip:], "\n") {
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok && line != "" {
			return line, true
		}
	}
	return "", false
}

var errTimeout = errors.New("timed out")

// poll checks cond every 20 ms until it holds (nil), ctx ends (ctx's cause) or timeout
// passes (errTimeout).
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
			if cond() {
				return nil
			}
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		case <-tick.C:
		}
	}
	return nil
}

// inNS runs fn on a locked OS thread switched into namespace ns. Sockets fn opens stay in
// ns; goroutines fn starts do not inherit it.
func inNS(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked on failure: the thread then dies with the goroutine instead of
		// running other code in the wrong namespace.
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("current netns: %w", err)
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// serveBanner listens on addr inside ns and writes banner to every connection, then
// closes it; close stops it.
func (l *lab) serveBanner(ns, addr, banner string) error {
	var ln net.Listener
	if err := inNS(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		return fmt.Errorf("banner service on %s: %w", addr, err)
	}
	l.mu.Lock()
	l.closers = append(l.closers, func() { ln.Close() })
	l.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(banner + "\r\n"))
			c.Close()
		}
	}()
	return nil
}

// close stops every child (SIGTERM by PID, SIGKILL after 3 s), closes the listeners,
// deletes the namespaces and the scratch directory. It returns what it could not undo.
func (l *lab) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, c := range l.children {
		if !c.running() {
			continue
		}
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(3 * time.Second):
			c.cmd.Process.Kill()
			<-c.done
		}
	}
	for _, f := range l.closers {
		f()
	}
	for _, ns := range l.nsMade {
		if err := ipCmd(context.Background(), "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if l.dir != "" {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, err)
		}
	}
	l.children, l.closers, l.nsMade = nil, nil, nil
	return errors.Join(errs...)
}

package hostfw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// Host is what Detect reads outside netlink: the legacy iptables side of the namespace examined.
type Host interface {
	// LegacyTables returns the names in /proc/net/ip_tables_names (ipv6 false) or
	// /proc/net/ip6_tables_names (ipv6 true) of the namespace: the legacy (x_tables) tables
	// loaded there. A missing file gives no names and no error.
	LegacyTables(ipv6 bool) ([]string, error)
	// Run runs a command in the namespace and returns its standard output. A command that is
	// not installed gives an error wrapping exec.ErrNotFound.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// SystemHost is the real Host: the network namespace open as NetNSFd, or the caller's when
// NetNSFd is 0.
type SystemHost struct{ NetNSFd int }

// LegacyTables implements Host. The files are per network namespace, so it reads them from a
// thread that has entered the namespace (/proc/thread-self/net).
func (h SystemHost) LegacyTables(ipv6 bool) ([]string, error) {
	name := "/proc/thread-self/net/ip_tables_names"
	if ipv6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	var b []byte
	err := h.inNS(func() error {
		var err error
		b, err = os.ReadFile(name)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return strings.Fields(string(b)), nil
}

// Run implements Host. A child process inherits the namespace of the thread that starts it.
func (h SystemHost) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out []byte
	err := h.inNS(func() error {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Stderr = &stderr
		var err error
		out, err = cmd.Output()
		if err != nil && stderr.Len() > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return err
	})
	return out, err
}

// inNS runs fn on a locked thread inside the namespace (or directly when NetNSFd is 0).
func (h SystemHost) inNS(fn func() error) error {
	if h.NetNSFd == 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(h.NetNSFd)); err != nil {
			errc <- fmt.Errorf("enter netns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: it dies with this goroutine rather than running other
			// code in the wrong namespace.
			errc <- fmt.Errorf("leave netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

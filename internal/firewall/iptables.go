package firewall

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
)

// runner runs a command and returns its combined output. execRunner is the real one.
type runner interface {
	run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// iptablesHook inserts, in the INPUT chain of both iptables and ip6tables,
//
//	-I INPUT 1 -m mark --mark MARK/MARK -m comment --comment sesame -j ACCEPT
//
// through the binaries, so it works with iptables-nft and iptables-legacy alike.
type iptablesHook struct {
	run  runner
	mark uint32
	bins []string // iptables and ip6tables, or their -legacy variants
}

func (h *iptablesHook) spec() []string {
	m := fmt.Sprintf("0x%x/0x%x", h.mark, h.mark)
	return []string{"INPUT", "-m", "mark", "--mark", m, "-m", "comment", "--comment", hostComment, "-j", "ACCEPT"}
}

// has reports whether bin's INPUT chain holds the rule (iptables -C exits non-zero otherwise).
func (h *iptablesHook) has(ctx context.Context, bin string) bool {
	_, err := h.run.run(ctx, bin, append([]string{"-w", "-C"}, h.spec()...)...)
	return err == nil
}

func (h *iptablesHook) install(ctx context.Context) error {
	for _, bin := range h.bins {
		if h.has(ctx, bin) {
			continue
		}
		spec := h.spec()
		args := append([]string{"-w", "-I", spec[0], "1"}, spec[1:]...)
		if out, err := h.run.run(ctx, bin, args...); err != nil {
			return fmt.Errorf("%s %v: %w: %s", bin, args, err, out)
		}
	}
	return nil
}

// maxRemove bounds the delete loop should a broken binary keep reporting the rule as present.
const maxRemove = 64

func (h *iptablesHook) remove(ctx context.Context) error {
	var errs []error
	for _, bin := range h.bins {
		for i := 0; h.has(ctx, bin); i++ {
			if i == maxRemove {
				errs = append(errs, fmt.Errorf("%s: rule still present after %d deletes", bin, maxRemove))
				break
			}
			args := append([]string{"-w", "-D"}, h.spec()...)
			if out, err := h.run.run(ctx, bin, args...); err != nil {
				errs = append(errs, fmt.Errorf("%s %v: %w: %s", bin, args, err, out))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// execRunner runs binaries, inside the network namespace nsFd if it is non-zero.
type execRunner struct{ nsFd int }

func (r execRunner) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if r.nsFd == 0 {
		return exec.CommandContext(ctx, name, args...).CombinedOutput()
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		// A child process inherits the network namespace of the thread that forks it, so
		// fork from a locked thread switched into the target namespace.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- result{err: fmt.Errorf("get current netns: %w", err)}
			return
		}
		defer orig.Close()
		if err := netns.Set(netns.NsHandle(r.nsFd)); err != nil {
			done <- result{err: fmt.Errorf("enter netns: %w", err)}
			return
		}
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread() // otherwise the thread dies with this goroutine
		}
		done <- result{out, err}
	}()
	res := <-done
	return res.out, res.err
}

// present reports whether every binary's INPUT chain holds the rule.
func (h *iptablesHook) present(ctx context.Context) (bool, error) {
	for _, bin := range h.bins {
		if !h.has(ctx, bin) {
			return false, nil
		}
	}
	return true, nil
}

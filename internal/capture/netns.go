package capture

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// threadNetNS is the calling thread's network namespace file.
const threadNetNS = "/proc/thread-self/ns/net"

// netNS pins the network namespace a ResilientSniffer was created in, so that sockets it
// opens later, from whatever goroutine, land there too.
type netNS struct {
	f        *os.File
	dev, ino uint64
}

// currentNetNS opens the calling thread's network namespace. The caller must not migrate
// between threads of different namespaces meanwhile (in a daemon all threads share one; a
// test runs it on a locked thread, as nstest.NS.Do does).
func currentNetNS() (*netNS, error) {
	f, err := os.Open(threadNetNS)
	if err != nil {
		return nil, fmt.Errorf("capture: network namespace: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("capture: network namespace: %w", err)
	}
	return &netNS{f: f, dev: st.Dev, ino: st.Ino}, nil
}

// do runs fn on a locked thread in the namespace. When the thread is already there (always,
// in a daemon that never switches namespaces) fn runs without setns(2), which would need
// CAP_SYS_ADMIN; otherwise the thread enters the namespace and leaves it after fn.
func (n *netNS) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var st unix.Stat_t
		if err := unix.Stat(threadNetNS, &st); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capture: network namespace: %w", err)
			return
		}
		if st.Dev == n.dev && st.Ino == n.ino {
			err := fn()
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		orig, err := os.Open(threadNetNS)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capture: network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := n.enter(); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capture: enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked, so it exits with this goroutine instead of running
			// other code in the wrong namespace.
			errc <- fmt.Errorf("capture: leave network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// enter moves the calling (locked) thread into the namespace. The file's descriptor is used
// under Control, so a concurrent close cannot reuse it meanwhile.
func (n *netNS) enter() error {
	rc, err := n.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Setns(int(fd), unix.CLONE_NEWNET) }); err != nil {
		return err
	}
	return serr
}

func (n *netNS) close() error { return n.f.Close() }

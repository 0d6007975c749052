package failclosed

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// Probe timing: a new connection attempt every probeEvery, each given up to probeWait to
// complete (a SYN the kernel drops is retransmitted after 1 s, so a longer wait adds nothing).
const (
	probeEvery = 10 * time.Millisecond
	probeWait  = time.Second
)

// prober is the outsider: it starts a non-blocking TCP connection to the target every 10 ms and
// counts the attempts and the connections that completed. Attempts overlap, so a loaded machine
// slows the answer down but cannot hide it.
type prober struct {
	target    netip.AddrPort
	tries, ok atomic.Int64
	stop      chan struct{}
	done      chan error
	once      sync.Once
	err       error
}

// startProbe starts probing target (an IPv4 address and port) from ns until halt; the test's
// cleanup halts it too.
func startProbe(t *testing.T, ns *nstest.NS, target string) *prober {
	t.Helper()
	p := &prober{target: netip.MustParseAddrPort(target), stop: make(chan struct{}), done: make(chan error, 1)}
	// The loop runs on one thread inside ns (ns.Do), so every socket it creates is ns's.
	go func() { p.done <- ns.Do(t, p.loop) }()
	t.Cleanup(func() { p.halt() })
	return p
}

type attempt struct {
	fd int
	at time.Time
}

func (p *prober) loop() error {
	sa := &unix.SockaddrInet4{Port: int(p.target.Port()), Addr: p.target.Addr().As4()}
	var pending []attempt
	defer func() {
		for _, a := range pending {
			unix.Close(a.fd)
		}
	}()
	next := time.Now()
	for {
		select {
		case <-p.stop:
			// Give the attempts in flight their answer before counting.
			deadline := time.Now().Add(200 * time.Millisecond)
			for len(pending) > 0 && time.Now().Before(deadline) {
				var err error
				if pending, err = p.poll(pending, 10*time.Millisecond); err != nil {
					return err
				}
			}
			return nil
		default:
		}
		if now := time.Now(); !now.Before(next) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			p.tries.Add(1)
			switch err := unix.Connect(fd, sa); {
			case err == nil:
				p.ok.Add(1)
				unix.Close(fd)
			case errors.Is(err, unix.EINPROGRESS):
				pending = append(pending, attempt{fd, now})
			default: // refused or unreachable at once
				unix.Close(fd)
			}
			if next = next.Add(probeEvery); next.Before(now) {
				next = now.Add(probeEvery)
			}
		}
		var err error
		if pending, err = p.poll(pending, time.Until(next)); err != nil {
			return err
		}
	}
}

// poll waits up to wait for answers to pending attempts, counts the completed ones, and returns
// the attempts still waiting (those older than probeWait are abandoned).
func (p *prober) poll(pending []attempt, wait time.Duration) ([]attempt, error) {
	if wait < 0 {
		wait = 0
	}
	if len(pending) == 0 {
		time.Sleep(wait)
		return pending, nil
	}
	fds := make([]unix.PollFd, len(pending))
	for i, a := range pending {
		fds[i] = unix.PollFd{Fd: int32(a.fd), Events: unix.POLLOUT}
	}
	if _, err := unix.Poll(fds, int(wait/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
		return pending, err
	}
	keep := pending[:0]
	for i, a := range pending {
		switch {
		case fds[i].Revents != 0:
			if soerr, err := unix.GetsockoptInt(a.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr == 0 &&
				fds[i].Revents&unix.POLLOUT != 0 {
				p.ok.Add(1)
			}
			unix.Close(a.fd)
		case time.Since(a.at) > probeWait:
			unix.Close(a.fd)
		default:
			keep = append(keep, a)
		}
	}
	return keep, nil
}

// settle waits until n more attempts have started (so the probe covers the moments after an
// event too), failing t if that takes over 5 s.
func (p *prober) settle(t *testing.T, n int64) {
	t.Helper()
	want := p.tries.Load() + n
	deadline := time.Now().Add(5 * time.Second)
	for p.tries.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("probe: only %d attempts, want %d", p.tries.Load(), want)
		}
		time.Sleep(probeEvery)
	}
}

// halt stops the probe and returns the completed connections and attempts. Calling it again
// returns the same counts.
func (p *prober) halt() (ok, tries int64, err error) {
	p.once.Do(func() {
		close(p.stop)
		p.err = <-p.done
	})
	return p.ok.Load(), p.tries.Load(), p.err
}

// wantShut halts the probe and fails t unless it made attempts and none completed.
func (p *prober) wantShut(t *testing.T) {
	t.Helper()
	ok, tries, err := p.halt()
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if ok != 0 || tries < 5 {
		t.Errorf("outsider connected %d times in %d attempts, want 0 (and at least 5 attempts)", ok, tries)
	} else {
		t.Logf("outsider: 0 connections in %d attempts", tries)
	}
}

package server

import (
	"crypto/rand"
	"fmt"
	"golang.org/x/sys/unix"
	"net"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

const (
	benchKey  = "fwknoptest"
	benchHMAC = "hmactest"
)

var benchKeys = spa.Keys{Key: []byte(benchKey), HMACKey: []byte(benchHMAC)}

// packet builds a valid packet granting tcp/22 to allow.
func packet(t testing.TB, allow string) []byte {
	t.Helper()
	m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: allow + ",tcp/22"}
	w, err := spa.Encode(&m, benchKeys, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(w)
}

// forged builds a well-formed packet with the wrong HMAC key.
func forged(t testing.TB, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: "10.99.0.2,tcp/22"}
		w, err := spa.Encode(&m, spa.Keys{Key: benchKeys.Key, HMACKey: []byte("forged-hmac")}, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = []byte(w)
	}
	return out
}

// knockToOpen, inside ns: sends pkt to spaAddr, then starts a TCP connect from local to dstAddr
// every 100 µs until one completes; returns the time from the send to that completion. Each
// attempt may take up to attemptLife (a slow path, such as fwknopd's 10,000 iptables rules,
// still completes), so the resolution is the attempt interval, not the connect time.
func knockToOpen(t testing.TB, ns *nstest.NS, pkt []byte, spaAddr, local, dstAddr string, limit time.Duration) (time.Duration, error) {
	var d time.Duration
	err := ns.Do(t, func() error {
		c, err := net.Dial("udp", spaAddr)
		if err != nil {
			return err
		}
		defer c.Close()
		la, err := netip.ParseAddr(local)
		if err != nil {
			return err
		}
		ra, err := netip.ParseAddrPort(dstAddr)
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := c.Write(pkt); err != nil {
			return err
		}
		d, err = firstConnect(la, ra, start, limit)
		return err
	})
	return d, err
}

// attemptLife is how long one connect attempt may take before it is abandoned.
const attemptLife = 50 * time.Millisecond

// firstConnect runs the attempts of knockToOpen on the calling (namespace-locked) thread with
// non-blocking sockets, sleeping in ppoll(2) between attempts, and returns when the first
// handshake completes.
func firstConnect(local netip.Addr, dst netip.AddrPort, start time.Time, limit time.Duration) (time.Duration, error) {
	type attempt struct {
		fd    int
		begun time.Time
	}
	var open []attempt
	defer func() {
		for _, a := range open {
			unix.Close(a.fd)
		}
	}()
	// Timer slack (50 µs by default) would blur the 100 µs interval; this thread is locked to
	// the namespace for the duration.
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0); err != nil {
		return 0, fmt.Errorf("PR_SET_TIMERSLACK: %w", err)
	}
	l4 := local.Unmap().As4()
	d4 := dst.Addr().Unmap().As4()
	next := start
	for time.Since(start) < limit {
		if now := time.Now(); !now.Before(next) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return 0, err
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: l4}); err != nil {
				unix.Close(fd)
				return 0, err
			}
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: d4, Port: int(dst.Port())})
			if err != nil && err != unix.EINPROGRESS {
				unix.Close(fd)
			} else {
				open = append(open, attempt{fd, now})
			}
			next = now.Add(attemptEvery)
		}
		pfds := make([]unix.PollFd, len(open))
		for i, a := range open {
			pfds[i] = unix.PollFd{Fd: int32(a.fd), Events: unix.POLLOUT}
		}
		// Sleep in ppoll until a handshake completes or the next attempt is due: the client
		// must not spin on a CPU the server needs (this machine may have two).
		wait := unix.NsecToTimespec(max(0, time.Until(next).Nanoseconds()))
		if _, err := unix.Ppoll(pfds, &wait, nil); err != nil && err != unix.EINTR {
			return 0, err
		}
		kept := open[:0]
		for i, a := range open {
			switch {
			case pfds[i].Revents&(unix.POLLOUT|unix.POLLERR|unix.POLLHUP) != 0:
				if v, err := unix.GetsockoptInt(a.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && v == 0 {
					return time.Since(start), nil
				}
				unix.Close(a.fd)
			case time.Since(a.begun) > attemptLife:
				unix.Close(a.fd)
			default:
				kept = append(kept, a)
			}
		}
		open = kept
	}
	return 0, fmt.Errorf("not open after %v", limit)
}

// attemptEvery is the knock-to-open resolution: a dropped SYN times out after it.
const attemptEvery = 100 * time.Microsecond

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// connectOnce times one TCP connect from local in ns to addr.
func connectOnce(t testing.TB, ns *nstest.NS, local, addr string) time.Duration {
	t.Helper()
	var d time.Duration
	err := ns.Do(t, func() error {
		la, err := net.ResolveTCPAddr("tcp", local+":0")
		if err != nil {
			return err
		}
		dialer := net.Dialer{Timeout: time.Second, LocalAddr: la}
		start := time.Now()
		c, err := dialer.Dial("tcp", addr)
		if err != nil {
			return err
		}
		d = time.Since(start)
		return c.Close()
	})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return d
}

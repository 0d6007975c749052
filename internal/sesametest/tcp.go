package sesametest

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// Handler serves one accepted connection. Listen calls it on its accept goroutine, so a
// handler that blocks must start its own goroutine (as Echo does). It owns the connection.
type Handler func(net.Conn)

// Handlers for Listen.
var (
	// Banner writes an SSH-like banner line and closes the connection.
	Banner Handler = func(c net.Conn) { c.Write([]byte("SSH-2.0-sesame-test\r\n")); c.Close() }
	// Hangup closes the connection at once.
	Hangup Handler = func(c net.Conn) { c.Close() }
	// Echo copies everything back until the peer closes.
	Echo Handler = func(c net.Conn) { go func() { defer c.Close(); io.Copy(c, c) }() }
)

// Listen listens on TCP addr inside ns (nil: the test process's own namespace) and serves
// each connection with h until the test ends. It returns the listening address (useful with
// port 0) and fails t if it cannot listen.
func Listen(t testing.TB, ns *nstest.NS, addr string, h Handler) net.Addr {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) { ln, err = net.Listen("tcp", addr); return err }
	var err error
	if ns == nil {
		err = listen()
	} else {
		err = ns.Do(t, listen)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h(c)
		}
	}()
	return ln.Addr()
}

// DialResult is what one TCP connection attempt met.
type DialResult int

// Dial results.
const (
	Open    DialResult = iota // the connection was established
	Timeout                   // no answer in time (a dropped SYN)
	Refused                   // a RST (nothing listens, or a reject rule)
)

func (r DialResult) String() string {
	switch r {
	case Open:
		return "open"
	case Timeout:
		return "timeout"
	case Refused:
		return "refused"
	}
	return "DialResult(?)"
}

// DialConn connects from ns to TCP addr within timeout and returns the connection, which is
// closed at cleanup, or the dial error.
func DialConn(t testing.TB, ns *nstest.NS, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := ns.Do(t, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// Dial tries one TCP connection from ns to addr, closes it if established, and reports the
// result. Any error other than a timeout or a refusal fails t.
func Dial(t testing.TB, ns *nstest.NS, addr string, timeout time.Duration) DialResult {
	t.Helper()
	var res DialResult
	err := ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		var ne net.Error
		switch {
		case err == nil:
			c.Close()
			res = Open
		case errors.Is(err, syscall.ECONNREFUSED):
			res = Refused
		case errors.As(err, &ne) && ne.Timeout():
			res = Timeout
		default:
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return res
}

// WaitDial retries Dial (300 ms each) until it gives want, and returns how long that took.
// A timeout must be seen twice in a row, so one SYN lost on a loaded machine does not count
// as shut. It fails t if want is not seen within the given time.
func WaitDial(t testing.TB, ns *nstest.NS, addr string, want DialResult, within time.Duration) time.Duration {
	t.Helper()
	start, streak := time.Now(), 0
	for {
		r := Dial(t, ns, addr, 300*time.Millisecond)
		if r == want {
			if streak++; want != Timeout || streak == 2 {
				return time.Since(start)
			}
			continue
		}
		streak = 0
		if time.Since(start) > within {
			t.Fatalf("dial %s: %v, still not %v after %v", addr, r, want, within)
		}
		if r != Timeout {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

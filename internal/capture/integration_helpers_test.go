package capture

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// reader drains a Source in a goroutine so tests can wait for packets with a timeout.
type reader struct {
	ch   chan Packet
	errc chan error
}

// startReading closes src at cleanup, which ends the goroutine.
func startReading(t testing.TB, src Source) *reader {
	r := &reader{ch: make(chan Packet, 4096), errc: make(chan error, 1)}
	go func() {
		for {
			p, err := src.Read()
			if err != nil {
				r.errc <- err
				close(r.ch)
				return
			}
			r.ch <- p
		}
	}()
	t.Cleanup(func() { src.Close() })
	return r
}

// next waits up to d for a packet.
func (r *reader) next(t testing.TB, d time.Duration) (Packet, bool) {
	t.Helper()
	select {
	case p, ok := <-r.ch:
		if !ok {
			t.Fatalf("source ended: %v", <-r.errc)
		}
		return p, true
	case <-time.After(d):
		return Packet{}, false
	}
}

// expect waits for one packet and fails the test if none comes.
func (r *reader) expect(t testing.TB, what string) Packet {
	t.Helper()
	p, ok := r.next(t, 3*time.Second)
	if !ok {
		t.Fatalf("no packet: wanted %s", what)
	}
	return p
}

// expectNone fails the test if a packet arrives within d.
func (r *reader) expectNone(t testing.TB, d time.Duration) {
	t.Helper()
	if p, ok := r.next(t, d); ok {
		t.Fatalf("unexpected packet %v -> %v proto %d payload %q", p.Src, p.Dst, p.Proto, p.Payload)
	}
}

func openSniffer(t testing.TB, ns *nstest.NS, cfg SniffConfig) *Sniffer {
	t.Helper()
	var s *Sniffer
	if err := ns.Do(t, func() (err error) {
		s, err = NewSniffer(cfg)
		return err
	}); err != nil {
		t.Fatalf("NewSniffer(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sendUDP sends payload from a fresh UDP socket in ns to dst and returns the socket's local
// address. With wait > 0 it then reads the socket for that long and returns the read error:
// ECONNREFUSED if an ICMP port unreachable came back, os.ErrDeadlineExceeded if nothing did.
func sendUDP(t testing.TB, ns *nstest.NS, dst string, payload []byte, wait time.Duration) (local *net.UDPAddr, readErr error) {
	t.Helper()
	if err := ns.Do(t, func() error {
		c, err := net.Dial("udp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		local = c.LocalAddr().(*net.UDPAddr)
		if _, err := c.Write(payload); err != nil {
			return err
		}
		if wait > 0 {
			c.SetReadDeadline(time.Now().Add(wait))
			_, readErr = c.Read(make([]byte, 10))
		}
		return nil
	}); err != nil {
		t.Fatalf("send to %s: %v", dst, err)
	}
	return local, readErr
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// drainTCP listens on addr inside ns and, for each connection, reads what the client sends and
// closes it, so that TCP knocks get past the handshake. The listener closes at cleanup.
func drainTCP(t testing.TB, ns *nstest.NS, network, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(t, func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 2048))
			c.Close()
		}
	}()
}

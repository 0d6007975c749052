package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// screenSource is a chanSource that is a capture.Screener, as the Sniffer and the UDPServer
// are: its Read shows each packet to the screen and returns only what the screen leaves.
type screenSource struct {
	*chanSource
	mu       sync.Mutex
	screen   func(capture.Packet) bool
	returned []capture.Packet
}

func (s *screenSource) Screen(f func(capture.Packet) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.screen = f
}

func (s *screenSource) Read() (capture.Packet, error) {
	for {
		p, err := s.chanSource.Read()
		if err != nil {
			return p, err
		}
		s.mu.Lock()
		f := s.screen
		s.mu.Unlock()
		if f != nil && f(p) {
			continue
		}
		s.mu.Lock()
		s.returned = append(s.returned, p)
		s.mu.Unlock()
		return p, nil
	}
}

// runPackets runs a two-worker server over src until the packets are all read.
func runPackets(t *testing.T, s *Server, ch chan capture.Packet, run func() error, pkts ...capture.Packet) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- run() }()
	for _, p := range pkts {
		ch <- p
	}
	close(ch)
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v", err)
	}
}

// TestRunScreensInsideTheSource: with a Screener source the reader's cheap checks run inside
// Read, so a forged packet never leaves the source (no copy), while a valid one does and is
// granted; with a source that is not a Screener the reader settles the same packets itself.
// Both count the same.
func TestRunScreensInsideTheSource(t *testing.T) {
	for _, screener := range []bool{true, false} {
		codec := newFakeCodec()
		valid := pkt("10.99.0.2", codec.add(baseMessage(), keysA))
		forged := forgedPacket(t)
		s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: &fakeFirewall{}, Cache: newFakeCache(),
			NewOpener: codec.opener, Workers: 2, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		base := newChanSource()
		var src capture.Source = base
		ss := &screenSource{chanSource: base}
		if screener {
			src = ss
		}
		runPackets(t, s, base.ch, func() error { return s.Run(context.Background(), src) }, forged, forged, valid, forged)
		st := s.Stats()
		if st.ByReason[BadHMAC] != 3 || st.ByReason[Granted] != 1 || st.Handled != 4 {
			t.Fatalf("screener %v: stats %+v, want 3 bad HMAC and 1 granted", screener, st)
		}
		if screener && (len(ss.returned) != 1 || string(ss.returned[0].Payload) != string(valid.Payload)) {
			t.Fatalf("the source returned %d packets, want only the valid one", len(ss.returned))
		}
	}
}

// TestCheapChecksTakeTheReadTime: on the real clock the cheap checks take the time the source
// read the packet (capture.Packet.Time) as now, so a stanza that had expired by then rejects
// it; an injected clock is always used, whatever the packet says.
func TestCheapChecksTakeTheReadTime(t *testing.T) {
	st := baseStanza()
	st.AccessExpire = time.Now().Add(24 * time.Hour)
	forged := forgedPacket(t)
	late := forged
	late.Time = time.Now().Add(48 * time.Hour)
	for _, c := range []struct {
		name string
		now  func() time.Time
		p    capture.Packet
		want Reason
	}{
		{"real clock, no read time", nil, forged, BadHMAC},
		{"real clock, read after the expiry", nil, late, StanzaExpired},
		{"injected clock, read after the expiry", time.Now, late, BadHMAC},
	} {
		s, err := New(Config{Policy: basePolicy(st), Firewall: &fakeFirewall{}, Cache: newFakeCache(), Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		res, settled := s.cheap(context.Background(), c.p)
		if !settled || res.Reason != c.want {
			t.Errorf("%s: %v (settled %v), want %v", c.name, res.Reason, settled, c.want)
		}
	}
}

// TestRunHandlesALoneKnockInTheReader: with a source that is a Backlog, a valid packet that
// arrives alone is handled by the reader itself (it decodes the source's own buffer: no copy,
// no hand-off), while the packets of a burst go to the workers with their own copies.
func TestRunHandlesALoneKnockInTheReader(t *testing.T) {
	codec := newFakeCodec()
	chunk := make([]byte, 8192)
	var wires [][]byte
	for i := range 3 {
		m := baseMessage()
		m.Random = fmt.Sprintf("12345678901234%02d", i)
		w := codec.add(m, keysA)
		wires = append(wires, chunk[i*2048:i*2048+len(w):i*2048+len(w)])
		copy(wires[i], w)
	}
	var mu sync.Mutex
	aliased := map[int]bool{} // wire number -> decoded in the source's buffer
	open := func(k spa.Keys) (Opener, error) {
		return recordingOpener{fakeOpener{codec, k}, func(wire []byte) {
			for i, w := range wires {
				if unsafe.SliceData(wire) == unsafe.SliceData(w) {
					mu.Lock()
					aliased[i] = true
					mu.Unlock()
				}
			}
		}}, nil
	}
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: &fakeFirewall{}, Cache: newFakeCache(),
		NewOpener: open, Workers: 4, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	src := capture.NewChan(8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// A burst: two packets waiting before the reader starts.
	src.Push(pkt("10.99.0.2", wires[0]))
	src.Push(pkt("10.99.0.2", wires[1]))
	go func() { done <- s.Run(ctx, src) }()
	waitHandled(t, s, 2)
	for s.inFlight.Load() != 0 { // the workers have settled the burst but may not have returned
		time.Sleep(time.Millisecond)
	}
	src.Push(pkt("10.99.0.2", wires[2])) // then one alone
	waitHandled(t, s, 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.ByReason[Granted] != 3 {
		t.Fatalf("stats %+v, want 3 granted", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if aliased[0] {
		t.Error("the first packet of the burst was not handed to a worker with its own copy")
	}
	if !aliased[2] {
		t.Error("the lone packet was not handled by the reader in place")
	}
}

// recordingOpener is a fakeOpener that shows every wire it decodes to seen.
type recordingOpener struct {
	fakeOpener
	seen func(wire []byte)
}

func (o recordingOpener) Decode(wire []byte) (*spa.Message, error) {
	o.seen(wire)
	return o.fakeOpener.Decode(wire)
}

// waitHandled waits until s has settled n packets.
func waitHandled(t *testing.T, s *Server, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Handled < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d packets handled, want %d", s.Stats().Handled, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// aliasGnuPG is a GnuPG Opener that records whether the wire it decodes is the pushed buffer.
type aliasGnuPG struct {
	GnuPGOpener
	pushed  []byte
	aliased *atomic.Bool
}

func (a aliasGnuPG) Decode(wire []byte) (*spa.Message, error) {
	if unsafe.SliceData(wire) == unsafe.SliceData(a.pushed) {
		a.aliased.Store(true)
	}
	return a.GnuPGOpener.Decode(wire)
}

// TestRunGnuPGPacketNotInline: a lone GnuPG packet for a stanza without HMAC key passes the
// reader's checks unauthenticated, so the reader hands it to a worker (its private-key
// decryption must not hold up the reading of other packets) instead of handling it itself.
func TestRunGnuPGPacketNotInline(t *testing.T) {
	w := newGPGWorld(t)
	msg := baseMessage()
	msg.Random = ""
	wire := w.wire(t, msg, w.server, w.client, spa.Keys{})
	var aliased atomic.Bool
	keys := newKeyCache(w.loader(t))
	clock := func() time.Time { return testNow }
	s, err := New(Config{Policy: basePolicy(gpgStanza(w)), Firewall: &fakeFirewall{}, Cache: newFakeCache(), Now: clock,
		Workers: 4, GnuPG: func(st *fwconf.Stanza) (GnuPGOpener, error) {
			o, err := NewGnuPGOpener(st, keys.get, clock)
			return aliasGnuPG{o, wire, &aliased}, err
		}})
	if err != nil {
		t.Fatal(err)
	}
	src := capture.NewChan(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, src) }()
	src.Push(pkt("10.99.0.2", wire))
	waitHandled(t, s, 1)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.ByReason[Granted] != 1 {
		t.Fatalf("stats %+v, want the GnuPG packet granted", st)
	}
	if aliased.Load() {
		t.Fatal("the reader decrypted a GnuPG packet itself")
	}
}

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// fakeCodec decodes packets registered with add: the wire text is a handle, the message and
// the keys it was "encrypted" with are stored beside it. Its openers (Config.NewOpener) stand
// in for spa.Decoder.
type fakeCodec struct {
	mu   sync.Mutex
	pkts map[string]fakePacket
	n    int
}

type fakePacket struct {
	keys spa.Keys
	msg  spa.Message
}

func newFakeCodec() *fakeCodec { return &fakeCodec{pkts: map[string]fakePacket{}} }

// add registers m encrypted with k and returns its wire bytes: 140 base64 characters, so
// spa.CheckWire passes them as it would a real packet.
func (c *fakeCodec) add(m spa.Message, k spa.Keys) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	w := fmt.Sprintf("fakewire%06d", c.n)
	w += strings.Repeat("A", 140-len(w))
	c.pkts[w] = fakePacket{k, m}
	return []byte(w)
}

func (c *fakeCodec) lookup(wire []byte) (fakePacket, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pkts[string(wire)]
	return p, ok
}

// opener is the fake Config.NewOpener.
func (c *fakeCodec) opener(k spa.Keys) (Opener, error) { return fakeOpener{c, k}, nil }

type fakeOpener struct {
	c *fakeCodec
	k spa.Keys
}

func (o fakeOpener) Decode(wire []byte) (*spa.Message, error) {
	p, ok := o.c.lookup(wire)
	switch {
	case !ok:
		return nil, fmt.Errorf("fake: %w", spa.ErrDecrypt)
	case !bytes.Equal(p.keys.HMACKey, o.k.HMACKey):
		return nil, fmt.Errorf("fake: %w", spa.ErrHMACMismatch)
	case !bytes.Equal(p.keys.Key, o.k.Key):
		return nil, fmt.Errorf("fake: %w", spa.ErrDecrypt)
	}
	m := p.msg
	return &m, nil
}

func (o fakeOpener) VerifyCheckedHMAC(wire []byte) ([]byte, error) {
	p, ok := o.c.lookup(wire)
	if len(o.k.HMACKey) > 0 && (!ok || !bytes.Equal(p.keys.HMACKey, o.k.HMACKey)) {
		return nil, fmt.Errorf("fake: %w", spa.ErrHMACMismatch)
	}
	return wire, nil
}

// fakeFirewall records grants.
type fakeFirewall struct {
	mu     sync.Mutex
	grants []firewall.Grant
	err    error
}

func (f *fakeFirewall) Grant(_ context.Context, g firewall.Grant) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.grants = append(f.grants, g)
	return nil
}

// list returns the grants made, without their stanza numbers (stanzas returns those).
func (f *fakeFirewall) list() []firewall.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]firewall.Grant(nil), f.grants...)
	for i := range out {
		out[i].Stanza = 0
	}
	return out
}

// stanzas returns the stanza number each grant carries.
func (f *fakeFirewall) stanzas() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]int, len(f.grants))
	for i, g := range f.grants {
		out[i] = g.Stanza
	}
	return out
}

// fakeCache is an in-memory replay cache that records keep times, and can fail.
type fakeCache struct {
	mu   sync.Mutex
	m    map[string]time.Duration
	fail error
}

func newFakeCache() *fakeCache { return &fakeCache{m: map[string]time.Duration{}} }

func (c *fakeCache) CheckAndAdd(ctx context.Context, d string, _ time.Time, keep time.Duration) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		return false, errors.New("fake cache: call without a deadline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return false, c.fail
	}
	if _, ok := c.m[d]; ok {
		return false, nil
	}
	c.m[d] = keep
	return true, nil
}

func (c *fakeCache) Seen(ctx context.Context, d string) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		return false, errors.New("fake cache: call without a deadline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return false, c.fail
	}
	_, ok := c.m[d]
	return ok, nil
}

func (c *fakeCache) keep(wire []byte) (time.Duration, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[spa.ReplayDigest(wire)]
	return k, ok
}

func (c *fakeCache) Len() int     { c.mu.Lock(); defer c.mu.Unlock(); return len(c.m) }
func (c *fakeCache) Close() error { return nil }

// logBuffer is a concurrency-safe log sink for tests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var errClosed = fmt.Errorf("fake source: %w", net.ErrClosed)

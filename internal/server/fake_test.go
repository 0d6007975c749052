package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// fakeCodec decodes packets registered with add: the wire text is a handle, the message and
// the keys it was "encrypted" with are stored beside it.
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

// add registers m encrypted with k and returns its wire bytes.
func (c *fakeCodec) add(m spa.Message, k spa.Keys) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	w := fmt.Sprintf("fakewire-%06d", c.n)
	c.pkts[w] = fakePacket{k, m}
	return []byte(w)
}

func (c *fakeCodec) CheckWire(wire []byte) error {
	if !bytes.HasPrefix(wire, []byte("fakewire-")) {
		return spa.ErrNotBase64
	}
	return nil
}

func (c *fakeCodec) Decode(wire []byte, k spa.Keys) (*spa.Message, error) {
	c.mu.Lock()
	p, ok := c.pkts[string(wire)]
	c.mu.Unlock()
	switch {
	case !ok:
		return nil, fmt.Errorf("fake: %w", spa.ErrDecrypt)
	case !bytes.Equal(p.keys.HMACKey, k.HMACKey):
		return nil, fmt.Errorf("fake: %w", spa.ErrHMACMismatch)
	case !bytes.Equal(p.keys.Key, k.Key):
		return nil, fmt.Errorf("fake: %w", spa.ErrDecrypt)
	}
	m := p.msg
	return &m, nil
}

func (c *fakeCodec) VerifyHMAC(wire []byte, k spa.Keys) error {
	c.mu.Lock()
	p, ok := c.pkts[string(wire)]
	c.mu.Unlock()
	if len(k.HMACKey) > 0 && (!ok || !bytes.Equal(p.keys.HMACKey, k.HMACKey)) {
		return fmt.Errorf("fake: %w", spa.ErrHMACMismatch)
	}
	return nil
}

func (c *fakeCodec) ReplayDigest(wire []byte) string { return "d:" + string(wire) }

func (c *fakeCodec) ParseAccess(msg string) (spa.Access, error) {
	parts := strings.Split(msg, ",")
	if len(parts) < 2 {
		return spa.Access{}, errors.New("fake: no ports")
	}
	a, err := netip.ParseAddr(parts[0])
	if err != nil {
		return spa.Access{}, err
	}
	acc := spa.Access{}
	if !a.IsUnspecified() {
		acc.AllowIP = a
	}
	for _, pp := range parts[1:] {
		proto, port, ok := strings.Cut(pp, "/")
		n, err := strconv.Atoi(port)
		if !ok || err != nil || n < 1 || n > 65535 {
			return spa.Access{}, fmt.Errorf("fake: bad port %q", pp)
		}
		acc.Ports = append(acc.Ports, spa.ProtoPort{Proto: strings.ToLower(proto), Port: uint16(n)})
	}
	return acc, nil
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

func (f *fakeFirewall) list() []firewall.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]firewall.Grant(nil), f.grants...)
}

// fakeCache is an in-memory replay cache that records keep times.
type fakeCache struct {
	mu   sync.Mutex
	m    map[string]time.Duration
	fail error
}

func newFakeCache() *fakeCache { return &fakeCache{m: map[string]time.Duration{}} }

func (c *fakeCache) Seen(d string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return false, c.fail
	}
	_, ok := c.m[d]
	return ok, nil
}

func (c *fakeCache) Add(d string, _ time.Time, keep time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[d] = keep
	return nil
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

package firewall

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Fake is an in-memory Backend for callers' unit tests. It keeps every Kind of grant, one per
// identity (Grant.Ident). Grants expire by its clock, which is time.Now unless Now is set. It is safe for concurrent use; the zero value is ready (but, like
// the real backend, refuses grants until Init).
type Fake struct {
	// Now is the clock; nil means time.Now. Set it before use.
	Now func() time.Time
	// Err, if set, is returned by every method (to test callers' error paths).
	Err error
	// NoNAT makes Forward and LocalNAT grants fail with ErrNATDisabled, as Nftables does
	// without Config.NAT.
	NoNAT bool

	mu      sync.Mutex
	inited  bool
	closed  bool
	expires map[fakeKey]fakeVal
	// Calls counts method calls by name ("Init", "Grant", ...), for assertions.
	Calls map[string]int
}

// fakeKey is a grant's identity (Grant.Ident).
type fakeKey = Grant

type fakeVal struct {
	g  Grant     // the grant as last made (its values and timeout)
	at time.Time // expiry
}

var _ Backend = (*Fake)(nil)

func (f *Fake) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// enter locks f, counts the call and returns the error the call should fail with, if any.
func (f *Fake) enter(name string) error {
	f.mu.Lock()
	if f.Calls == nil {
		f.Calls = map[string]int{}
	}
	f.Calls[name]++
	if f.Err != nil {
		return f.Err
	}
	if f.closed {
		return ErrClosed
	}
	if !f.inited && name != "Init" && name != "Remove" && name != "Heal" && name != "Check" {
		return ErrNotInitialized
	}
	return nil
}

// expire drops grants whose time is up. f.mu is held.
func (f *Fake) expire() {
	now := f.now()
	for k, v := range f.expires {
		if !now.Before(v.at) {
			delete(f.expires, k)
		}
	}
}

// Init marks f ready; grants are kept.
func (f *Fake) Init(ctx context.Context) error {
	defer f.mu.Unlock()
	if err := f.enter("Init"); err != nil {
		return err
	}
	f.inited = true
	if f.expires == nil {
		f.expires = map[fakeKey]fakeVal{}
	}
	return nil
}

// Grant adds g or restarts its timeout.
func (f *Fake) Grant(ctx context.Context, g Grant) error {
	defer f.mu.Unlock()
	if err := f.enter("Grant"); err != nil {
		return err
	}
	if err := g.Validate(); err != nil {
		return err
	}
	if g.Kind != Access && f.NoNAT {
		return ErrNATDisabled
	}
	f.expires[g.Ident()] = fakeVal{g, f.now().Add(g.Timeout)}
	return nil
}

// GrantMany grants all of gs, or none if one is invalid (like Nftables.GrantMany).
func (f *Fake) GrantMany(ctx context.Context, gs []Grant) error {
	for _, g := range gs {
		if err := g.Validate(); err != nil {
			return err
		}
	}
	for _, g := range gs {
		if err := f.Grant(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// Revoke removes g if present.
func (f *Fake) Revoke(ctx context.Context, g Grant) error {
	defer f.mu.Unlock()
	if err := f.enter("Revoke"); err != nil {
		return err
	}
	if err := g.validateKey(); err != nil {
		return err
	}
	delete(f.expires, g.Ident())
	return nil
}

// List returns the live grants, sorted by address, protocol, port, kind and NAT target.
func (f *Fake) List(ctx context.Context) ([]Entry, error) {
	defer f.mu.Unlock()
	if err := f.enter("List"); err != nil {
		return nil, err
	}
	f.expire()
	now := f.now()
	out := make([]Entry, 0, len(f.expires))
	for k, v := range f.expires {
		g := k
		g.Timeout, g.SNAT, g.Masquerade, g.DisableDNAT = v.g.Timeout, v.g.SNAT.Unmap(), v.g.Masquerade, v.g.DisableDNAT
		out = append(out, Entry{Grant: g, Expires: v.at.Sub(now)})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.Src.Compare(b.Src); c != 0 {
			return c < 0
		}
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if c := a.Dst.Compare(b.Dst); c != 0 {
			return c < 0
		}
		if c := a.NATAddr.Compare(b.NATAddr); c != 0 {
			return c < 0
		}
		return a.NATPort < b.NATPort
	})
	return out, nil
}

// Allowed reports whether a packet from src to proto/port would pass now by a grant for any
// destination (one without Dst), as the kernel would decide it from the access grant sets.
func (f *Fake) Allowed(src netip.Addr, proto uint8, port uint16) bool {
	return f.AllowedTo(src, netip.Addr{}, proto, port)
}

// AllowedTo reports whether a packet from src to dst, proto/port would pass now: by a grant
// for any destination, or by one whose Dst is dst.
func (f *Fake) AllowedTo(src, dst netip.Addr, proto uint8, port uint16) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	k := Grant{Src: src.Unmap(), Proto: proto, Port: port}
	if _, ok := f.expires[k]; ok {
		return true
	}
	if !dst.IsValid() {
		return false
	}
	k.Dst = dst.Unmap()
	_, ok := f.expires[k]
	return ok
}

// Live returns the live grant with g's identity (Grant.Ident) and its values, if any.
func (f *Fake) Live(g Grant) (Grant, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire()
	v, ok := f.expires[g.Ident()]
	return v.g, ok
}

// RevokeAll removes all grants.
func (f *Fake) RevokeAll(ctx context.Context) error {
	defer f.mu.Unlock()
	if err := f.enter("RevokeAll"); err != nil {
		return err
	}
	clear(f.expires)
	return nil
}

// Remove removes all grants and un-initializes f.
func (f *Fake) Remove(ctx context.Context) error {
	defer f.mu.Unlock()
	if err := f.enter("Remove"); err != nil {
		return err
	}
	f.expires = nil
	f.inited = false
	return nil
}

// Tamper simulates someone else flushing the ruleset: grants are lost and Check reports the
// table missing until Heal.
func (f *Fake) Tamper() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expires = nil
	f.inited = false
}

// Check reports "table" while f is not initialised (never, removed or tampered with).
func (f *Fake) Check(ctx context.Context) ([]string, error) {
	defer f.mu.Unlock()
	if err := f.enter("Check"); err != nil {
		return nil, err
	}
	if !f.inited {
		return []string{"table"}, nil
	}
	return nil, nil
}

// Heal is Init.
func (f *Fake) Heal(ctx context.Context) error {
	defer f.mu.Unlock()
	if err := f.enter("Heal"); err != nil {
		return err
	}
	f.inited = true
	if f.expires == nil {
		f.expires = map[fakeKey]fakeVal{}
	}
	return nil
}

// Close makes later calls fail with ErrClosed.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Count returns how many times the method name was called (safe while others call f).
func (f *Fake) Count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Calls[name]
}

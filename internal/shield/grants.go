package shield

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// KeyTable is the live key table of a listener; *tcpmd5.Listener implements it.
type KeyTable interface {
	SetKey(prefix netip.Prefix, key tcpmd5.Key) error
	RemoveKey(prefix netip.Prefix) error
	// Replace makes rules the whole table, leaving the previous one in force when it
	// fails (see tcpmd5.Listener.Replace).
	Replace(rules []tcpmd5.KeyRule) error
	Keys() []tcpmd5.KeyRule
}

var _ KeyTable = (*tcpmd5.Listener)(nil)

// Grants adds per-host keys with an expiry to a live listener. This is the seam for SPA:
// a verified knock calls Grant(source address, derived key, ttl), and the source can then
// connect with that key until the grant expires. A grant over a host that already had a
// static rule restores that rule when it expires. Safe for concurrent use.
type Grants struct {
	table KeyTable
	now   func() time.Time

	mu     sync.Mutex
	grants map[netip.Prefix]grant
}

type grant struct {
	until time.Time
	key   tcpmd5.Key // the granted key
	prev  tcpmd5.Key // static key to restore; zero if none
}

// NewGrants manages grants on table. now is the clock (nil: time.Now).
func NewGrants(table KeyTable, now func() time.Time) *Grants {
	if now == nil {
		now = time.Now
	}
	return &Grants{table: table, now: now, grants: map[netip.Prefix]grant{}}
}

// Grant lets addr (an exact /32 or /128) connect with key for ttl. Granting the same
// address again replaces the key and the expiry.
func (g *Grants) Grant(addr netip.Addr, key tcpmd5.Key, ttl time.Duration) error {
	if !addr.IsValid() || ttl <= 0 {
		return fmt.Errorf("shield: grant for %v: need an address and a positive ttl", addr)
	}
	addr = addr.Unmap().WithZone("")
	p := netip.PrefixFrom(addr, addr.BitLen())
	g.mu.Lock()
	defer g.mu.Unlock()
	old, had := g.grants[p]
	if !had {
		for _, r := range g.table.Keys() {
			if r.Prefix == p {
				old.prev = r.Key
			}
		}
	}
	if err := g.table.SetKey(p, key); err != nil {
		return fmt.Errorf("shield: grant for %v: %w", addr, err)
	}
	g.grants[p] = grant{until: g.now().Add(ttl), key: key, prev: old.prev}
	return nil
}

// Expire removes the grants whose time is up and returns how many it removed.
func (g *Grants) Expire() (int, error) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	var firstErr error
	for p, gr := range g.grants {
		if now.Before(gr.until) {
			continue
		}
		var err error
		if gr.prev.IsZero() {
			err = g.table.RemoveKey(p)
		} else {
			err = g.table.SetKey(p, gr.prev)
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("shield: expire grant for %v: %w", p, err)
			}
			continue
		}
		delete(g.grants, p)
		n++
	}
	return n, firstErr
}

// Len returns the number of live grants.
func (g *Grants) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.grants)
}

// Run calls Expire at every tick until ctx ends.
func (g *Grants) Run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			g.Expire()
		}
	}
}

// Apply makes want the table's rules, for a reloaded key file, in one
// KeyTable.Replace: prefixes that left the file are removed before new ones are added,
// and if the kernel refuses the new table the previous one stays in force (the error is
// then a *tcpmd5.ReplaceError). A prefix under a live grant keeps the grant's key; the
// reloaded rule for it, or its absence, is what the grant restores when it expires.
// grants may be nil. want's prefixes are normalised as ParseKeyFile returns them.
func Apply(table KeyTable, want []tcpmd5.KeyRule, grants *Grants) error {
	if grants == nil {
		return table.Replace(want)
	}
	grants.mu.Lock()
	defer grants.mu.Unlock()
	final := make([]tcpmd5.KeyRule, 0, len(want)+len(grants.grants))
	static := map[netip.Prefix]tcpmd5.Key{}
	for _, r := range want {
		if _, granted := grants.grants[r.Prefix]; granted {
			static[r.Prefix] = r.Key
			continue
		}
		final = append(final, r)
	}
	for p, gr := range grants.grants {
		final = append(final, tcpmd5.KeyRule{Prefix: p, Key: gr.key})
	}
	if err := table.Replace(final); err != nil {
		return err
	}
	for p, gr := range grants.grants {
		gr.prev = static[p]
		grants.grants[p] = gr
	}
	return nil
}

package md5grant

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/shield"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// Granter takes expiring per-address keys; *shield.Grants implements it.
type Granter interface {
	// Grant lets addr (an exact /32 or /128) connect with key for ttl; granting an
	// address again replaces its key and expiry.
	Grant(addr netip.Addr, key tcpmd5.Key, ttl time.Duration) error
}

var _ Granter = (*shield.Grants)(nil)

// DefaultMaxKeysPerStanza is how many live TCP-MD5 keys (granted addresses) one
// SESAME_MD5 stanza may hold at once unless configured otherwise: one authorised user
// knocking with many allow-IPs cannot fill the listener's ~960-key table.
const DefaultMaxKeysPerStanza = 64

// ErrStanzaFull is returned (wrapped) for a grant that would give a stanza more live
// keys than its limit.
var ErrStanzaFull = errors.New("the stanza holds its limit of live TCP-MD5 keys")

// A Hook turns the firewall grants of SESAME_MD5 stanzas into TCP-MD5 grants, at most
// MaxPerStanza live keys per stanza. Safe for concurrent use.
type Hook struct {
	Grants Granter
	// MaxPerStanza is the most addresses one stanza may hold a key for at once;
	// 0 means DefaultMaxKeysPerStanza, a negative value no limit. Renewing an address
	// the stanza already holds does not count again.
	MaxPerStanza int
	// Now is the clock of the grants' expiry (nil: time.Now); it must be Grants' clock.
	Now func() time.Time

	mu    sync.Mutex
	owner map[netip.Addr]held // whose key each granted address holds, until when
}

type held struct {
	stanza int
	until  time.Time
}

// OnGrant is called after the firewall granted gs for stanza st. For a stanza without
// SESAME_MD5 it does nothing. Otherwise every distinct granted address gets the stanza's
// derived key (Derive) for the longest timeout among its grants, unless that would take
// the stanza over its limit: those addresses get no key and the error matches
// ErrStanzaFull. It returns the first error and still tries the other addresses.
func (h *Hook) OnGrant(st *fwconf.Stanza, gs []firewall.Grant) error {
	if !st.MD5 || len(gs) == 0 {
		return nil
	}
	key, err := Derive(st.Keys)
	if err != nil {
		return fmt.Errorf("md5grant: stanza #%d: %w", st.Num, err)
	}
	ttl := map[netip.Addr]time.Duration{}
	var order []netip.Addr
	for _, g := range gs {
		a := g.Src.Unmap().WithZone("")
		if _, seen := ttl[a]; !seen {
			order = append(order, a)
		}
		ttl[a] = max(ttl[a], g.Timeout)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.prune(now)
	var first error
	for _, a := range order {
		if err := h.room(st.Num, []netip.Addr{a}); err != nil {
			first = firstErr(first, fmt.Errorf("md5grant: no TCP-MD5 key for %v: %w", a, err))
			continue
		}
		if err := h.Grants.Grant(a, key, ttl[a]); err != nil {
			first = firstErr(first, fmt.Errorf("md5grant: stanza #%d: %w", st.Num, err))
			continue
		}
		h.owner[a] = held{stanza: st.Num, until: now.Add(ttl[a])}
	}
	return first
}

// Check reports whether granting addrs for stanza st would stay within its limit: nil,
// or an error matching ErrStanzaFull. A server can call it before it opens the firewall,
// to refuse such a knock whole. It changes nothing.
func (h *Hook) Check(st *fwconf.Stanza, addrs []netip.Addr) error {
	if !st.MD5 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prune(h.now())
	if err := h.room(st.Num, addrs); err != nil {
		return fmt.Errorf("md5grant: %w", err)
	}
	return nil
}

// Held returns how many live keys stanza num holds.
func (h *Hook) Held(num int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.prune(h.now())
	return h.count(num)
}

func (h *Hook) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// prune forgets the grants whose time is up. The caller holds h.mu.
func (h *Hook) prune(now time.Time) {
	if h.owner == nil {
		h.owner = map[netip.Addr]held{}
	}
	for a, o := range h.owner {
		if !now.Before(o.until) {
			delete(h.owner, a)
		}
	}
}

func (h *Hook) count(num int) int {
	n := 0
	for _, o := range h.owner {
		if o.stanza == num {
			n++
		}
	}
	return n
}

// room checks that stanza num may hold keys for addrs too. The caller holds h.mu.
func (h *Hook) room(num int, addrs []netip.Addr) error {
	limit := h.MaxPerStanza
	if limit == 0 {
		limit = DefaultMaxKeysPerStanza
	}
	if limit < 0 {
		return nil
	}
	n, extra := h.count(num), 0
	for _, a := range addrs {
		if o, ok := h.owner[a.Unmap().WithZone("")]; !ok || o.stanza != num {
			extra++
		}
	}
	if n+extra > limit {
		return fmt.Errorf("%w (stanza #%d holds %d of %d; %d more asked)", ErrStanzaFull, num, n, limit, extra)
	}
	return nil
}

// firstErr keeps the first error.
func firstErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

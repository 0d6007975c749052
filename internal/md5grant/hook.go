package md5grant

import (
	"fmt"
	"net/netip"
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

// A Hook turns the firewall grants of SESAME_MD5 stanzas into TCP-MD5 grants.
type Hook struct {
	Grants Granter
}

// OnGrant is called after the firewall granted gs for stanza st. For a stanza without
// SESAME_MD5 it does nothing. Otherwise every distinct granted address gets the stanza's
// derived key (Derive) for the longest timeout among its grants. It returns the first
// error and still tries the other addresses.
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
	var first error
	for _, a := range order {
		if err := h.Grants.Grant(a, key, ttl[a]); err != nil && first == nil {
			first = fmt.Errorf("md5grant: stanza #%d: %w", st.Num, err)
		}
	}
	return first
}

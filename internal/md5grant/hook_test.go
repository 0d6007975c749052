package md5grant

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// fakeGranter records grants; fail makes Grant fail for that address.
type fakeGranter struct {
	got  []fakeGrant
	fail netip.Addr
}

type fakeGrant struct {
	addr netip.Addr
	key  tcpmd5.Key
	ttl  time.Duration
}

func (f *fakeGranter) Grant(addr netip.Addr, key tcpmd5.Key, ttl time.Duration) error {
	if addr == f.fail {
		return errors.New("no room")
	}
	f.got = append(f.got, fakeGrant{addr, key, ttl})
	return nil
}

var (
	keysA = spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")}
	keysB = spa.Keys{Key: []byte("otherkey"), HMACKey: []byte("otherhmac")}
)

func TestHookOnGrant(t *testing.T) {
	a4 := netip.MustParseAddr("10.99.0.2")
	a6 := netip.MustParseAddr("fd99::2")
	mapped := netip.AddrFrom16(a4.As16())
	st := &fwconf.Stanza{Num: 3, Keys: keysA, MD5: true}
	want, _ := Derive(keysA)

	f := &fakeGranter{}
	h := &Hook{Grants: f}
	err := h.OnGrant(st, []firewall.Grant{
		{Src: mapped, Proto: 6, Port: 22, Timeout: 30 * time.Second},
		{Src: a4, Proto: 17, Port: 53, Timeout: 60 * time.Second},
		{Src: a6, Proto: 6, Port: 22, Timeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.got) != 2 || f.got[0].addr != a4 || f.got[0].ttl != 60*time.Second || !f.got[0].key.Equal(want) ||
		f.got[1].addr != a6 || f.got[1].ttl != 10*time.Second || !f.got[1].key.Equal(want) {
		t.Errorf("grants %+v", f.got)
	}

	// Stanzas without SESAME_MD5 and empty grant lists do nothing.
	f.got = nil
	if err := h.OnGrant(&fwconf.Stanza{Keys: keysA}, []firewall.Grant{{Src: a4, Timeout: time.Second}}); err != nil || len(f.got) != 0 {
		t.Errorf("stanza without MD5: %v %+v", err, f.got)
	}
	if err := h.OnGrant(st, nil); err != nil || len(f.got) != 0 {
		t.Errorf("no grants: %v %+v", err, f.got)
	}

	// Another stanza's grant carries that stanza's key.
	other, _ := Derive(keysB)
	h.OnGrant(&fwconf.Stanza{Keys: keysB, MD5: true}, []firewall.Grant{{Src: a4, Timeout: time.Second}})
	if len(f.got) != 1 || !f.got[0].key.Equal(other) || other.Equal(want) {
		t.Errorf("second stanza: %+v", f.got)
	}

	// A failing address is reported and the others still get their key.
	f.got, f.fail = nil, a4
	err = h.OnGrant(st, []firewall.Grant{{Src: a4, Timeout: time.Second}, {Src: a6, Timeout: time.Second}})
	if err == nil || len(f.got) != 1 || f.got[0].addr != a6 {
		t.Errorf("failing grant: %v %+v", err, f.got)
	}
	// A stanza without a key cannot derive one.
	if err := h.OnGrant(&fwconf.Stanza{MD5: true}, []firewall.Grant{{Src: a6, Timeout: time.Second}}); !errors.Is(err, ErrNoKey) {
		t.Errorf("keyless stanza: %v", err)
	}
}

// TestHookStanzaLimit is issue 15's key-table flood: one stanza knocking with many
// allow-IPs gets at most MaxPerStanza live keys; renewals do not count again; an
// address another stanza takes over stops counting for the first; expiry frees room.
func TestHookStanzaLimit(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	f := &fakeGranter{}
	h := &Hook{Grants: f, MaxPerStanza: 3, Now: func() time.Time { return now }}
	a := &fwconf.Stanza{Num: 1, Keys: keysA, MD5: true}
	b := &fwconf.Stanza{Num: 2, Keys: keysB, MD5: true}
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	grant := func(st *fwconf.Stanza, ttl time.Duration, ids ...int) error {
		var gs []firewall.Grant
		for _, i := range ids {
			gs = append(gs, firewall.Grant{Src: addr(i), Proto: 6, Port: 2222, Timeout: ttl})
		}
		return h.OnGrant(st, gs)
	}
	if err := grant(a, time.Minute, 1, 2, 3); err != nil {
		t.Fatal(err)
	}
	if err := h.Check(a, []netip.Addr{addr(4)}); !errors.Is(err, ErrStanzaFull) {
		t.Errorf("Check for a 4th address: %v, want ErrStanzaFull", err)
	}
	f.got = nil
	err := grant(a, time.Minute, 3, 4, 5)
	if !errors.Is(err, ErrStanzaFull) || len(f.got) != 1 || f.got[0].addr != addr(3) {
		t.Errorf("renew 3 and add 4, 5 at the limit: %v, granted %+v; want only the renewal", err, f.got)
	}
	t.Log(err)
	if n := h.Held(1); n != 3 {
		t.Errorf("stanza 1 holds %d keys, want 3", n)
	}
	// Another stanza has its own budget, and taking over address 2 frees a place of a.
	if err := grant(b, 10*time.Second, 2, 6); err != nil {
		t.Fatalf("stanza 2: %v", err)
	}
	if n := h.Held(1); n != 2 {
		t.Errorf("after stanza 2 took 192.0.2.2, stanza 1 holds %d, want 2", n)
	}
	if err := grant(a, time.Minute, 7); err != nil {
		t.Errorf("stanza 1 after losing an address: %v", err)
	}
	// Expired grants no longer count.
	now = now.Add(time.Minute)
	if err := grant(a, time.Minute, 8, 9, 10); err != nil || h.Held(1) != 3 || h.Held(2) != 0 {
		t.Errorf("after expiry: %v, held %d and %d", err, h.Held(1), h.Held(2))
	}
	// A negative limit means none.
	h.MaxPerStanza = -1
	if err := grant(a, time.Minute, 11, 12, 13, 14); err != nil || h.Held(1) != 7 {
		t.Errorf("no limit: %v, held %d", err, h.Held(1))
	}
	if (&Hook{}).MaxPerStanza != 0 || DefaultMaxKeysPerStanza != 64 {
		t.Error("default changed")
	}
}

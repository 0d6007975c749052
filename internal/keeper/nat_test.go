package keeper

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/ledger"
)

var (
	natTarget = netip.MustParseAddr("10.0.0.5")
	fwdGrant  = firewall.Grant{Src: cli, Proto: firewall.ProtoTCP, Port: 55000, Timeout: 100 * time.Second,
		Kind: firewall.Forward, NATAddr: natTarget, NATPort: 22, Masquerade: true, Stanza: 2}
	lnatGrant = firewall.Grant{Src: cli6, Proto: firewall.ProtoTCP, Port: 55000, Timeout: 100 * time.Second,
		Kind: firewall.LocalNAT, NATAddr: netip.MustParseAddr("2001:db8::1"), NATPort: 22}
)

// TestNATGrants: NAT grants merge per full key (a shorter knock keeps the longer grant and its
// values; an access grant of the same source, protocol and port is another grant), survive a
// flush through the heal, are adopted from the kernel at Start, and are revoked by key.
func TestNATGrants(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	access := grant(cli, 55000, 10*time.Second)
	if err := r.k.GrantMany(ctx, []firewall.Grant{fwdGrant, lnatGrant, access}); err != nil {
		t.Fatal(err)
	}
	shorter := fwdGrant
	shorter.Timeout, shorter.Masquerade, shorter.SNAT = 10*time.Second, false, netip.MustParseAddr("10.0.0.1")
	r.clk.Add(time.Second)
	if err := r.k.Grant(ctx, shorter); err != nil {
		t.Fatal(err)
	}
	live, ok := r.fw.Live(fwdGrant)
	if !ok || live.Timeout != 99*time.Second || !live.Masquerade || live.SNAT.IsValid() {
		t.Fatalf("after a shorter knock the forward grant is %+v, %v; want 99 s with masquerade", live, ok)
	}
	if n := len(r.k.Live()); n != 3 {
		t.Fatalf("ledger holds %d grants, want 3 (forward, local NAT, access)", n)
	}

	r.fw.Tamper()
	if _, err := r.k.CheckNow(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	for _, g := range []firewall.Grant{fwdGrant, lnatGrant} {
		got, ok := r.fw.Live(g)
		if !ok || got.Kind != g.Kind || got.NATAddr != g.NATAddr || got.Masquerade != g.Masquerade {
			t.Fatalf("after heal %v is %+v, %v", g, got, ok)
		}
	}

	// A new keeper (restart with an empty ledger) adopts what the kernel holds.
	k2 := New(Config{Backend: r.fw, Ledger: mustLedger(t, r.clk), Table: "sesame", Now: r.clk.Now, CheckEvery: time.Hour})
	if _, adopted, err := k2.Start(ctx, false); err != nil || adopted != 3 {
		t.Fatalf("Start adopted %d, %v; want 3", adopted, err)
	}
	found := false
	for _, e := range k2.Live() {
		if e.Key == KeyOf(fwdGrant) && e.Masquerade {
			found = true
		}
	}
	if !found {
		t.Fatalf("adopted ledger %v lacks %v", k2.Live(), fwdGrant)
	}

	if err := r.k.Revoke(ctx, []ledger.Key{KeyOf(lnatGrant)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.fw.Live(lnatGrant); ok {
		t.Fatal("revoked local NAT grant still live")
	}
	if g := GrantOf(EntryOf(fwdGrant, r.clk.Now())); g.Ident() != fwdGrant.Ident() || !g.Masquerade || g.Stanza != 2 {
		t.Fatalf("GrantOf(EntryOf(g)) = %+v", g)
	}
}

func TestLostGrants(t *testing.T) {
	for missing, want := range map[string]bool{"set dnat4": true, "set grants6": true, "set guarded": false,
		"chain nat_pre": false, "table inet sesame": true} {
		if got := lostGrants([]string{missing}); got != want {
			t.Errorf("lostGrants(%q) = %v", missing, got)
		}
	}
}

func mustLedger(t *testing.T, clk *clock) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open("", clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

package keeper

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/ledger"
)

// TestDstGrants: a grant with a destination is its own grant next to the same one without,
// is restored with its destination after a flush, is adopted from the kernel with it, and is
// revoked by its key.
func TestDstGrants(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddr("192.0.2.1")
	g := grant(cli, 22, 100*time.Second)
	g.Dst = dst
	anyDst := grant(cli, 22, 10*time.Second)
	if err := r.k.GrantMany(ctx, []firewall.Grant{g, anyDst}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.k.Live()); n != 2 {
		t.Fatalf("ledger holds %d grants, want 2 (with and without destination)", n)
	}
	r.fw.Tamper()
	if _, err := r.k.CheckNow(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.fw.Live(g); !ok || got.Dst != dst {
		t.Fatalf("after heal %v is %+v, %v", g, got, ok)
	}
	if !r.fw.AllowedTo(cli, dst, firewall.ProtoTCP, 22) {
		t.Fatal("healed destination grant does not allow its destination")
	}

	k2 := New(Config{Backend: r.fw, Ledger: mustLedger(t, r.clk), Table: "sesame", Now: r.clk.Now, CheckEvery: time.Hour})
	if _, adopted, err := k2.Start(ctx, false); err != nil || adopted != 2 {
		t.Fatalf("Start adopted %d, %v; want 2", adopted, err)
	}
	found := false
	for _, e := range k2.Live() {
		found = found || e.Key == KeyOf(g) && e.Dst == dst
	}
	if !found {
		t.Fatalf("adopted ledger %v lacks %v", k2.Live(), g)
	}

	if err := r.k.Revoke(ctx, []ledger.Key{KeyOf(g)}); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.fw.Live(g); ok {
		t.Fatal("revoked destination grant still live")
	}
	if _, ok := r.fw.Live(anyDst); !ok {
		t.Fatal("revoking the destination grant removed the grant for any destination")
	}
	if back := GrantOf(EntryOf(g, r.clk.Now())); back.Dst != dst {
		t.Fatalf("GrantOf(EntryOf) lost Dst: %+v", back)
	}
}

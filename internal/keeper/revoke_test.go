package keeper

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/ledger"
)

// Revoke takes the named grants out of the kernel and the ledger (so a heal does not bring
// them back), leaves the others, and ignores keys without a grant.
func TestRevoke(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.GrantMany(ctx, []firewall.Grant{grant(cli, 22, time.Minute), grant(cli6, 22, time.Minute),
		grant(cli, 443, time.Minute)}); err != nil {
		t.Fatal(err)
	}
	key := func(a netip.Addr, port uint16) ledger.Key {
		return ledger.Key{Src: a, Proto: firewall.ProtoTCP, Port: port}
	}
	mapped := netip.AddrFrom16(cli.As16()) // an IPv4-mapped key names the same grant
	absent := key(netip.MustParseAddr("192.0.2.99"), 22)
	if err := r.k.Revoke(ctx, []ledger.Key{key(mapped, 22), key(cli6, 22), absent}); err != nil {
		t.Fatal(err)
	}
	if r.left(t, cli, 22) != 0 || r.left(t, cli6, 22) != 0 {
		t.Fatalf("revoked grants still in the firewall: %v, %v", r.left(t, cli, 22), r.left(t, cli6, 22))
	}
	if got := r.left(t, cli, 443); got != time.Minute {
		t.Fatalf("the grant not named has %v left, want 1m", got)
	}
	live := r.led.Live()
	if len(live) != 1 || live[0].Key != key(cli, 443) {
		t.Fatalf("ledger after Revoke: %v, want only %v tcp/443", live, cli)
	}
	r.fw.Tamper()
	if _, err := r.k.CheckNow(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if r.left(t, cli, 22) != 0 || r.left(t, cli, 443) != time.Minute {
		t.Fatalf("after a heal: revoked %v, kept %v; want 0 and 1m", r.left(t, cli, 22), r.left(t, cli, 443))
	}
}

// A backend that fails leaves the ledger holding the grants it did not revoke.
func TestRevokeBackendError(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.Grant(ctx, grant(cli, 22, time.Minute)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	r.fw.Err = boom
	err := r.k.Revoke(ctx, []ledger.Key{{Src: cli, Proto: firewall.ProtoTCP, Port: 22}})
	r.fw.Err = nil
	if !errors.Is(err, boom) {
		t.Fatalf("Revoke = %v, want the backend's error", err)
	}
	if r.led.Len() != 1 || r.left(t, cli, 22) != time.Minute {
		t.Fatalf("after a failed revoke: ledger %d, kernel %v; want the grant kept in both", r.led.Len(), r.left(t, cli, 22))
	}
}

package firewall

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &Fake{Now: func() time.Time { return now }}
	ctx := context.Background()
	g := Grant{Src: mustAddr("::ffff:192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: 10 * time.Second}
	if err := f.Grant(ctx, g); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Grant before Init = %v, want ErrNotInitialized", err)
	}
	if err := f.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Grant(ctx, Grant{Src: g.Src, Proto: 1, Port: 22, Timeout: time.Second}); !errors.Is(err, ErrInvalidGrant) {
		t.Fatalf("Grant(icmp) = %v, want ErrInvalidGrant", err)
	}
	if err := f.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if !f.Allowed(mustAddr("192.0.2.7"), ProtoTCP, 22) || f.Allowed(mustAddr("192.0.2.7"), ProtoUDP, 22) {
		t.Fatal("Allowed disagrees with the grant")
	}
	now = now.Add(6 * time.Second)
	es, _ := f.List(ctx)
	if len(es) != 1 || es[0].Expires != 4*time.Second || es[0].Src != mustAddr("192.0.2.7") || es[0].Timeout != g.Timeout {
		t.Fatalf("List = %+v", es)
	}
	if err := f.Grant(ctx, g); err != nil { // refresh
		t.Fatal(err)
	}
	now = now.Add(9 * time.Second)
	if !f.Allowed(mustAddr("192.0.2.7"), ProtoTCP, 22) {
		t.Fatal("refreshed grant expired early")
	}
	now = now.Add(time.Second)
	if f.Allowed(mustAddr("192.0.2.7"), ProtoTCP, 22) {
		t.Fatal("grant outlived its timeout")
	}
	if err := f.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := f.Init(ctx); err != nil { // re-Init keeps grants
		t.Fatal(err)
	}
	if !f.Allowed(g.Src, ProtoTCP, 22) {
		t.Fatal("re-Init lost a grant")
	}
	if err := f.Revoke(ctx, g); err != nil || f.Allowed(g.Src, ProtoTCP, 22) {
		t.Fatalf("Revoke = %v, still allowed = %v", err, f.Allowed(g.Src, ProtoTCP, 22))
	}
	if err := f.Revoke(ctx, g); err != nil {
		t.Fatalf("second Revoke = %v", err)
	}
	f.Grant(ctx, g)
	if err := f.Remove(ctx); err != nil || f.Allowed(g.Src, ProtoTCP, 22) {
		t.Fatalf("Remove = %v", err)
	}
	if f.Calls["Grant"] != 6 || f.Calls["Remove"] != 1 {
		t.Fatalf("Calls = %v", f.Calls)
	}
	f.Init(ctx)
	bad := []Grant{g, {Src: g.Src, Proto: ProtoTCP, Port: 0, Timeout: time.Second}}
	if err := f.GrantMany(ctx, bad); !errors.Is(err, ErrInvalidGrant) || f.Allowed(g.Src, ProtoTCP, 22) {
		t.Fatalf("GrantMany with an invalid grant = %v (first granted: %v)", err, f.Allowed(g.Src, ProtoTCP, 22))
	}
	if err := f.GrantMany(ctx, bad[:1]); err != nil || !f.Allowed(g.Src, ProtoTCP, 22) {
		t.Fatalf("GrantMany = %v", err)
	}
	f.Close()
	if err := f.Init(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Init after Close = %v", err)
	}
	boom := errors.New("boom")
	f2 := &Fake{Err: boom}
	if err := f2.Init(ctx); !errors.Is(err, boom) {
		t.Fatalf("Init with Err = %v", err)
	}
}

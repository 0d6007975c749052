package firewall

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDstKey: destination keys carry source, destination, protocol and port in 4-byte
// registers, and parse back.
func TestDstKey(t *testing.T) {
	g4 := Grant{Src: mustAddr("192.0.2.7"), Dst: mustAddr("198.51.100.1"), Proto: ProtoTCP, Port: 22}
	want4 := []byte{192, 0, 2, 7, 198, 51, 100, 1, 6, 0, 0, 0, 0, 22, 0, 0}
	if got := grantKey(g4); !bytes.Equal(got, want4) {
		t.Fatalf("grantKey(%v) = %x, want %x", g4, got, want4)
	}
	g6 := Grant{Src: mustAddr("2001:db8::7"), Dst: mustAddr("2001:db8::1"), Proto: ProtoUDP, Port: 53}
	for _, g := range []Grant{g4, g6} {
		k := grantKey(g)
		back, err := parseDstKey(k)
		if err != nil || back != g {
			t.Fatalf("parseDstKey(%x) = %v, %v; want %v", k, back, err, g)
		}
	}
	if len(grantKey(g6)) != keyLenD6 {
		t.Fatalf("IPv6 destination key of %d bytes", len(grantKey(g6)))
	}
	// A mapped source and destination are stored as IPv4.
	m := Grant{Src: mustAddr("::ffff:192.0.2.7"), Dst: mustAddr("::ffff:198.51.100.1"), Proto: ProtoTCP, Port: 22}
	if got := grantKey(m); !bytes.Equal(got, want4) {
		t.Fatalf("grantKey(mapped) = %x", got)
	}
	for _, k := range [][]byte{grantKey(Grant{Src: g4.Src, Proto: 6, Port: 22}), append(bytes.Clone(want4[:15]), 1)} {
		if g, err := parseDstKey(k); err == nil {
			t.Fatalf("parseDstKey(%x) = %v, want error", k, g)
		}
	}
}

func FuzzParseDstKey(f *testing.F) {
	f.Add(grantKey(Grant{Src: mustAddr("192.0.2.7"), Dst: mustAddr("192.0.2.1"), Proto: ProtoTCP, Port: 22}))
	f.Add(grantKey(Grant{Src: mustAddr("2001:db8::1"), Dst: mustAddr("2001:db8::2"), Proto: ProtoUDP, Port: 53}))
	f.Fuzz(func(t *testing.T, k []byte) {
		g, err := parseDstKey(k)
		if err != nil {
			return
		}
		if again := grantKey(g); !bytes.Equal(again, k) && !(len(k) == keyLenD6 && (g.Src.Is4In6() || g.Dst.Is4In6())) {
			t.Fatalf("parseDstKey(%x) = %v, re-encoded %x", k, g, again)
		}
	})
}

func TestDstValidate(t *testing.T) {
	base := Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: time.Second}
	ok := base
	ok.Dst = mustAddr("192.0.2.1")
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%v) = %v", ok, err)
	}
	if s := ok.String(); s != "192.0.2.7 tcp/22 to 192.0.2.1" {
		t.Fatalf("String = %q", s)
	}
	for _, d := range []string{"2001:db8::1", "0.0.0.0"} {
		g := base
		g.Dst = mustAddr(d)
		if err := g.Validate(); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("Validate with Dst %s = %v, want ErrInvalidGrant", d, err)
		}
	}
	nat := Grant{Src: base.Src, Proto: ProtoTCP, Port: 2222, Timeout: time.Second, Kind: LocalNAT,
		NATAddr: mustAddr("192.0.2.1"), NATPort: 22, Dst: mustAddr("192.0.2.1")}
	if err := nat.Validate(); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("Validate(NAT grant with Dst) = %v, want ErrInvalidGrant", err)
	}
	if a, b := ok.Ident(), base.Ident(); a == b {
		t.Fatal("a grant with Dst has the identity of one without")
	}
}

// TestDstMessages: a grant with Dst goes to grantsd4/grantsd6 (with its key), Revoke removes it
// there, and Init creates both sets and the two extra mark rules.
func TestDstMessages(t *testing.T) {
	n, r := newRecorded(t)
	ctx := context.Background()
	g := Grant{Src: mustAddr("192.0.2.7"), Dst: mustAddr("192.0.2.1"), Proto: ProtoTCP, Port: 22, Timeout: time.Second}
	g6 := Grant{Src: mustAddr("2001:db8::7"), Dst: mustAddr("2001:db8::1"), Proto: ProtoTCP, Port: 22, Timeout: time.Second}
	if err := n.GrantMany(ctx, []Grant{g, g6, {Src: g.Src, Proto: ProtoTCP, Port: 22, Timeout: time.Second}}); err != nil {
		t.Fatal(err)
	}
	var d4, d6, plain int
	for _, m := range r.reqs {
		switch {
		case bytes.Contains(m.Data, []byte("grantsd4\x00")):
			if !bytes.Contains(m.Data, grantKey(g)) {
				t.Fatalf("grantsd4 message lacks key %x", grantKey(g))
			}
			d4++
		case bytes.Contains(m.Data, []byte("grantsd6\x00")):
			if !bytes.Contains(m.Data, grantKey(g6)) {
				t.Fatalf("grantsd6 message lacks key %x", grantKey(g6))
			}
			d6++
		case bytes.Contains(m.Data, []byte("grants4\x00")):
			if bytes.Contains(m.Data, grantKey(g)) {
				t.Fatal("grants4 message carries the destination key")
			}
			plain++
		}
	}
	if d4 != 3 || d6 != 3 || plain != 3 { // add, delete, add each
		t.Fatalf("element messages: grantsd4 %d, grantsd6 %d, grants4 %d; want 3 each", d4, d6, plain)
	}

	r.reqs = nil
	if err := n.Revoke(ctx, g6); err != nil {
		t.Fatal(err)
	}
	if len(r.reqs) != 4 || !bytes.Contains(r.reqs[2].Data, []byte("grantsd6\x00")) || !bytes.Contains(r.reqs[2].Data, grantKey(g6)) {
		t.Fatalf("Revoke(%v) did not delete from grantsd6", g6)
	}

	r.reqs = nil
	if err := n.build(0, false, nil, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	sets, rules := 0, 0
	for _, m := range r.reqs {
		switch int(m.Header.Type) & 0xff {
		case unix.NFT_MSG_NEWSET:
			if bytes.Contains(m.Data, []byte("grantsd4\x00")) || bytes.Contains(m.Data, []byte("grantsd6\x00")) {
				sets++
			}
		case unix.NFT_MSG_NEWRULE:
			if bytes.Contains(m.Data, []byte("grantsd4\x00")) || bytes.Contains(m.Data, []byte("grantsd6\x00")) {
				rules++
			}
		}
	}
	if sets != 2 || rules != 2 {
		t.Fatalf("Init created %d destination sets and %d rules using them, want 2 and 2", sets, rules)
	}
}

// TestFakeDst: the Fake keeps a grant with Dst apart from one without, and AllowedTo decides
// by destination as the kernel does.
func TestFakeDst(t *testing.T) {
	f := &Fake{}
	ctx := context.Background()
	f.Init(ctx)
	src, dst, other := mustAddr("192.0.2.7"), mustAddr("192.0.2.1"), mustAddr("192.0.2.11")
	g := Grant{Src: src, Dst: dst, Proto: ProtoTCP, Port: 22, Timeout: time.Minute}
	if err := f.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if !f.AllowedTo(src, dst, ProtoTCP, 22) || f.AllowedTo(src, other, ProtoTCP, 22) || f.Allowed(src, ProtoTCP, 22) {
		t.Fatal("a grant with Dst: wrong AllowedTo/Allowed")
	}
	if l, _ := f.List(ctx); len(l) != 1 || l[0].Dst != dst {
		t.Fatalf("List = %+v, want the grant with its Dst", l)
	}
	if err := f.Grant(ctx, Grant{Src: src, Proto: ProtoTCP, Port: 22, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if !f.AllowedTo(src, other, ProtoTCP, 22) {
		t.Fatal("a grant without Dst does not allow any destination")
	}
	f.Revoke(ctx, g)
	if _, ok := f.Live(g); ok {
		t.Fatal("Revoke left the grant with Dst")
	}
}

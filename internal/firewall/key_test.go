package firewall

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestGrantKey(t *testing.T) {
	for _, tc := range []struct {
		g    Grant
		want []byte
	}{
		{Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22},
			[]byte{192, 0, 2, 7, 6, 0, 0, 0, 0, 22, 0, 0}},
		{Grant{Src: mustAddr("::ffff:192.0.2.7"), Proto: ProtoUDP, Port: 0x1234},
			[]byte{192, 0, 2, 7, 17, 0, 0, 0, 0x12, 0x34, 0, 0}},
		{Grant{Src: mustAddr("2001:db8::1"), Proto: ProtoTCP, Port: 443},
			[]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 6, 0, 0, 0, 1, 187, 0, 0}},
	} {
		got := grantKey(tc.g)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("grantKey(%v) = %x, want %x", tc.g, got, tc.want)
		}
		back, err := parseKey(got)
		if err != nil || back != key(tc.g) {
			t.Errorf("parseKey(%x) = %v, %v; want %v", got, back, err, key(tc.g))
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, k := range [][]byte{
		nil,
		make([]byte, 8),
		make([]byte, 13),
		{192, 0, 2, 7, 6, 1, 0, 0, 0, 22, 0, 0}, // padding after proto
		{192, 0, 2, 7, 6, 0, 0, 0, 0, 22, 0, 9}, // padding after port
	} {
		if g, err := parseKey(k); err == nil {
			t.Errorf("parseKey(%x) = %v, want error", k, g)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(grantKey(Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22}))
	f.Add(grantKey(Grant{Src: mustAddr("2001:db8::1"), Proto: ProtoUDP, Port: 53}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, k []byte) {
		g, err := parseKey(k)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to the same bytes.
		if again := grantKey(g); !bytes.Equal(again, k) && !(len(k) == keyLen6 && g.Src.Is4In6()) {
			t.Fatalf("parseKey(%x) = %v, re-encoded %x", k, g, again)
		}
	})
}

func TestGrantValidate(t *testing.T) {
	ok := Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: 30 * time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%v): %v", ok, err)
	}
	for name, mod := range map[string]func(*Grant){
		"no address": func(g *Grant) { g.Src = netip.Addr{} },
		"icmp":       func(g *Grant) { g.Proto = 1 },
		"port 0":     func(g *Grant) { g.Port = 0 },
		"no timeout": func(g *Grant) { g.Timeout = 0 },
		"negative":   func(g *Grant) { g.Timeout = -time.Second },
		"too long":   func(g *Grant) { g.Timeout = MaxTimeout + time.Second },
	} {
		g := ok
		mod(&g)
		if err := g.Validate(); err == nil {
			t.Errorf("%s: Validate(%+v) = nil, want error", name, g)
		}
	}
	if s := (Grant{Src: mustAddr("::ffff:10.0.0.1"), Proto: ProtoUDP, Port: 53}).String(); s != "10.0.0.1 udp/53" {
		t.Errorf("String = %q", s)
	}
}

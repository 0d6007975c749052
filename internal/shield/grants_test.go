package shield

import (
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// fakeTable is an in-memory KeyTable.
type fakeTable map[netip.Prefix]tcpmd5.Key

func (f fakeTable) SetKey(p netip.Prefix, k tcpmd5.Key) error { f[p] = k; return nil }
func (f fakeTable) RemoveKey(p netip.Prefix) error {
	if _, ok := f[p]; !ok {
		return tcpmd5.ErrNoSuchKey
	}
	delete(f, p)
	return nil
}
func (f fakeTable) Replace(rules []tcpmd5.KeyRule) error {
	clear(f)
	for _, r := range rules {
		f[r.Prefix] = r.Key
	}
	return nil
}
func (f fakeTable) Keys() []tcpmd5.KeyRule {
	var out []tcpmd5.KeyRule
	for p, k := range f {
		out = append(out, tcpmd5.KeyRule{Prefix: p, Key: k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.String() < out[j].Prefix.String() })
	return out
}

func key(t *testing.T, s string) tcpmd5.Key {
	t.Helper()
	k, err := tcpmd5.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestGrantsExpire(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tab := fakeTable{}
	static := netip.MustParsePrefix("192.0.2.2/32")
	tab[static] = key(t, "static")
	g := NewGrants(tab, func() time.Time { return now })

	if err := g.Grant(netip.MustParseAddr("::ffff:192.0.2.1"), key(t, "g1"), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := g.Grant(netip.MustParseAddr("192.0.2.2"), key(t, "g2"), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := g.Grant(netip.MustParseAddr("2001:db8::7"), key(t, "g3"), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := string(tab[netip.MustParsePrefix("192.0.2.1/32")].Bytes()); got != "g1" {
		t.Fatalf("grant not installed as /32: %v", tab.Keys())
	}
	if err := g.Grant(netip.Addr{}, key(t, "x"), time.Second); err == nil {
		t.Error("invalid address accepted")
	}

	now = now.Add(29 * time.Second)
	if n, _ := g.Expire(); n != 0 {
		t.Errorf("expired %d grants early", n)
	}
	now = now.Add(time.Second)
	if n, _ := g.Expire(); n != 1 || g.Len() != 2 {
		t.Errorf("at 30s expired %d, live %d", n, g.Len())
	}
	if _, ok := tab[netip.MustParsePrefix("192.0.2.1/32")]; ok {
		t.Error("expired grant still installed")
	}
	now = now.Add(30 * time.Second)
	g.Expire()
	if got := string(tab[static].Bytes()); got != "static" {
		t.Errorf("static rule not restored: %q", got)
	}

	// A reload keeps the live grant and drops rules that left the file.
	if err := Apply(tab, []tcpmd5.KeyRule{{Prefix: tcpmd5.AnyIPv4, Key: key(t, "all")}}, g); err != nil {
		t.Fatal(err)
	}
	if _, ok := tab[static]; ok {
		t.Error("reload kept a removed rule")
	}
	if got := tab[netip.MustParsePrefix("2001:db8::7/128")]; string(got.Bytes()) != "g3" || len(tab) != 2 {
		t.Errorf("after reload: %v", tab.Keys())
	}
	// A reload that names a granted host keeps the grant's key now and restores the
	// reloaded key when the grant ends; one that leaves it out removes it then.
	g6 := netip.MustParsePrefix("2001:db8::7/128")
	if err := Apply(tab, []tcpmd5.KeyRule{{Prefix: g6, Key: key(t, "static6")}}, g); err != nil {
		t.Fatal(err)
	}
	if string(tab[g6].Bytes()) != "g3" || len(tab) != 1 {
		t.Errorf("reload over a grant: %v", tab.Keys())
	}
	now = now.Add(time.Minute)
	g.Expire()
	if string(tab[g6].Bytes()) != "static6" {
		t.Errorf("grant expiry did not restore the reloaded rule: %v", tab.Keys())
	}
}

package firewall

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

var (
	fwdGrant = Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 55000, Timeout: 1500 * time.Millisecond,
		Kind: Forward, NATAddr: mustAddr("10.0.0.5"), NATPort: 22, Masquerade: true}
	lnatGrant = Grant{Src: mustAddr("2001:db8::7"), Proto: ProtoTCP, Port: 55000, Timeout: time.Minute,
		Kind: LocalNAT, NATAddr: mustAddr("2001:db8::1"), NATPort: 22}
	allGrant = Grant{Src: mustAddr("192.0.2.8"), Timeout: time.Minute, Kind: Forward, ForwardAll: true, SNAT: mustAddr("198.51.100.1")}
)

func newRecordedNAT(t *testing.T) (*Nftables, *recorder) {
	t.Helper()
	r := &recorder{}
	cfg, host, err := Config{NAT: true}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNftables(cfg, host, nftables.WithTestDial(r.dial))
	if err != nil {
		t.Fatal(err)
	}
	return n, r
}

// setOf returns the set a recorded element message names.
func setOf(m []byte) string {
	for _, s := range []string{setGrants4, setGrants6, setDnat4, setDnat6, setFwd4, setFwd6, setFwdAll4, setFwdAll6, setLnat4, setLnat6} {
		if bytes.Contains(m, []byte("\x00"+s+"\x00")) || bytes.Contains(m, append([]byte(s), 0)) {
			return s
		}
	}
	return "?"
}

func TestNATGrantMessages(t *testing.T) {
	n, r := newRecordedNAT(t)
	ctx := context.Background()
	// Forward with masquerade: in one batch, destroy and add of the fwd element (value all ones:
	// masquerade), then of the DNAT element (value NAT address . port).
	if err := n.Grant(ctx, fwdGrant); err != nil {
		t.Fatal(err)
	}
	want := []int{'B', msgDestroySetElem, unix.NFT_MSG_NEWSETELEM, msgDestroySetElem, unix.NFT_MSG_NEWSETELEM, 'E'}
	if got := r.types(); !equalInts(got, want) {
		t.Fatalf("Forward Grant sent %v, want %v", got, want)
	}
	wantSets := []string{setFwd4, setFwd4, setDnat4, setDnat4}
	for i, m := range r.reqs[1:5] {
		if s := setOf(m.Data); s != wantSets[i] {
			t.Fatalf("message %d names set %s, want %s", i+1, s, wantSets[i])
		}
	}
	if !bytes.Contains(r.reqs[2].Data, fwdKey(fwdGrant)) || !bytes.Contains(r.reqs[2].Data, []byte{0xff, 0xff, 0xff, 0xff}) {
		t.Fatalf("fwd add lacks key %x or the masquerade value: %x", fwdKey(fwdGrant), r.reqs[2].Data)
	}
	if !bytes.Contains(r.reqs[4].Data, grantKey(fwdGrant)) || !bytes.Contains(r.reqs[4].Data, []byte{10, 0, 0, 5, 0, 22, 0, 0}) {
		t.Fatalf("dnat add lacks key or value: %x", r.reqs[4].Data)
	}
	if ms := []byte{0, 0, 0, 0, 0, 0, 0x05, 0xdc}; !bytes.Contains(r.reqs[2].Data, ms) || bytes.Contains(r.reqs[1].Data, ms) {
		t.Fatal("timeout attribute misplaced")
	}

	// DisableDNAT: no DNAT element. LocalNAT: lnat and dnat. ForwardAll: fwdall. An access grant
	// in the same call goes in the same batch.
	r.reqs = nil
	noDNAT := fwdGrant
	noDNAT.DisableDNAT, noDNAT.Port = true, noDNAT.NATPort
	access := Grant{Src: mustAddr("192.0.2.9"), Proto: ProtoTCP, Port: 22, Timeout: time.Second}
	if err := n.GrantMany(ctx, []Grant{noDNAT, lnatGrant, access, allGrant}); err != nil {
		t.Fatal(err)
	}
	var sets []string
	for _, m := range r.reqs {
		if ty := int(m.Header.Type) & 0xff; ty == unix.NFT_MSG_NEWSETELEM {
			sets = append(sets, setOf(m.Data))
		}
	}
	wantSets = []string{setGrants4, setGrants4, setFwd4, setLnat6, setDnat6, setFwdAll4} // access (add, delete, add) first
	if len(sets) != len(wantSets) || r.types()[0] != 'B' || r.types()[len(r.types())-1] != 'E' {
		t.Fatalf("GrantMany added to %v (%v), want %v in one batch", sets, r.types(), wantSets)
	}
	for i := range sets {
		if sets[i] != wantSets[i] {
			t.Fatalf("GrantMany added to %v, want %v", sets, wantSets)
		}
	}

	// Revoke destroys only.
	r.reqs = nil
	if err := n.Revoke(ctx, lnatGrant); err != nil {
		t.Fatal(err)
	}
	want = []int{'B', msgDestroySetElem, msgDestroySetElem, 'E'}
	if got := r.types(); !equalInts(got, want) {
		t.Fatalf("Revoke sent %v, want %v", got, want)
	}

	// Without Config.NAT nothing is sent.
	plain, r2 := newRecorded(t)
	if err := plain.GrantMany(ctx, []Grant{access, fwdGrant}); !errors.Is(err, ErrNATDisabled) || len(r2.reqs) != 0 {
		t.Fatalf("NAT grant without Config.NAT = %v after %d messages; want ErrNATDisabled, none", err, len(r2.reqs))
	}
	if err := plain.Revoke(ctx, fwdGrant); !errors.Is(err, ErrNATDisabled) {
		t.Fatalf("NAT revoke without Config.NAT = %v", err)
	}
}

// TestNATBuildMessages: Init's transaction with Config.NAT creates the NAT sets as timeout maps
// and the three chains; without it, NAT objects a previous run left are deleted.
func TestNATBuildMessages(t *testing.T) {
	n, r := newRecordedNAT(t)
	if err := n.build(0, false, nil, time.Time{}, nil); err != nil {
		t.Fatal(err)
	}
	count := map[int]int{}
	var chains [][]byte
	for _, m := range r.reqs {
		ty := int(m.Header.Type) & 0xff
		count[ty]++
		if ty == unix.NFT_MSG_NEWCHAIN {
			chains = append(chains, m.Data)
		}
		if ty == unix.NFT_MSG_NEWSET && bytes.Contains(m.Data, []byte(setDnat4+"\x00")) {
			flags := unix.NFT_SET_MAP | unix.NFT_SET_TIMEOUT | NFTSetConcat
			if !bytes.Contains(m.Data, []byte{0, 0, byte(flags >> 8), byte(flags)}) {
				t.Errorf("dnat4 is not a concatenated timeout map: %x", m.Data)
			}
		}
	}
	// Sets: grants4/6, grantsd4/6, guarded; mark rules: 4 access (with and without Dst).
	if count[unix.NFT_MSG_NEWSET] != 5+natSetsPerFam*2 || count[unix.NFT_MSG_NEWCHAIN] != 6 ||
		count[unix.NFT_MSG_NEWRULE] != 4+markNATRules+4+natPreRules+natPostRules+forwardRules+fwdGuardRules {
		t.Fatalf("build sent %v (by NFT_MSG type)", count)
	}
	for _, want := range [][]string{{chainNatPre, "nat"}, {chainNatPost, "nat"}, {chainForward, "filter"}, {chainFwdGuard, "filter"}} {
		found := false
		for _, c := range chains {
			found = found || bytes.Contains(c, []byte(want[0]+"\x00")) && bytes.Contains(c, []byte(want[1]+"\x00"))
		}
		if !found {
			t.Errorf("no chain %s of type %s", want[0], want[1])
		}
	}

	p, r2 := newRecorded(t)
	if err := p.build(0, false, nil, time.Time{}, []string{"chain " + chainNatPre, "set " + setDnat4}); err != nil {
		t.Fatal(err)
	}
	types := r2.types()
	if !equalInts(types[len(types)-3:], []int{unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_DELSET, 'E'}) {
		t.Fatalf("build without NAT over stale NAT objects sent %v, want DELCHAIN, DELSET at the end", types)
	}
}

// NFTSetConcat is NFT_SET_CONCAT (google/nftables exports it as nftables.NFT_SET_CONCAT).
const NFTSetConcat = nftables.NFT_SET_CONCAT

func TestNATValidate(t *testing.T) {
	for _, g := range []Grant{fwdGrant, lnatGrant, allGrant} {
		if err := g.Validate(); err != nil {
			t.Fatalf("Validate(%v): %v", g, err)
		}
	}
	for name, g := range map[string]Grant{
		"access with NAT":        {Src: fwdGrant.Src, Proto: ProtoTCP, Port: 22, Timeout: time.Second, NATPort: 22},
		"no NAT address":         with(fwdGrant, func(g *Grant) { g.NATAddr = netip.Addr{} }),
		"NAT address family":     with(fwdGrant, func(g *Grant) { g.NATAddr = mustAddr("2001:db8::5") }),
		"NAT port 0":             with(fwdGrant, func(g *Grant) { g.NATPort = 0 }),
		"SNAT and masquerade":    with(fwdGrant, func(g *Grant) { g.SNAT = mustAddr("10.0.0.1") }),
		"SNAT family":            with(fwdGrant, func(g *Grant) { g.Masquerade, g.SNAT = false, mustAddr("2001:db8::1") }),
		"SNAT all ones":          with(fwdGrant, func(g *Grant) { g.Masquerade, g.SNAT = false, mustAddr("255.255.255.255") }),
		"DisableDNAT, two ports": with(fwdGrant, func(g *Grant) { g.DisableDNAT = true }),
		"ForwardAll with port":   with(allGrant, func(g *Grant) { g.Port = 22 }),
		"ForwardAll with NAT":    with(allGrant, func(g *Grant) { g.NATAddr = mustAddr("10.0.0.5") }),
		"local NAT masquerade":   with(lnatGrant, func(g *Grant) { g.Masquerade = true }),
		"local NAT ForwardAll":   with(lnatGrant, func(g *Grant) { g.ForwardAll = true }),
		"unknown kind":           with(fwdGrant, func(g *Grant) { g.Kind = 9 }),
	} {
		if err := g.Validate(); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("%s: Validate(%+v) = %v, want ErrInvalidGrant", name, g, err)
		}
	}
	id := with(fwdGrant, func(g *Grant) { g.Src = mustAddr("::ffff:192.0.2.7"); g.Stanza = 3 }).Ident()
	if id != with(fwdGrant, func(g *Grant) { g.Masquerade, g.Timeout = false, 0 }) {
		t.Fatalf("Ident = %+v", id)
	}
	for g, want := range map[Grant]string{
		fwdGrant:  "192.0.2.7 tcp/55000 forward 10.0.0.5:22 masquerade",
		lnatGrant: "2001:db8::7 tcp/55000 local-nat [2001:db8::1]:22",
		allGrant:  "192.0.2.8 forward all snat 198.51.100.1",
	} {
		if s := g.String(); s != want {
			t.Errorf("String = %q, want %q", s, want)
		}
	}
	for k := Access; k <= LocalNAT; k++ {
		if back, ok := ParseKind(k.String()); !ok || back != k {
			t.Errorf("ParseKind(%q) = %v, %v", k.String(), back, ok)
		}
	}
}

func with(g Grant, f func(*Grant)) Grant { f(&g); return g }

func TestNATKeys(t *testing.T) {
	for _, g := range []Grant{fwdGrant, lnatGrant, with(fwdGrant, func(g *Grant) { g.Src = mustAddr("::ffff:192.0.2.7") })} {
		back, err := parseFwdKey(fwdKey(g))
		want := Grant{Src: g.Src.Unmap(), Proto: g.Proto, Port: g.Port, NATAddr: g.NATAddr, NATPort: g.NATPort}
		if err != nil || back != want {
			t.Errorf("parseFwdKey(fwdKey(%v)) = %+v, %v", g, back, err)
		}
		kg, to, err := parseDnat(grantKey(g), dnatVal(g))
		if err != nil || kg != key(Grant{Src: g.Src, Proto: g.Proto, Port: g.Port}) || to != netip.AddrPortFrom(g.NATAddr, g.NATPort) {
			t.Errorf("parseDnat = %v, %v, %v", kg, to, err)
		}
	}
	for _, g := range []Grant{fwdGrant, allGrant, with(fwdGrant, func(g *Grant) { g.Masquerade = false })} {
		var back Grant
		if err := parseSnat(&back, snatVal(g)); err != nil || back.SNAT != g.SNAT || back.Masquerade != g.Masquerade {
			t.Errorf("parseSnat(snatVal(%v)) = %+v, %v", g, back, err)
		}
	}
	if len(fwdKey(lnatGrant)) != 44 || len(fwdKey(fwdGrant)) != 20 {
		t.Fatal("forward key lengths")
	}
}

func FuzzParseNATElements(f *testing.F) {
	f.Add(fwdKey(fwdGrant), dnatVal(fwdGrant))
	f.Add(fwdKey(lnatGrant), dnatVal(lnatGrant))
	f.Add(grantKey(fwdGrant), snatVal(allGrant))
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if g, err := parseFwdKey(k); err == nil {
			if again := fwdKey(g); !bytes.Equal(again, k) && !(len(k) == 44 && g.Src.Is4In6()) && !(len(k) == 44 && g.NATAddr.Is4In6()) {
				t.Fatalf("parseFwdKey(%x) = %+v, re-encoded %x", k, g, again)
			}
		}
		if g, to, err := parseDnat(k, v); err == nil && (!g.Src.IsValid() || !to.Addr().IsValid()) {
			t.Fatalf("parseDnat(%x, %x) = %v, %v", k, v, g, to)
		}
		var g Grant
		if err := parseSnat(&g, v); err == nil && g.Masquerade && g.SNAT.IsValid() {
			t.Fatalf("parseSnat(%x) = both SNAT and masquerade", v)
		}
	})
}

func TestFakeNAT(t *testing.T) {
	ctx := context.Background()
	f := &Fake{}
	if err := f.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.GrantMany(ctx, []Grant{fwdGrant, lnatGrant, allGrant}); err != nil {
		t.Fatal(err)
	}
	snat := with(fwdGrant, func(g *Grant) { g.Masquerade, g.SNAT = false, mustAddr("10.0.0.1") })
	if err := f.Grant(ctx, snat); err != nil { // same identity: replaces the values
		t.Fatal(err)
	}
	es, _ := f.List(ctx)
	if len(es) != 3 {
		t.Fatalf("List = %v, want 3 grants", es)
	}
	if g, ok := f.Live(fwdGrant); !ok || g.SNAT != snat.SNAT || g.Masquerade {
		t.Fatalf("Live(forward) = %+v, %v", g, ok)
	}
	if f.Allowed(fwdGrant.Src, ProtoTCP, 55000) {
		t.Fatal("a Forward grant counts as access")
	}
	if err := f.Revoke(ctx, lnatGrant); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Live(lnatGrant); ok {
		t.Fatal("revoked LocalNAT grant still live")
	}
	f.NoNAT = true
	if err := f.Grant(ctx, fwdGrant); !errors.Is(err, ErrNATDisabled) {
		t.Fatalf("NoNAT Grant = %v", err)
	}
}

func TestForwardingOffParse(t *testing.T) {
	files := map[string]string{sysctlForward4: "1\n", sysctlForward6: "0\n"}
	read := func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	if v4, v6, err := forwardingOff(read); err != nil || v4 || !v6 {
		t.Fatalf("forwardingOff = %v, %v, %v; want false, true", v4, v6, err)
	}
	delete(files, sysctlForward6)
	if _, v6, _ := forwardingOff(read); !v6 {
		t.Fatal("missing IPv6 sysctl should count as off")
	}
	delete(files, sysctlForward4)
	if _, _, err := forwardingOff(read); err == nil {
		t.Fatal("missing IPv4 sysctl: no error")
	}
}

func TestForwardGuardElements(t *testing.T) {
	v4, v6 := prefixElements([]netip.Prefix{netip.MustParsePrefix("10.97.0.0/24"), netip.MustParsePrefix("0.0.0.0/0"),
		netip.MustParsePrefix("fd97::1/64")})
	want4 := []nftables.SetElement{{Key: []byte{10, 97, 0, 0}}, {Key: []byte{10, 97, 1, 0}, IntervalEnd: true}, {Key: []byte{0, 0, 0, 0}}}
	if len(v4) != len(want4) || len(v6) != 2 {
		t.Fatalf("elements %v, %v", v4, v6)
	}
	for i := range want4 {
		if !bytes.Equal(v4[i].Key, want4[i].Key) || v4[i].IntervalEnd != want4[i].IntervalEnd {
			t.Fatalf("v4 elements %v, want %v", v4, want4)
		}
	}
	if !bytes.Equal(v6[1].Key, addrBytes(mustAddr("fd97:0:0:1::"))) || !v6[1].IntervalEnd {
		t.Fatalf("v6 elements %v", v6)
	}
	for _, cfg := range []Config{{ForwardGuard: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{NAT: true, ForwardGuard: []netip.Prefix{{}}}} {
		if _, _, err := cfg.withDefaults(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("withDefaults(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

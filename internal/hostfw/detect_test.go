package hostfw

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/sesame-spa/sesame/internal/firewall"
)

const (
	famInet = nftables.TableFamilyINet
	famIP   = nftables.TableFamilyIPv4
	famIP6  = nftables.TableFamilyIPv6
)

func detect(t *testing.T, f *Fake, h *FakeHost, opt Options) Report {
	t.Helper()
	if h == nil {
		h = &FakeHost{}
	}
	opt.Host = h
	rep, err := Detect(context.Background(), f, opt)
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	return rep
}

func TestDetectNft(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(f *Fake)
		want  string // summaries, one line per finding
		hooks string // Report.Hooks, space-joined with "; "
	}{
		{
			name: "policy drop",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop), rl(ctState(2|4), accept), rl(iifname("lo"), accept))
			},
			want:  `hook nft inet filter input "policy drop" hook=nft inet filter input`,
			hooks: "nft inet filter input",
		},
		{
			name: "rule drop",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "myfw", 0)
				f.AddChain(baseChain(tb, "in", 0, pAccept), rl(tcpDport(22), accept), rl(tcpDport(80), drop))
			},
			want:  `hook nft ip myfw in "rule 2: drop" hook=nft ip myfw in`,
			hooks: "nft ip myfw in",
		},
		{
			name: "native reject",
			build: func(f *Fake) {
				tb := f.AddTable(famIP6, "t", 0)
				f.AddChain(baseChain(tb, "input", 5, pAccept), rl(&expr.Counter{}), rl(tcpDport(80), reject))
			},
			want:  `hook nft ip6 t input "rule 2: reject" hook=nft ip6 t input`,
			hooks: "nft ip6 t input",
		},
		{
			name: "iptables-nft xt REJECT, ip and ip6",
			build: func(f *Fake) {
				t4 := f.AddTable(famIP, "filter", 0)
				f.AddChain(baseChain(t4, "INPUT", 0, pAccept), rl(tcpDport(80), &expr.Counter{}, xtTgt("REJECT")))
				t6 := f.AddTable(famIP6, "filter", 0)
				f.AddChain(baseChain(t6, "INPUT", 0, pDrop))
			},
			want: `hook iptables-nft ip filter INPUT "rule 1: reject" hook=iptables bin=iptables-nft
hook ip6tables-nft ip6 filter INPUT "policy drop" hook=iptables bin=ip6tables-nft`,
			hooks: "iptables",
		},
		{
			name: "jump to a dropping chain",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "t", 0)
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(jump("sub")))
				f.AddChain(regChain(tb, "sub"), rl(tcpDport(22), accept), rl(drop))
			},
			want:  `hook nft inet t input "rule 1: jump sub: rule 2: drop" hook=nft inet t input`,
			hooks: "nft inet t input",
		},
		{
			name: "goto then jump, two levels",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "t", 0)
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(iifname("eth0"), goTo("a")))
				f.AddChain(regChain(tb, "a"), rl(jump("b")))
				f.AddChain(regChain(tb, "b"), rl(tcpDport(22), ret), rl(reject))
			},
			want:  `hook nft inet t input "rule 1: goto a: rule 1: jump b: rule 2: reject" hook=nft inet t input`,
			hooks: "nft inet t input",
		},
		{
			name: "endless jumps are bounded",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "t", 0)
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(jump("loop")))
				f.AddChain(regChain(tb, "loop"), rl(jump("loop")))
			},
			want:  `hook nft inet t input "rule 1: jump loop: ` + strings.Repeat("rule 1: jump loop: ", MaxDepth) + `jumps deeper than 16 chains" hook=nft inet t input`,
			hooks: "nft inet t input",
		},
		{
			name: "verdict map with a drop",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "t", 0)
				f.AddSet(&nftables.Set{Table: tb, Name: "__map0", IsMap: true, Anonymous: true, Constant: true}, []nftables.SetElement{
					{Key: []byte{0x1b, 0x58}, Val: verdictData(expr.VerdictAccept, "")},
					{Key: []byte{0x1b, 0x59}, Val: verdictData(expr.VerdictDrop, "")},
				})
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(l4(protoTCP), &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, vmap("__map0")))
			},
			want:  `hook nft inet t input "rule 1: verdict map drop" hook=nft inet t input`,
			hooks: "nft inet t input",
		},
		{
			name: "accept only",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(tcpDport(22), accept), rl(&expr.Counter{}))
				fw := baseChain(tb, "forward", 0, pDrop) // not the input hook
				fw.Hooknum = nftables.ChainHookForward
				f.AddChain(fw)
			},
		},
		{
			name: "sesame's own table is ignored",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "sesame", 0)
				f.AddChain(baseChain(tb, "mark", -150, pAccept))
				f.AddChain(baseChain(tb, "guard", -10, pAccept), rl(markIs(firewall.DefaultMark), accept), rl(tcpDport(22), drop))
			},
		},
		{
			name: "already hooked by sesame",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChainRules(baseChain(tb, "input", 0, pDrop), sesameHook(), &nftables.Rule{Exprs: rl(ctState(2|4), accept)})
			},
			want:  `hook nft inet filter input "policy drop" hook=nft inet filter input hooked sesame`,
			hooks: "nft inet filter input",
		},
		{
			name: "sesame's hook below a drop for invalid packets still works",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChainRules(baseChain(tb, "input", 0, pDrop), &nftables.Rule{Exprs: rl(ctState(1), drop)}, sesameHook())
			},
			want:  `hook nft inet filter input "rule 1: drop" hook=nft inet filter input hooked sesame`,
			hooks: "nft inet filter input",
		},
		{
			name: "sesame's hook below a drop it cannot rule out",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChainRules(baseChain(tb, "input", 0, pDrop), &nftables.Rule{Exprs: rl(saddr4(192, 0, 2, 1), drop)}, sesameHook())
			},
			want:  `hook nft inet filter input "rule 1: drop" hook=nft inet filter input sesame`,
			hooks: "nft inet filter input",
		},
		{
			name: "accepted by the admin's own mark rule",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop), rl(markIs(firewall.DefaultMark), accept))
			},
			want: `accepted nft inet filter input "policy drop" hooked`,
		},
		{
			name: "a mark rule for another bit is no hook",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop), rl(markIs(0x4000), accept))
			},
			want:  `hook nft inet filter input "policy drop" hook=nft inet filter input`,
			hooks: "nft inet filter input",
		},
		{
			name: "iptables-nft hook by sesame (xt comment)",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "filter", 0)
				c := xt.Comment(hookComment)
				f.AddChain(baseChain(tb, "INPUT", 0, pDrop), rl(markIs(firewall.DefaultMark), &expr.Match{Name: "comment", Info: &c}, &expr.Counter{}, accept))
			},
			want:  `hook iptables-nft ip filter INPUT "policy drop" hook=iptables bin=iptables-nft hooked sesame`,
			hooks: "iptables",
		},
		{
			name: "ufw on iptables-nft",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "filter", 0)
				f.AddChain(baseChain(tb, "INPUT", 0, pDrop), rl(&expr.Counter{}, jump("ufw-before-input")))
				f.AddChain(regChain(tb, "ufw-before-input"), rl(iifname("lo"), accept))
			},
			want:  `hook iptables-nft ip filter INPUT "policy drop" hook=iptables bin=iptables-nft by=ufw`,
			hooks: "iptables",
		},
		{
			name: "firewalld, table not owned",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "firewalld", 0)
				f.AddChain(baseChain(tb, "filter_INPUT", 10, pAccept), rl(ctState(2|4), accept), rl(jump("filter_INPUT_ZONES")), rl(reject))
				f.AddChain(regChain(tb, "filter_INPUT_ZONES"))
			},
			want:  `hook nft inet firewalld filter_INPUT "rule 3: reject" hook=nft inet firewalld filter_INPUT by=firewalld`,
			hooks: "nft inet firewalld filter_INPUT",
		},
		{
			name: "firewalld, table owned",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "firewalld", tableFlagOwner)
				f.AddChain(baseChain(tb, "filter_INPUT", 10, pAccept), rl(ctState(2|4), accept), rl(reject))
			},
			want: `error nft inet firewalld filter_INPUT "rule 2: reject" by=firewalld`,
		},
		{
			name: "a drop before sesame's mark",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "early", 0)
				f.AddChain(baseChain(tb, "input", -200, pAccept), rl(tcpDport(22), drop))
			},
			want: `error nft inet early input "rule 1: drop"`,
		},
		{
			name: "iptables-nft security table",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "security", 0)
				f.AddChain(baseChain(tb, "INPUT", 50, pAccept), rl(tcpDport(22), drop))
			},
			want: `error iptables-nft ip security INPUT "rule 1: drop" bin=iptables-nft`,
		},
		{
			name: "a chain name SESAME_HOST_CHAIN cannot carry",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "my table", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop))
			},
			want: `error nft inet my table input "policy drop"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fake{}
			tc.build(f)
			rep := detect(t, f, nil, Options{Ports: ports(t, "tcp/22")})
			if got := summaries(rep); got != tc.want {
				t.Errorf("findings:\n%s\nwant:\n%s", got, tc.want)
			}
			var hooks []string
			for _, h := range rep.Hooks() {
				hooks = append(hooks, h.String())
			}
			if got := strings.Join(hooks, "; "); got != tc.hooks {
				t.Errorf("Hooks() = %q, want %q", got, tc.hooks)
			}
			for _, f := range rep.Findings {
				if (f.Level == Error) != (f.Fix != "") {
					t.Errorf("%s: level %s with fix %q", f.Chain, f.Level, f.Fix)
				}
			}
		})
	}
}

func TestFixTexts(t *testing.T) {
	f := &Fake{}
	tb := f.AddTable(famInet, "firewalld", tableFlagOwner)
	f.AddChain(baseChain(tb, "filter_INPUT", 10, pAccept), rl(reject))
	other := f.AddTable(famInet, "owned", tableFlagOwner)
	f.AddChain(baseChain(other, "input", 0, pDrop))
	rep := detect(t, f, nil, Options{Ports: ports(t, "tcp/22, udp/53")})
	errs := rep.Errors()
	if len(errs) != 2 {
		t.Fatalf("errors: %v", errs)
	}
	for _, want := range []string{"firewall-cmd --permanent --add-port=22/tcp --add-port=53/udp && firewall-cmd --reload", "SESAME_GUARD_PORTS tcp/22, udp/53", "NftablesTableOwner=no"} {
		if !strings.Contains(errs[0].Fix, want) {
			t.Errorf("firewalld fix %q lacks %q", errs[0].Fix, want)
		}
	}
	if !strings.Contains(errs[1].Fix, "mark 0x10000000/0x10000000") || !strings.Contains(errs[1].Fix, "SESAME_GUARD_PORTS tcp/22, udp/53") {
		t.Errorf("owned table fix %q", errs[1].Fix)
	}
	if len(rep.Hooks()) != 0 {
		t.Errorf("Hooks() = %v for owned tables", rep.Hooks())
	}
}

func TestNotesNetdev(t *testing.T) {
	f := &Fake{}
	tb := f.AddTable(nftables.TableFamilyNetdev, "edge", 0)
	f.AddChain(&nftables.Chain{Name: "in", Table: tb, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookIngress,
		Priority: nftables.ChainPriorityFilter, Device: "eth0"}, rl(drop))
	rep := detect(t, f, nil, Options{})
	if len(rep.Findings) != 0 || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "netdev edge in: ingress chains are not examined") {
		t.Errorf("findings %v, notes %q", rep.Findings, rep.Notes)
	}
}

func TestBinariesAndHooksDeduplicated(t *testing.T) {
	f := &Fake{}
	t4 := f.AddTable(famIP, "filter", 0)
	f.AddChain(baseChain(t4, "INPUT", 0, pDrop))
	t6 := f.AddTable(famIP6, "filter", 0)
	f.AddChain(baseChain(t6, "INPUT", 0, pDrop))
	h := &FakeHost{IPv4Tables: []string{"filter"}, Output: map[string]string{"iptables-legacy": "-P INPUT DROP\n"}}
	rep := detect(t, f, h, Options{})
	// iptables-nft's two chains need one hook (iptables and ip6tables), the legacy chain its own.
	if got := rep.Hooks(); len(got) != 2 || got[0] != (firewall.HostChain{Kind: firewall.HostIPTables}) ||
		got[1] != (firewall.HostChain{Kind: firewall.HostIPTables, Legacy: true}) {
		t.Errorf("Hooks() = %v", got)
	}
	if got, want := rep.Binaries(), []string{"iptables-nft", "iptables-legacy", "ip6tables-nft"}; !slices.Equal(got, want) {
		t.Errorf("Binaries() = %q, want %q", got, want)
	}
}

// verdictData encodes a verdict as the kernel returns a verdict map element's data
// (NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN).
func verdictData(k expr.VerdictKind, chain string) []byte {
	b := []byte{8, 0, 1, 0, byte(uint32(k) >> 24), byte(uint32(k) >> 16), byte(uint32(k) >> 8), byte(uint32(k))}
	if chain != "" {
		n := len(chain) + 1
		attr := []byte{byte(4 + n), 0, 2, 0}
		attr = append(attr, chain...)
		attr = append(attr, 0)
		for len(attr)%4 != 0 {
			attr = append(attr, 0)
		}
		b = append(b, attr...)
	}
	return b
}

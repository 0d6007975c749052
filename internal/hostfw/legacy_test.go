package hostfw

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
)

func TestSplitSave(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{`-A INPUT -j ACCEPT`, []string{"-A", "INPUT", "-j", "ACCEPT"}},
		{`-A X -j LOG --log-prefix "[UFW BLOCK] "`, []string{"-A", "X", "-j", "LOG", "--log-prefix", "[UFW BLOCK] "}},
		{`-A X -m comment --comment "a \"b\" \\c"`, []string{"-A", "X", "-m", "comment", "--comment", `a "b" \c`}},
		{"-A  X\t-j DROP ", []string{"-A", "X", "-j", "DROP"}},
	} {
		got, err := splitSave(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitSave(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := splitSave(`-A X --comment "open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestParseSaveErrors(t *testing.T) {
	for _, in := range []string{"-X INPUT", "-A", "-P INPUT", `-A X "`} {
		if _, err := parseSave(in, "ip", "filter"); err == nil {
			t.Errorf("parseSave(%q) accepted", in)
		}
	}
}

func TestDetectLegacy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		host  *FakeHost
		want  string
		calls string
	}{
		{
			name: "legacy filter table not loaded: iptables-legacy is not run",
			host: &FakeHost{IPv4Tables: []string{"nat"}, Output: map[string]string{"iptables-legacy": "-P INPUT DROP\n"}},
		},
		{
			name:  "policy drop",
			host:  &FakeHost{IPv4Tables: []string{"filter"}, Output: map[string]string{"iptables-legacy": "-P INPUT DROP\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n"}},
			want:  `hook iptables-legacy ip filter INPUT "policy drop" hook=iptables-legacy bin=iptables-legacy`,
			calls: "iptables-legacy -w -S",
		},
		{
			name: "reject rule and sesame's hook, IPv6",
			host: &FakeHost{IPv6Tables: []string{"filter", "mangle"}, Output: map[string]string{"ip6tables-legacy": `-P INPUT ACCEPT
-A INPUT -m mark --mark 0x10000000/0x10000000 -m comment --comment sesame -j ACCEPT
-A INPUT -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp6-port-unreachable
`}},
			want:  `hook ip6tables-legacy ip6 filter INPUT "rule 2: reject" hook=iptables-legacy bin=ip6tables-legacy hooked sesame`,
			calls: "ip6tables-legacy -w -S",
		},
		{
			name:  "accept only",
			host:  &FakeHost{IPv4Tables: []string{"filter"}, Output: map[string]string{"iptables-legacy": "-P INPUT ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n"}},
			calls: "iptables-legacy -w -S",
		},
		{
			name:  "ufw",
			host:  &FakeHost{IPv4Tables: []string{"filter"}, Output: map[string]string{"iptables-legacy": ufwSave}},
			want:  `hook iptables-legacy ip filter INPUT "rule 1: jump ufw-before-input: rule 3: drop" hook=iptables-legacy bin=iptables-legacy by=ufw`,
			calls: "iptables-legacy -w -S",
		},
		{
			name:  "binaries missing",
			host:  &FakeHost{IPv4Tables: []string{"filter"}},
			want:  `error iptables-legacy ip filter INPUT "the legacy filter table is loaded, but iptables-legacy is not installed to read it" bin=iptables-legacy`,
			calls: "iptables-legacy -w -S",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := detect(t, &Fake{}, tc.host, Options{})
			if got := summaries(rep); got != tc.want {
				t.Errorf("findings:\n%s\nwant:\n%s", got, tc.want)
			}
			if got := strings.Join(tc.host.Calls, "; "); got != tc.calls {
				t.Errorf("calls %q, want %q", got, tc.calls)
			}
			for _, f := range rep.Errors() {
				if !strings.Contains(f.Fix, "apt-get install iptables") || !strings.Contains(f.Fix, "SESAME_HOST_CHAIN") {
					t.Errorf("fix %q", f.Fix)
				}
			}
		})
	}
}

func TestLegacyConditions(t *testing.T) {
	const mark = 0x10000000
	chains, err := parseSave(`-P INPUT DROP
-N sub
-A INPUT ! -i lo -p udp -m multiport --dports 53,1000:1010 -j ACCEPT
-A INPUT -m state --state NEW -p tcp --dport 23 -j ACCEPT
-A INPUT -m conntrack ! --ctstate NEW -p tcp --dport 24 -j ACCEPT
-A INPUT -m mark --mark 0x10000000/0x10000000 -p tcp --dport 25 -j ACCEPT
-A INPUT -p 6 --dport 26 -g sub
-A sub -j RETURN
`, "ip", "filter")
	if err != nil {
		t.Fatal(err)
	}
	in := chains["INPUT"]
	for _, tc := range []struct {
		p    packet
		want outcome
	}{
		{packet{proto: protoUDP, dport: 53}, outAccept},
		{packet{proto: protoUDP, dport: 1005}, outAccept},
		{packet{proto: protoUDP, dport: 1011}, outDrop},
		{packet{proto: protoTCP, dport: 53}, outDrop},
		{packet{proto: protoTCP, dport: 23}, outAccept},
		{packet{proto: protoTCP, dport: 24}, outDrop},
		{packet{proto: protoTCP, dport: 25, mark: mark}, outDrop},
		{packet{proto: protoTCP, dport: 25, mark: mark, marked: true}, outAccept},
		{packet{proto: protoTCP, dport: 26}, outDrop}, // goto sub, RETURN: INPUT's policy
		{packet{}, outAccept | outDrop},
	} {
		if got := in.eval(tc.p); got != tc.want {
			t.Errorf("eval(%+v) = %b, want %b", tc.p, got, tc.want)
		}
	}
}

// TestFanOut: a chain reached by many paths is evaluated once (10 jumps per level, 12 levels
// would be 10^12 paths without that).
func TestFanOut(t *testing.T) {
	var b strings.Builder
	b.WriteString("-P INPUT DROP\n-A INPUT -j c0\n")
	for i := range 12 {
		for range 10 {
			fmt.Fprintf(&b, "-A c%d -p tcp --dport %d -j c%d\n", i, 1000+i, i+1)
		}
	}
	b.WriteString("-A c12 -p tcp --dport 22 -j ACCEPT\n")
	chains, err := parseSave(b.String(), "ip", "filter")
	if err != nil {
		t.Fatal(err)
	}
	in := chains["INPUT"]
	if drops, why := in.mayDrop(); !drops || why != "policy drop" {
		t.Errorf("mayDrop = %v %q", drops, why)
	}
	if got := in.eval(packet{}); got != outAccept|outDrop {
		t.Errorf("eval(any) = %b", got)
	}
	if got := in.eval(packet{proto: protoTCP, dport: 22}); got != outDrop {
		t.Errorf("eval(tcp/22) = %b", got)
	}
}

// permHost is a Host whose legacy table list is root's to read.
type permHost struct{ *FakeHost }

func (permHost) LegacyTables(bool) ([]string, error) { return nil, fs.ErrPermission }

// Without root the legacy list cannot be read: the nftables findings stay, and a note names
// SESAME_HOST_CHAIN.
func TestDetectLegacyUnreadable(t *testing.T) {
	f := &Fake{}
	tb := f.AddTable(famIP, "filter", 0)
	f.AddChain(baseChain(tb, "INPUT", 0, pDrop))
	rep, err := Detect(context.Background(), f, Options{Host: permHost{&FakeHost{}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Hooks()) != 1 || len(rep.Errors()) != 0 || len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], "SESAME_HOST_CHAIN iptables-legacy") {
		t.Fatalf("hooks %v, errors %v, notes %q", rep.Hooks(), rep.Errors(), rep.Notes)
	}
}

package firewall

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rulesetVariant is one configuration whose Init messages are pinned in
// testdata/ruleset-NAME.hex.
type rulesetVariant struct {
	name  string
	cfg   Config
	owner bool // table flags owner,persist (as if the kernel supported them)
	// build, if set, replaces Init: it drives the build path directly.
	build func(n *Nftables) error
	nft   string // what the variant adds to or changes in the package doc's ruleset
}

var rulesetVariants = []rulesetVariant{
	{name: "default", owner: true,
		nft: "the package doc's ruleset with flags owner,persist, set guarded empty, mark 0x10000000"},
	{name: "guard", cfg: Config{NoOwner: true, GuardLoopback: true, Mark: 0x4,
		GuardPorts: []Port{{ProtoTCP, 22}, {ProtoUDP, 53}, {ProtoTCP, 5432}}},
		nft: "no table flags, guarded = { tcp . 22, udp . 53, tcp . 5432 }, no iifname \"lo\" rule, mark 0x4"},
	{name: "nat", owner: true, cfg: Config{NAT: true, GuardPorts: []Port{{ProtoTCP, 22}},
		ForwardGuard: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}},
		nft: "plus the NAT sets and chains of the package doc (\"NAT and forwarding\"), fwdguard4 = { 10.0.0.0/8 }, fwdguard6 = { 2001:db8::/32 }"},
	{name: "host", cfg: Config{NoOwner: true, HostChain: "nft inet filter input",
		HostChains: []HostChain{{Kind: HostNft, Family: "ip", Table: "filter", Chain: "INPUT"}}},
		nft: "no table flags, then `insert rule inet filter input meta mark & 0x10000000 == 0x10000000 accept comment \"sesame\"` and the same in ip filter INPUT"},
	{name: "swap", owner: true, cfg: Config{NAT: true},
		build: func(n *Nftables) error { return n.build(tableFlagOwner|tableFlagPersist, true, nil, time.Time{}, nil) },
		nft:   "delete table inet sesame, then the NAT ruleset re-created owned in the same transaction (no live grants)"},
	{name: "stale", cfg: Config{NoOwner: true},
		build: func(n *Nftables) error {
			return n.build(0, false, nil, time.Time{}, []string{"chain " + chainNatPre, "chain " + chainFwdGuard, "set " + setDnat4, "set " + setFwdGuard6})
		},
		nft: "the unowned ruleset, then delete chain nat_pre, chain fwd_guard, set dnat4, set fwdguard6 (left by a NAT run)"},
}

// TestRulesetGolden pins every netlink message the backend sends to build its ruleset, byte for
// byte and in order, against testdata/ruleset-NAME.hex (recorded from the code with
// `go test ./internal/firewall -run TestRulesetGolden -update`). The messages equal the nft
// ruleset the package doc spells out ("Ruleset": table inet sesame with sets grants4, grants6,
// grantsd4, grantsd6, guarded, chain mark with its four lookup rules and chain guard; "NAT and
// forwarding" for the NAT variants), changed per variant as each file's header says.
//
// Init runs on a recording socket with ownership already known and the refresh probe off: both
// probes use scratch objects named after the PID or numbered by a process-wide counter, and are
// not part of the ruleset. Set IDs (google/nftables numbers sets process-wide) are fixed
// beforehand, and sequence numbers and PIDs are zeroed.
func TestRulesetGolden(t *testing.T) {
	for _, v := range rulesetVariants {
		t.Run(v.name, func(t *testing.T) {
			got := recordRuleset(t, v)
			path := filepath.Join("testdata", "ruleset-"+v.name+".hex")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (record it with go test ./internal/firewall -run TestRulesetGolden -update)", err)
			}
			if got != string(want) {
				at := 0
				for at < min(len(got), len(want)) && got[at] == want[at] {
					at++
				}
				from := max(0, at-16)
				t.Fatalf("%s differs at line %d:\n got ...%s\nwant ...%s", path, strings.Count(got[:at], "\n")+1,
					got[from:min(len(got), at+48)], want[from:min(len(want), at+48)])
			}
		})
	}
}

// recordRuleset runs v and formats what the backend sent: a header naming the variant, then one
// line per netlink message (header with sequence and PID zeroed, then the payload) as hex.
func recordRuleset(t *testing.T, v rulesetVariant) string {
	t.Helper()
	r := &recorder{}
	cfg, hosts, err := v.cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNftables(cfg, hosts, nftables.WithTestDial(dumpsEmpty(r)))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.owner, n.noFast = v.owner, true
	for i, s := range append([]*nftables.Set{n.obj.grants4, n.obj.grants6, n.obj.grantsd4, n.obj.grantsd6, n.obj.guarded},
		n.obj.nat.allSets()...) {
		s.ID = uint32(i + 1)
	}
	r.reqs = nil // the socket's opening read
	if v.build != nil {
		err = v.build(n)
	} else {
		err = n.Init(context.Background())
	}
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	fmt.Fprintf(&out, "# ruleset variant %q: %s\n", v.name, v.nft)
	fmt.Fprintf(&out, "# one netlink message a line (header with seq and pid zeroed, then payload); go test ./internal/firewall -run TestRulesetGolden -update\n")
	for _, m := range r.reqs {
		out.WriteString(hex.EncodeToString(zeroedMessage(t, m)) + "\n")
	}
	return out.String()
}

// zeroedMessage is m as it goes on the wire, with its sequence number and PID zeroed.
func zeroedMessage(t *testing.T, m netlink.Message) []byte {
	t.Helper()
	m.Header.Sequence, m.Header.PID = 0, 0
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.NativeEndian.Uint32(b); int(got) != len(b) || !bytes.Equal(b[unix.NLMSG_HDRLEN:], m.Data) {
		t.Fatalf("message %v marshals inconsistently", m.Header)
	}
	return b
}

// dumpsEmpty is r's dial, except that a dump request is answered with an empty dump (NLMSG_DONE),
// as the kernel answers a listing of a host chain without rules.
func dumpsEmpty(r *recorder) func([]netlink.Message) ([]netlink.Message, error) {
	return func(req []netlink.Message) ([]netlink.Message, error) {
		acks, err := r.dial(req)
		for i, a := range acks {
			for _, m := range req {
				if m.Header.Sequence == a.Header.Sequence && m.Header.Flags&netlink.Dump == netlink.Dump {
					acks[i] = netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi,
						Sequence: a.Header.Sequence, PID: a.Header.PID}, Data: make([]byte, 4)}
				}
			}
		}
		return acks, err
	}
}

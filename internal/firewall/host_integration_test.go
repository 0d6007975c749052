package firewall

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// dropHostIPTables gives ns the usual fwknopd host firewall: INPUT policy DROP with established,
// loopback (and for IPv6, ICMPv6 for neighbour discovery) accepted.
func dropHostIPTables(t *testing.T, ns *nstest.NS) {
	for _, bin := range []string{"iptables", "ip6tables"} {
		ns.Run(t, bin, "-w", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
		ns.Run(t, bin, "-w", "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
		ns.Run(t, bin, "-w", "-P", "INPUT", "DROP")
	}
	ns.Run(t, "ip6tables", "-w", "-I", "INPUT", "1", "-p", "ipv6-icmp", "-j", "ACCEPT")
}

const dropHostNft = `table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif lo accept
		meta l4proto ipv6-icmp accept
	}
}
`

func dropHostNftables(t *testing.T, ns *nstest.NS) {
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(dropHostNft)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
}

// TestIntegrationHostChain: a host whose own firewall drops by default (iptables INPUT policy
// DROP, or an nft chain with policy drop). sesame has no guard ports; its mark plus the one rule
// it inserts at the top of the host's chain let granted clients in.
func TestIntegrationHostChain(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hostChain string
		setup     func(*testing.T, *nstest.NS)
		bins      []string
		hooked    func(*testing.T, *nstest.NS) int // number of sesame rules in the host chain
	}{
		{"iptables", "iptables", dropHostIPTables, []string{"iptables", "ip6tables", "nft"}, func(t *testing.T, ns *nstest.NS) int {
			return strings.Count(ns.Run(t, "iptables", "-w", "-S", "INPUT"), "sesame") +
				strings.Count(ns.Run(t, "ip6tables", "-w", "-S", "INPUT"), "sesame")
		}},
		{"nft", "nft inet filter input", dropHostNftables, []string{"nft"}, func(t *testing.T, ns *nstest.NS) int {
			return strings.Count(ns.Run(t, "nft", "list", "chain", "inet", "filter", "input"), `comment "sesame"`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nstest.Require(t, tc.bins...)
			tp := newTopology(t)
			const port = 2222
			listen(t, tp.srv, port)
			tc.setup(t, tp.srv)
			wantShut(t, tp.cli, nstest.SrvIP4, port, "host drop policy, no sesame")

			cfg := Config{HostChain: tc.hostChain}
			fw := newBackend(t, tp.srv, cfg)
			if err := fw.Init(context.Background()); err != nil { // idempotent: still one hook rule
				t.Fatalf("second Init: %v", err)
			}
			want := 2
			if tc.name == "nft" {
				want = 1
			}
			if n := tc.hooked(t, tp.srv); n != want {
				logRuleset(t, tp.srv, "after Init")
				t.Fatalf("%d sesame rules in the host chain after two Inits, want %d", n, want)
			}
			ctx := context.Background()
			for _, fam := range []struct{ name, srv, cli, srvOut, out string }{
				{"ipv4", nstest.SrvIP4, nstest.CliIP4, srvOut4, outIP4},
				{"ipv6", nstest.SrvIP6, nstest.CliIP6, srvOut6, outIP6},
			} {
				wantShut(t, tp.cli, fam.srv, port, fam.name+" before grant")
				g := Grant{Src: mustAddr(fam.cli), Proto: ProtoTCP, Port: port, Timeout: 1500 * time.Millisecond}
				start := time.Now()
				if err := fw.Grant(ctx, g); err != nil {
					t.Fatalf("Grant: %v", err)
				}
				c := wantOpen(t, tp.cli, fam.srv, port, fam.name+" after grant")
				echo(t, c, fam.name+" granted connection")
				wantShut(t, tp.out, fam.srvOut, port, fam.name+" outsider")
				time.Sleep(time.Until(start.Add(g.Timeout + 300*time.Millisecond)))
				wantShut(t, tp.cli, fam.srv, port, fam.name+" after the timeout")
				// Return traffic of the granted connection passes the host's established rule.
				echo(t, c, fam.name+" established connection after expiry")
			}

			if err := fw.Grant(ctx, Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: port, Timeout: time.Minute}); err != nil {
				t.Fatalf("Grant: %v", err)
			}
			if err := fw.Remove(ctx); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if n := tc.hooked(t, tp.srv); n != 0 {
				logRuleset(t, tp.srv, "after Remove")
				t.Fatalf("%d sesame rules left in the host chain after Remove", n)
			}
			if hasTable(t, tp.srv, DefaultTableName) {
				t.Fatalf("table inet %s still there after Remove", DefaultTableName)
			}
			wantShut(t, tp.cli, nstest.SrvIP4, port, "after Remove")
			if err := fw.Remove(ctx); err != nil {
				t.Fatalf("second Remove: %v", err)
			}
		})
	}
}

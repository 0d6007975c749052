package failclosed

import (
	"testing"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// host is one row of the matrix: how the server's host is set up before sesame starts.
type host struct {
	name   string
	needs  []string // binaries besides ip, nft and fwknop
	udp    bool     // UDP-server mode; otherwise sniff on the client's veth
	conf   string   // fwknopd.conf lines besides the capture mode
	open   string   // the stanza's extra lines (OPEN_PORTS)
	table  string   // the host table that gets sesame's hook ("" = none)
	hooks  string   // the "hooks" sesame must log at start
	setup  func(t *testing.T, ns *nstest.NS)
	reload func(t *testing.T, ns *nstest.NS) // the host firewall's own reload (nil: none)
}

// nftDrop is an administrator's nft ruleset with policy drop.
const nftDrop = `table inet filter {
	chain input {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		iif lo accept
		udp dport 62201 accept
	}
}
`

// iptablesDrop is a usual fwknopd host: iptables(-nft) INPUT DROP, as rules.v4 would restore it.
const iptablesDrop = `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
`

// ufwLike has the shape of ufw's IPv4 filter table with "default deny incoming" (and one
// unrelated allow): INPUT DROP and jumps into ufw's own chains.
const ufwLike = `*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-input - [0:0]
:ufw-after-input - [0:0]
:ufw-reject-input - [0:0]
:ufw-user-input - [0:0]
-A INPUT -j ufw-before-input
-A INPUT -j ufw-after-input
-A INPUT -j ufw-reject-input
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A ufw-before-input -j ufw-user-input
-A ufw-user-input -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
`

// firewalldLike has the shape of firewalld's own table (zone public, the SPA port added): a
// filter_INPUT chain that ends in a reject.
const firewalldLike = `table inet firewalld {
	chain filter_INPUT {
		type filter hook input priority filter + 10; policy accept;
		ct state { established, related } accept
		ct status dnat accept
		iifname "lo" accept
		ct state invalid drop
		jump filter_INPUT_ZONES
		reject with icmpx admin-prohibited
	}
	chain filter_INPUT_ZONES {
		goto filter_IN_public
	}
	chain filter_IN_public {
		meta l4proto { icmp, ipv6-icmp } accept
		udp dport 62201 accept
	}
}
`

var hosts = []host{
	{name: "guard", conf: "SESAME_GUARD_PORTS tcp/22;\n"},
	{name: "guard-open-ports", udp: true, open: "OPEN_PORTS tcp/22"},
	{name: "nft-drop", udp: true, open: "OPEN_PORTS tcp/22", table: "inet filter", hooks: "nft inet filter input",
		setup: func(t *testing.T, ns *nstest.NS) { nftLoad(t, ns, nftDrop) },
		// Debian's /etc/nftables.conf starts with flush ruleset.
		reload: func(t *testing.T, ns *nstest.NS) { nftLoad(t, ns, "flush ruleset\n"+nftDrop) }},
	{name: "iptables-drop", needs: []string{"iptables-nft-restore"}, open: "OPEN_PORTS tcp/22", table: "ip filter",
		hooks:  "iptables",
		setup:  func(t *testing.T, ns *nstest.NS) { iptRestore(t, ns, iptablesDrop) },
		reload: func(t *testing.T, ns *nstest.NS) { iptRestore(t, ns, iptablesDrop) }},
	{name: "ufw", needs: []string{"iptables-nft-restore"}, open: "OPEN_PORTS tcp/22", table: "ip filter", hooks: "iptables",
		setup:  func(t *testing.T, ns *nstest.NS) { iptRestore(t, ns, ufwLike) },
		reload: func(t *testing.T, ns *nstest.NS) { iptRestore(t, ns, ufwLike) }},
	{name: "firewalld", udp: true, open: "OPEN_PORTS tcp/22", table: "inet firewalld", hooks: "nft inet firewalld filter_INPUT",
		setup: func(t *testing.T, ns *nstest.NS) { nftLoad(t, ns, firewalldLike) },
		reload: func(t *testing.T, ns *nstest.NS) {
			if tables(t, ns)["inet firewalld"] { // not after a flush
				ns.Run(t, "nft", "delete", "table", "inet", "firewalld")
			}
			nftLoad(t, ns, firewalldLike)
		}},
}

// captureConf is the capture part of fwknopd.conf: the UDP server, or sniffing ifc.
func (h host) captureConf(ifc string) string {
	if h.udp {
		return "ENABLE_UDP_SERVER Y;\n"
	}
	return "PCAP_INTF " + ifc + ";\n"
}

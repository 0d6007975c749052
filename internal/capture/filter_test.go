package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// fakeNames replaces host, service and protocol lookups for the test.
func fakeNames(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	services := dir + "/services"
	protocols := dir + "/protocols"
	writeFile(t, services, "domain 53/tcp\ndomain 53/udp\nssh 22/tcp # comment\nsyslog 514/udp\nfwknop 62201/udp\nodd 100/tcp\nodd 101/udp\n")
	writeFile(t, protocols, "ip 0 IP\nicmp 1 ICMP\nospf 89 OSPFIGP\n")
	oldS, oldP, oldL := servicesFile, protocolsFile, lookupHost
	servicesFile, protocolsFile = services, protocols
	servicesOnce = sync.Once{}
	lookupHost = func(name string) ([]netip.Addr, error) {
		switch name {
		case "knocker.example":
			return []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("fd99::2")}, nil
		case "v4only.example":
			return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
		}
		return nil, errors.New("no such host")
	}
	t.Cleanup(func() {
		servicesFile, protocolsFile, lookupHost = oldS, oldP, oldL
		servicesOnce = sync.Once{}
	})
}

func TestCompileFilter(t *testing.T) {
	fakeNames(t)
	tests := []struct {
		expr, want string
	}{
		{"udp port 62201", "udp port 62201"},
		{"UDP Port 62201", "udp port 62201"},
		{"udp dst port 62201", "udp dst port 62201"},
		{"port 62201", "port 62201"},
		{"icmp", "icmp"},
		{"icmp6", "icmp6"},
		{"udp or tcp port 62201 or icmp", "udp or tcp port 62201 or icmp"},
		{"(udp port 62201) or (tcp dst port 1)", "udp port 62201 or tcp dst port 1"},
		{"(udp port 1 or (tcp port 2 || icmp))", "udp port 1 or tcp port 2 or icmp"},
		{"  udp   port\t62201\n", "udp port 62201"},
		// Qualifiers carry over to bare values.
		{"udp port 62201 or 62202", "udp port 62201 or udp port 62202"},
		{"udp dst port 62201 or 62202 and not 3", "(udp dst port 62201 or udp dst port 62202) and not udp dst port 3"},
		{"host 10.0.0.1 and (10.0.0.2 or 10.0.0.3)", "host 10.0.0.1 and (host 10.0.0.2 or host 10.0.0.3)"},
		{"udp port (53 or 54)", "udp port 53 or udp port 54"},
		{"not host 1.2.3.4 or 5.6.7.8", "not host 1.2.3.4 or host 5.6.7.8"},
		// and/or have equal precedence and associate to the left, as in pcap-filter(7).
		{"udp or tcp and port 1", "(udp or tcp) and port 1"},
		{"udp and (tcp or port 1)", "udp and (tcp or port 1)"},
		{"not not udp", "not not udp"},
		{"! udp && ! tcp || icmp", "(not udp and not tcp) or icmp"},
		// Hosts and networks.
		{"src host 10.99.0.2", "src host 10.99.0.2"},
		{"dst 10.99.0.2", "dst host 10.99.0.2"},
		{"src or dst host 10.99.0.2", "host 10.99.0.2"},
		{"src and dst host 10.99.0.2", "src and dst host 10.99.0.2"},
		{"ip host 10.99.0.2", "host 10.99.0.2"},
		{"host fd99::2", "host fd99::2"},
		{"ip6 src host fd99::2", "src host fd99::2"},
		{"host 10.1", "net 10.1.0.0/16"},
		{"host 10", "host 0.0.0.10"},
		{"net 10", "net 10.0.0.0/8"},
		{"net 172.16", "net 172.16.0.0/16"},
		{"net 192.168.1", "net 192.168.1.0/24"},
		{"net 10.0.0.0/8", "net 10.0.0.0/8"},
		{"net 10.0/16", "net 10.0.0.0/16"},
		{"net 192.168.0.0 mask 255.255.0.0", "net 192.168.0.0/16"},
		{"dst net fd00::/8", "dst net fd00::/8"},
		{"net fd99::", "host fd99::"},
		{"host knocker.example", "host 10.99.0.2 or host fd99::2"},
		{"ip6 host knocker.example", "host fd99::2"},
		// Ports and ranges, names from the services file.
		{"portrange 1000-2000", "portrange 1000-2000"},
		{"udp src portrange 2000-1000", "udp src portrange 1000-2000"},
		{"port domain", "port 53"},
		{"port ssh", "tcp port 22"},
		{"udp port fwknop", "udp port 62201"},
		{"tcp port odd", "tcp port 100"},
		{"portrange ssh-domain", "tcp portrange 22-53"},
		{"sctp port 9", "sctp port 9"},
		{"ip port 1", "ip and port 1"},
		{"ip6 and udp port 1 or ip6 port 2", "(ip6 and udp port 1) or (ip6 and port 2)"},
		{"port 0x10 or 010", "port 16 or port 8"},
		// Protocols.
		{"ip", "ip"},
		{"ip6 and tcp", "ip6 and tcp"},
		{"proto 17", "udp"},
		{"ip proto 17", "ip proto 17"},
		{"ip6 proto 0", "ip6 proto 0"},
		{"proto \\udp", "udp"},
		{"ip proto \\icmp", "icmp"},
		{"ip proto ospf", "ip proto 89"},
		{"protochain 6", "tcp"},
		{"igmp or igrp or pim or vrrp or carp or ah or esp", "igmp or igrp or pim or vrrp or vrrp or ah or esp"},
		{"ip multicast or ip6 multicast or ip broadcast", "ip multicast or ip6 multicast or ip broadcast"},
		// Lengths and arithmetic.
		{"less 100", "len <= 100"},
		{"greater 100", "len >= 100"},
		{"len > 1 + 2 * 3", "len > 7"},
		{"udp[8:2] = 0x4142", "udp[8:2] = 16706"},
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "tcp[13] & 18 = 2"},
		{"icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply", "icmp[0] != 8 and icmp[0] != 0"},
		{"ip[6:2] & 0x1fff = 0", "ip[6:2] & 8191 = 0"},
		{"(ip[0] & 0xf) > 5", "ip[0] & 15 > 5"},
		{"ip[2:2] - ((ip[0]&0xf)<<2) > 28", "ip[2:2] - ((ip[0] & 15) << 2) > 28"},
		{"udp[-1] = 0", "udp[4294967295] = 0"},
		{"-ip[0] != 0", "-ip[0] != 0"},
		{"1 + 2 = 3", "3 = 3"},
		{"ip6[6] = 17 and len < 10 / 3 % 2 ^ 1", "ip6[6] = 17 and len < 0"},
	}
	for _, tc := range tests {
		f, err := CompileFilter(tc.expr)
		if err != nil {
			t.Errorf("CompileFilter(%q): %v", tc.expr, err)
			continue
		}
		if got := f.String(); got != tc.want {
			t.Errorf("CompileFilter(%q) = %q, want %q", tc.expr, got, tc.want)
		}
		if f.Expr != tc.expr {
			t.Errorf("Expr = %q", f.Expr)
		}
		// The canonical form compiles to the same filter.
		g, err := CompileFilter(f.String())
		if err != nil || g.String() != f.String() {
			t.Errorf("round trip of %q: %q, %v", f.String(), g.String(), err)
		}
	}
}

func TestCompileFilterErrors(t *testing.T) {
	const anyPos = -2
	fakeNames(t)
	tests := []struct {
		expr string
		pos  int
		msg  string
	}{
		{"", -1, "empty"},
		{"62201", 0, "needs a qualifier"},
		{"udp and 53", 8, "qualifier"},
		{"udp or 53", 7, "qualifier"},
		{"ip and 1.2.3.4", 7, "qualifier"},
		{"udp port", -1, "expected a port"},
		{"udp dst", -1, "expected an address"},
		{"udp port 1 or", -1, "ends early"},
		{"(udp port 1", -1, "missing )"},
		{"udp port 1)", 10, `unexpected ")"`},
		{"udp port 70000", 9, "illegal port number 70000 > 65535"},
		{"udp port -1", 9, "expected a port"},
		{"udp port nosuch", 9, "unknown port"},
		{"udp port ssh", 9, "not defined for that protocol"},
		{"port odd", 5, "100/tcp and 101/udp"},
		{"portrange 1-", 10, "bad port range"},
		{"icmp port 1", 10, "illegal qualifier of 'port'"},
		{"tcp host 1.2.3.4", 9, "'tcp' modifier applied to host"},
		{"ip host ::1", 8, "'ip' modifier applied to ip6 host"},
		{"ip6 host 1.2.3.4", 9, "'ip6' modifier applied to ip host"},
		{"ip6 host v4only.example", 9, "no ip6 address"},
		{"host nosuch.example", 5, "unknown host"},
		{"host 10.0.0.0/8", 13, "networks only"},
		{"net 10.1.2.3/24", 4, `non-network bits set in "10.1.2.3/24"`},
		{"net 10.0.0.1 mask 255.0.0.0", 4, "non-network bits"},
		{"net 10.0.0.0 mask 255.0.255.0", 18, "not contiguous"},
		{"net fd00::1/8", 4, "non-network bits"},
		{"net 10.0.0.0/33", 13, "prefix length"},
		{"net foo", 4, "not a network address"},
		{"proto 300", 6, "out of range"},
		{"ip proto nosuch", 9, "unknown protocol"},
		{"src proto 1", 4, "no direction"},
		{"ether host 1:2:3:4:5:6", 0, "link-layer"},
		{"arp", 0, "link-layer"},
		{"vlan and udp", 0, "link-layer"},
		{"inbound", 0, "ENABLE_PCAP_ANY_DIRECTION"},
		{"broadcast", 0, "ip broadcast"},
		{"ip6 broadcast", 0, "does not apply"},
		{"gateway foo", 0, "link-layer"},
		{"ip[0]/0 = 1", 5, "division by zero"},
		{"ip[0] % 0 = 1", 6, "division by zero"},
		{"udp[1:3] = 1", 6, "data size must be 1, 2, or 4"},
		{"udp[1 = 1", 6, "missing ]"},
		{"ether[0] = 1", 0, "link-layer"},
		{"pim[0] = 1", 0, "header index"},
		{"udp[0]", -1, "comparison"},
		{"2-1=1", 0, "needs a qualifier"},
		{"udp port 1 and #", 15, "unexpected character"},
		{"ip and ip6", 0, "rejects all packets"},
		{"icmp and icmp6", 0, "rejects all packets"},
		{"host 99999999999", 5, "unknown host"},
		{"\\ udp", 0, "backslash"},
		{strings.Repeat("(", 120) + "udp" + strings.Repeat(")", 120), anyPos, "nested"},
		{strings.Repeat("not ", 150) + "udp", anyPos, "nested"},
	}
	for _, tc := range tests {
		_, err := CompileFilter(tc.expr)
		var fe *FilterError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFilter) {
			t.Errorf("CompileFilter(%q) = %v, want a *FilterError", tc.expr, err)
			continue
		}
		if (fe.Pos != tc.pos && tc.pos != anyPos) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("CompileFilter(%q) = %v (pos %d), want pos %d and %q", tc.expr, err, fe.Pos, tc.pos, tc.msg)
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.expr)) || !strings.Contains(err.Error(), "supported:") {
			t.Errorf("error %q should quote the expression and list what is supported", err)
		}
	}
}

// meta is the kernel-side data the program reads through SKF_AD extensions.
type meta struct {
	pkttype, proto, ifindex uint32
}

// vmRun runs prog on pkt in x/net/bpf's userspace VM. The VM lacks the SKF_AD extensions the
// program uses, so each extension load is replaced by a constant load of the same register,
// which keeps every jump offset.
func vmRun(t testing.TB, prog []bpf.Instruction, m meta, pkt []byte) int {
	t.Helper()
	p := make([]bpf.Instruction, len(prog))
	for i, ins := range prog {
		if ext, ok := ins.(bpf.LoadExtension); ok {
			var v uint32
			switch ext.Num {
			case bpf.ExtType:
				v = m.pkttype
			case bpf.ExtProto:
				v = m.proto
			case bpf.ExtInterfaceIndex:
				v = m.ifindex
			default:
				t.Fatalf("unexpected extension %v", ext.Num)
			}
			ins = bpf.LoadConstant{Dst: bpf.RegA, Val: v}
		}
		p[i] = ins
	}
	vm, err := bpf.NewVM(p)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	return n
}

func mustFilter(t testing.TB, expr string) Filter {
	t.Helper()
	f, err := CompileFilter(expr)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustProgram(t testing.TB, f Filter, o ProgramOptions) []bpf.Instruction {
	t.Helper()
	prog, err := f.Program(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatalf("assemble: %v", err)
	}
	return prog
}

// metaFor is what the kernel would report for pkt arriving from elsewhere.
func metaFor(pkt []byte) meta {
	m := meta{pkttype: unix.PACKET_HOST, proto: unix.ETH_P_IP, ifindex: 2}
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		m.proto = unix.ETH_P_IPV6
	}
	return m
}

// filterPackets are the packets of TestProgramMatches.
func filterPackets() map[string][]byte {
	pl := spaPayload()
	other4, other6 := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8::9")
	pkts := map[string][]byte{
		"udp4 dport":     ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)),
		"udp4 opts":      ip4(ProtoUDP, cli4, srv4, 2, udpHdr(40000, 62201, pl)),
		"udp4 sport":     ip4(ProtoUDP, srv4, cli4, 0, udpHdr(62201, 40000, pl)),
		"udp4 dns":       ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 53, pl)),
		"udp4 other":     ip4(ProtoUDP, other4, srv4, 0, udpHdr(40000, 62202, pl)),
		"tcp4 dport":     ip4(ProtoTCP, cli4, srv4, 0, tcpHdr(40000, 62201, 0, pl)),
		"tcp4 80":        ip4(ProtoTCP, cli4, srv4, 1, tcpHdr(40000, 80, 0, pl)),
		"icmp4":          ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(8, pl)),
		"udp6 dport":     ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)),
		"udp6 dns":       ip6(ProtoUDP, other6, srv6, udpHdr(40000, 53, pl)),
		"tcp6 dport":     ip6(ProtoTCP, cli6, srv6, tcpHdr(40000, 62201, 0, pl)),
		"icmp6":          ip6(ProtoICMPv6, cli6, srv6, icmpHdr(128, pl)),
		"udp6 hop":       ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop}, udpHdr(40000, 62201, pl)),
		"udp6 hop dst":   ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop, extDestOpts}, udpHdr(40000, 62201, pl)),
		"udp6 rt ah":     ip6ext(ProtoUDP, cli6, srv6, []uint8{extRouting, extAH}, udpHdr(40000, 62201, pl)),
		"tcp6 dst":       ip6ext(ProtoTCP, cli6, srv6, []uint8{extDestOpts}, tcpHdr(40000, 62201, 0, pl)),
		"udp6 8 exts":    ip6ext(ProtoUDP, cli6, srv6, []uint8{0, 60, 43, 60, 60, 60, 60, 51}, udpHdr(40000, 62201, pl)),
		"udp6 9 exts":    ip6ext(ProtoUDP, cli6, srv6, []uint8{0, 60, 43, 60, 60, 60, 60, 60, 51}, udpHdr(40000, 62201, pl)),
		"esp6":           ip6(50, cli6, srv6, make([]byte, 40)),
		"mcast4":         ip4(ProtoUDP, cli4, netip.MustParseAddr("224.0.0.251"), 0, udpHdr(5353, 5353, pl)),
		"bcast4":         ip4(ProtoUDP, cli4, netip.MustParseAddr("255.255.255.255"), 0, udpHdr(68, 67, pl)),
		"mcast6":         ip6(ProtoUDP, cli6, netip.MustParseAddr("ff02::fb"), udpHdr(5353, 5353, pl)),
		"udp4 tiny":      ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, nil)),
		"tcp4 syn":       ip4(ProtoTCP, cli4, srv4, 0, func() []byte { b := tcpHdr(40000, 22, 0, nil); b[13] = 0x02; return b }()),
		"udp4 ports eq":  ip4(ProtoUDP, cli4, cli4, 0, udpHdr(62201, 62201, pl)),
		"udp4 same host": ip4(ProtoUDP, cli4, cli4, 0, udpHdr(1, 2, pl)),
	}
	return pkts
}

func TestProgramMatches(t *testing.T) {
	fakeNames(t)
	pkts := filterPackets()
	all := func(except ...string) []string {
		var out []string
	outer:
		for name := range pkts {
			for _, e := range except {
				if name == e {
					continue outer
				}
			}
			out = append(out, name)
		}
		return out
	}
	udp62201 := []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp6 dport", "udp6 hop", "udp6 hop dst",
		"udp6 rt ah", "udp6 8 exts", "udp4 tiny", "udp4 ports eq"}
	tests := []struct {
		expr string
		want []string
	}{
		{"udp port 62201", udp62201},
		{"udp dst port 62201", []string{"udp4 dport", "udp4 opts", "udp6 dport", "udp6 hop", "udp6 hop dst", "udp6 rt ah",
			"udp6 8 exts", "udp4 tiny", "udp4 ports eq"}},
		{"udp src port 62201", []string{"udp4 sport", "udp4 ports eq"}},
		{"udp src and dst port 62201", []string{"udp4 ports eq"}},
		{"tcp port 62201", []string{"tcp4 dport", "tcp6 dport", "tcp6 dst"}},
		{"port 62201", append([]string{"tcp4 dport", "tcp6 dport", "tcp6 dst"}, udp62201...)},
		{"icmp", []string{"icmp4"}},
		{"icmp6", []string{"icmp6"}},
		{"ip6 and not udp", []string{"tcp6 dport", "icmp6", "tcp6 dst", "esp6"}},
		{"ip6 proto 0", []string{"udp6 hop", "udp6 hop dst", "udp6 8 exts"}},
		{"ah", []string{"udp6 rt ah", "udp6 8 exts"}},
		{"esp", []string{"esp6"}},
		{"ip6 protochain 43", []string{"udp6 rt ah", "udp6 8 exts"}},
		{"udp port 62201 and not ip6", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp4 tiny", "udp4 ports eq"}},
		{"udp dst port 62201 or tcp dst port 80 or icmp or icmp6", []string{"udp4 dport", "udp4 opts", "udp6 dport",
			"udp6 hop", "udp6 hop dst", "udp6 rt ah", "udp6 8 exts", "tcp4 80", "icmp4", "icmp6", "udp4 tiny", "udp4 ports eq"}},
		{"src host 10.99.0.2 and udp", []string{"udp4 dport", "udp4 opts", "udp4 dns", "udp4 tiny", "udp4 ports eq",
			"udp4 same host", "mcast4", "bcast4"}},
		{"dst host 10.99.0.2", []string{"udp4 sport", "udp4 ports eq", "udp4 same host"}},
		{"src and dst host 10.99.0.2", []string{"udp4 ports eq", "udp4 same host"}},
		{"not net 10.0.0.0/8", []string{"udp6 dport", "udp6 dns", "tcp6 dport", "icmp6", "udp6 hop", "udp6 hop dst",
			"udp6 rt ah", "tcp6 dst", "udp6 8 exts", "esp6", "mcast6"}},
		{"net fd99::/64 and udp port 62201", []string{"udp6 dport", "udp6 hop", "udp6 hop dst", "udp6 rt ah", "udp6 8 exts"}},
		{"host knocker.example and port 62201", []string{"udp4 dport", "udp4 opts", "udp4 sport", "tcp4 dport",
			"udp6 dport", "tcp6 dport", "udp6 hop", "udp6 hop dst", "udp6 rt ah", "tcp6 dst", "udp6 8 exts", "udp4 tiny", "udp4 ports eq"}},
		{"portrange 50-100", []string{"udp4 dns", "tcp4 80", "udp6 dns", "bcast4"}},
		{"ip multicast", []string{"mcast4", "bcast4"}}, // libpcap: destination >= 224.0.0.0
		{"ip6 multicast", []string{"mcast6"}},
		{"ip broadcast", []string{"bcast4"}},
		{"less 40", []string{"udp4 tiny", "tcp4 syn"}},
		{"greater 200 and ip", all("udp4 tiny", "tcp4 syn", "udp6 dport", "udp6 dns", "tcp6 dport", "icmp6", "udp6 hop",
			"udp6 hop dst", "udp6 rt ah", "tcp6 dst", "udp6 8 exts", "udp6 9 exts", "esp6", "mcast6")},
		{"tcp[tcpflags] & tcp-syn != 0", []string{"tcp4 syn"}},
		{"udp[8:2] = 0x4142", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp4 dns", "udp4 other", "udp6 dport",
			"udp6 dns", "udp6 hop", "udp6 hop dst", "udp6 rt ah", "udp6 8 exts", "mcast4", "bcast4", "mcast6",
			"udp4 ports eq", "udp4 same host"}},
		{"icmp[icmptype] = icmp-echo or icmp6[icmp6type] = icmp6-echo", []string{"icmp4", "icmp6"}},
		{"ip[9] = 6 and ip[0] & 0xf > 5", []string{"tcp4 80"}},
		{"ip6[6] = 0", []string{"udp6 hop", "udp6 hop dst", "udp6 8 exts"}},
		{"udp[8 + udp[4:2] - 8 - 1] = 0x79 + 1", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp4 dns",
			"udp4 other", "udp6 dport", "udp6 dns", "udp6 hop", "udp6 hop dst", "udp6 rt ah", "udp6 8 exts", "mcast4",
			"bcast4", "mcast6", "udp4 ports eq", "udp4 same host"}},
		// udp4 tiny: the load falls past the end, which rejects the packet whatever the or.
		{"udp[8] = 0 or icmp", []string{"icmp4"}},
		{"udp[8] != 0 or icmp", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp4 dns", "udp4 other", "udp6 dport",
			"udp6 dns", "udp6 hop", "udp6 hop dst", "udp6 rt ah", "udp6 8 exts", "mcast4", "bcast4", "mcast6",
			"udp4 ports eq", "udp4 same host", "icmp4"}},
		{"ip[2:2] / (ip[9] - 17) = 0 or ip6", all("udp4 dport", "udp4 opts", "udp4 sport", "udp4 dns", "udp4 other",
			"mcast4", "bcast4", "udp4 tiny", "udp4 ports eq", "udp4 same host", "udp6 9 exts")}, // 0 - 17 wraps
		{"len = 40", []string{"tcp4 syn"}},
		{"ip or ip6", all("udp6 9 exts")},
	}
	for _, tc := range tests {
		f := mustFilter(t, tc.expr)
		prog := mustProgram(t, f, ProgramOptions{})
		want := map[string]bool{}
		for _, w := range tc.want {
			if _, ok := pkts[w]; !ok {
				t.Fatalf("no packet %q", w)
			}
			want[w] = true
		}
		for name, pkt := range pkts {
			got := vmRun(t, prog, metaFor(pkt), pkt)
			if (got != 0) != want[name] {
				t.Errorf("%q on %s: kernel program returns %d, want accept=%v", tc.expr, name, got, want[name])
			}
			if m := f.Match(pkt); m != want[name] {
				t.Errorf("%q on %s: Match = %v, want %v", tc.expr, name, m, want[name])
			}
			if got != 0 && got != DefaultSnapLen {
				t.Errorf("accepted with snap %d", got)
			}
		}
	}
}

// TestProgramFragments: the kernel program passes fragments on what they can tell (addresses,
// and IPv4's protocol), so that the datagram can be reassembled and checked whole.
func TestProgramFragments(t *testing.T) {
	pl := spaPayload()
	other4, other6 := netip.MustParseAddr("192.0.2.9"), netip.MustParseAddr("2001:db8::9")
	f4 := frag4(ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)), 64, 7)
	f6 := frag6(ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)), 64, 7)
	t4 := frag4(ip4(ProtoTCP, cli4, srv4, 0, tcpHdr(40000, 62201, 0, pl)), 64, 8)
	o4 := frag4(ip4(ProtoUDP, other4, srv4, 0, udpHdr(40000, 62201, pl)), 64, 9)
	o6 := frag6(ip6(ProtoUDP, other6, srv6, udpHdr(40000, 62201, pl)), 64, 9)
	hop6 := ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop}, nil)
	hop6[40] = extFragment // a hop-by-hop header before the Fragment header
	hop6 = append(hop6, f6[1][40:]...)
	binary.BigEndian.PutUint16(hop6[4:], uint16(len(hop6)-40))
	tests := []struct {
		expr  string
		frags [][]byte
		want  bool
	}{
		{"udp port 62201", append(f4, f6...), true},
		{"udp port 62201", t4, false},
		{"not udp port 62201", t4, true},
		{"udp port 62201", [][]byte{hop6}, true},
		{"udp port 62201 and src host 10.99.0.2", append(f4, o4...)[:len(f4)], true},
		{"udp port 62201 and src host 10.99.0.2", o4, false},
		{"udp port 62201 and src net fd99::/64", f6, true},
		{"udp port 62201 and src net fd99::/64", o6, false},
		{"not udp port 62201", append(f4, f6...), true}, // only the whole datagram can say
		{"tcp", f4, false},
		{"tcp", f6, true},
		{"udp[8:2] = 1", f4, true},
		{"icmp6", f4, false},
	}
	for _, tc := range tests {
		prog := mustProgram(t, mustFilter(t, tc.expr), ProgramOptions{})
		for i, fr := range tc.frags {
			if got := vmRun(t, prog, metaFor(fr), fr) != 0; got != tc.want {
				t.Errorf("%q on fragment %d (%x...): accept = %v, want %v", tc.expr, i, fr[:8], got, tc.want)
			}
		}
	}
}

func TestProgramDirectionAndProto(t *testing.T) {
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	f := mustFilter(t, "udp port 62201")
	const lo = 1
	tests := []struct {
		name string
		o    ProgramOptions
		m    meta
		want bool
	}{
		{"incoming", ProgramOptions{}, meta{unix.PACKET_HOST, unix.ETH_P_IP, 2}, true},
		{"broadcast", ProgramOptions{}, meta{unix.PACKET_BROADCAST, unix.ETH_P_IP, 2}, true},
		{"outgoing", ProgramOptions{}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, 2}, false},
		{"outgoing loopback", ProgramOptions{}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, lo}, false},
		{"any dir outgoing", ProgramOptions{AnyDirection: true, Loopback: []uint32{lo}}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, 2}, true},
		{"any dir outgoing loopback", ProgramOptions{AnyDirection: true, Loopback: []uint32{lo, 7}}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, lo}, false},
		{"any dir outgoing 2nd loopback", ProgramOptions{AnyDirection: true, Loopback: []uint32{lo, 7}}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, 7}, false},
		{"any dir incoming loopback", ProgramOptions{AnyDirection: true, Loopback: []uint32{lo}}, meta{unix.PACKET_HOST, unix.ETH_P_IP, lo}, true},
		{"any dir no loopback list", ProgramOptions{AnyDirection: true}, meta{unix.PACKET_OUTGOING, unix.ETH_P_IP, lo}, true},
		{"arp ethertype", ProgramOptions{}, meta{unix.PACKET_HOST, unix.ETH_P_ARP, 2}, false},
		{"ipv6 ethertype on ipv4 bytes", ProgramOptions{}, meta{unix.PACKET_HOST, unix.ETH_P_IPV6, 2}, false},
	}
	for _, tc := range tests {
		prog := mustProgram(t, f, tc.o)
		if got := vmRun(t, prog, tc.m, pkt) != 0; got != tc.want {
			t.Errorf("%s: accept = %v, want %v", tc.name, got, tc.want)
		}
	}
	// ipv4 ethertype with a version-6 nibble.
	prog := mustProgram(t, f, ProgramOptions{})
	if vmRun(t, prog, meta{unix.PACKET_HOST, unix.ETH_P_IP, 2}, ip6(ProtoUDP, cli6, srv6, udpHdr(1, 62201, nil))) != 0 {
		t.Error("IPv6 bytes under the IPv4 EtherType accepted")
	}
	if _, err := f.Program(ProgramOptions{AnyDirection: true, Loopback: make([]uint32, maxLoopback+1)}); err == nil {
		t.Error("too many loopback interfaces accepted")
	}
	if _, err := (Filter{}).Program(ProgramOptions{}); err == nil {
		t.Error("the zero Filter has a program")
	}
	if (Filter{}).Match(pkt) || (Filter{}).String() != "" {
		t.Error("the zero Filter matches")
	}
}

// TestProgramSizeAndJumps: a long filter needs jumps farther than classic BPF's 255, which go
// through trampolines; a filter too long for the kernel is refused by CompileFilter.
func TestProgramSizeAndJumps(t *testing.T) {
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	prog := mustProgram(t, mustFilter(t, "udp port 62201"), ProgramOptions{SnapLen: 300})
	if got := vmRun(t, prog, meta{unix.PACKET_HOST, unix.ETH_P_IP, 2}, pkt); got != 300 {
		t.Errorf("snap = %d, want 300", got)
	}
	var terms []string
	for i := range 100 {
		terms = append(terms, fmt.Sprintf("port %d", 1000+i))
	}
	f := mustFilter(t, strings.Join(terms, " or "))
	prog = mustProgram(t, f, ProgramOptions{AnyDirection: true, Loopback: []uint32{1, 2, 3}})
	if len(prog) < 600 {
		t.Fatalf("only %d instructions: no far jumps tested", len(prog))
	}
	for _, i := range []int{0, 1, 50, 99} {
		for _, p := range [][]byte{ip6(ProtoTCP, cli6, srv6, tcpHdr(uint16(1000+i), 9, 0, nil)),
			ip4(ProtoUDP, cli4, srv4, 0, udpHdr(9, uint16(1000+i), nil))} {
			if vmRun(t, prog, metaFor(p), p) == 0 || !f.Match(p) {
				t.Errorf("port %d not matched", 1000+i)
			}
		}
	}
	if p := ip6(ProtoTCP, cli6, srv6, tcpHdr(999, 9, 0, nil)); vmRun(t, prog, metaFor(p), p) != 0 {
		t.Error("port 999 matched")
	}
	terms = terms[:0]
	for i := range 700 {
		terms = append(terms, fmt.Sprintf("port %d", 1000+i))
	}
	if _, err := CompileFilter(strings.Join(terms, " or ")); !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("a filter too long for the kernel: %v", err)
	}
	// Arithmetic deeper than the scratch memory.
	deep := "ip[0]"
	for range 14 {
		deep = "(" + deep + ") + ip[0]"
	}
	if _, err := CompileFilter(deep + " = 1"); err == nil || !strings.Contains(err.Error(), "scratch") {
		t.Errorf("arithmetic too deep: %v", err)
	}
}

// filterCorpus is the expressions the fuzz targets and the tcpdump comparison use.
var filterCorpus = []string{
	"udp port 62201", "udp dst port 62201 or tcp dst port 80 or icmp or icmp6",
	"port 62201", "udp src port 53 or tcp", "icmp6 or udp", "not udp port 53 and ip6",
	"src net 10.99.0.0/24 and not dst host 10.99.0.1 or ip6 proto 0", "portrange 50-100 or less 64",
	"tcp[tcpflags] & tcp-syn != 0 or udp[8:2] > 0x4000", "ah or esp or ip6 protochain 60",
	"ip[2:2] / (ip[9] - 17) = 0 or ip6[6] = 17", "host fd99::2 and (udp or tcp)",
	"ip multicast or ip6 multicast or ip broadcast", "udp[udp[4:2] - 1] = 0x41 and len > 100",
	"(ip[0] & 0xf) > 5 or icmp[icmptype] = icmp-echo", "udp and (src port 40000 or dst portrange 62000-63000)",
}

// FuzzFilterProgram checks the kernel program against the userspace Match: for every whole
// packet ParseIP accepts, the program accepts exactly when the filter matches.
func FuzzFilterProgram(f *testing.F) {
	pl := spaPayload()
	for i, p := range [][]byte{
		ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)),
		ip4(ProtoTCP, cli4, srv4, 1, tcpHdr(40000, 80, 0, pl)),
		ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(0, pl)),
		ip6(ProtoTCP, cli6, srv6, tcpHdr(62201, 80, 0, pl)),
		ip6(ProtoUDP, cli6, srv6, udpHdr(53, 80, pl)),
		ip6(ProtoICMPv6, cli6, srv6, icmpHdr(128, pl)),
		ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop, extRouting, extAH}, udpHdr(40000, 62201, pl[:20])),
	} {
		f.Add(uint8(i), p)
	}
	progs := make([][]bpf.Instruction, len(filterCorpus))
	filters := make([]Filter, len(filterCorpus))
	for i, e := range filterCorpus {
		filters[i] = mustFilter(f, e)
		progs[i] = mustProgram(f, filters[i], ProgramOptions{})
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		i := int(which) % len(filterCorpus)
		got := vmRun(t, progs[i], metaFor(b), b) != 0
		if _, err := ParseIP(b); err != nil {
			return // the kernel may pass malformed packets and fragments; Read checks them
		}
		if want := filters[i].Match(b); got != want {
			t.Fatalf("%q: program accept=%v, Match=%v for %x", filterCorpus[i], got, want, b)
		}
	})
}

func BenchmarkProgramVM(b *testing.B) {
	prog := mustProgram(b, mustFilter(b, "udp port 62201 or tcp port 62201 or icmp"), ProgramOptions{})
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 53, spaPayload()))
	for b.Loop() {
		vmRun(b, prog, meta{unix.PACKET_HOST, unix.ETH_P_IP, 2}, pkt)
	}
}

func BenchmarkMatch(b *testing.B) {
	f := mustFilter(b, "udp port 62201 or tcp port 62201 or icmp")
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	b.ReportAllocs()
	for b.Loop() {
		f.Match(pkt)
	}
}

// FuzzCompileFilter: CompileFilter never panics and fails only with a *FilterError; an accepted
// expression has a canonical form that compiles to the same filter, its programs assemble,
// and Match does not panic.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range append([]string{"udp port 62201 or 62202", "((", "tcp src port 0x10", "", "host 1.2.3.4 and (5.6.7.8 or 9.9.9.9)",
		"net 10 mask 255.0.0.0", "ip[1:2] << 3 >> 1 | 4 ^ 5 = -1", "not (udp[0] < 1)", "proto \\tcp"}, filterCorpus...) {
		f.Add(s)
	}
	pkts := [][]byte{ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte("x"))), ip6(ProtoTCP, cli6, srv6, tcpHdr(1, 2, 0, nil))}
	lookupHost = func(string) ([]netip.Addr, error) { return nil, errors.New("no names while fuzzing") }
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr)
		if err != nil {
			var fe *FilterError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFilter) || fe.Pos >= len(expr) {
				t.Fatalf("error %v is not a *FilterError inside the expression", err)
			}
			return
		}
		again, err := CompileFilter(flt.String())
		if err != nil || again.String() != flt.String() {
			t.Fatalf("canonical form %q of %q: %q, %v", flt.String(), expr, again.String(), err)
		}
		for _, o := range []ProgramOptions{{}, {AnyDirection: true, Loopback: []uint32{1, 9}}} {
			prog, err := flt.Program(o)
			if err != nil {
				t.Fatalf("Program(%q): %v", expr, err)
			}
			if _, err := bpf.Assemble(prog); err != nil {
				t.Fatalf("assemble %q: %v", expr, err)
			}
		}
		for _, p := range pkts {
			flt.Match(p)
		}
	})
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

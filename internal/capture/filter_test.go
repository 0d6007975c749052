package capture

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

func TestCompileFilter(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{"udp port 62201", "udp port 62201"},
		{"UDP Port 62201", "udp port 62201"},
		{"udp dst port 62201", "udp dst port 62201"},
		{"udp src port 53", "udp src port 53"},
		{"tcp port 62201", "tcp port 62201"},
		{"tcp dst port 80", "tcp dst port 80"},
		{"port 62201", "port 62201"},
		{"dst port 62201", "dst port 62201"},
		{"icmp", "icmp"},
		{"icmp6", "icmp6"},
		{"udp", "udp"},
		{"udp port 62201 or tcp port 62201 or tcp port 80 or icmp", "udp port 62201 or tcp port 62201 or tcp port 80 or icmp"},
		{"(udp port 62201) or (tcp dst port 1)", "udp port 62201 or tcp dst port 1"},
		{"(udp port 1 or (tcp port 2 || icmp))", "udp port 1 or tcp port 2 or icmp"},
		{"udp port 0 or udp port 65535", "udp port 0 or udp port 65535"},
		{"  udp   port\t62201\n", "udp port 62201"},
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
		// The canonical form compiles to the same terms.
		g, err := CompileFilter(f.String())
		if err != nil || g.String() != f.String() {
			t.Errorf("round trip of %q: %q, %v", f.String(), g.String(), err)
		}
	}
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct {
		expr string
		word int
		msg  string
	}{
		{"", 0, "empty"},
		{"udp port 62201 and host 10.0.0.1", 4, `"and"`},
		{"not udp port 1", 1, `"not"`},
		{"host 10.0.0.1", 1, `"host"`},
		{"udp port domain", 3, "port number"},
		{"udp port 70000", 3, "port number"},
		{"udp port -1", 3, "port number"},
		{"udp portrange 1-2", 2, `"portrange"`},
		{"udp port", 0, "port number"},
		{"udp dst", 0, "ends early"},
		{"udp port 1 or", 0, "ends early"},
		{"(udp port 1", 0, "missing )"},
		{"udp port 1)", 4, `unexpected ")"`},
		{"ip6 and udp", 1, `"ip6"`},
		{"icmp port 1", 2, `unexpected "port"`},
		{strings.Repeat("(", 12) + "udp" + strings.Repeat(")", 12), 10, "nested"},
		{strings.TrimSuffix(strings.Repeat("udp port 1 or ", maxTerms+1), " or "), 0, "more than"},
	}
	for _, tc := range tests {
		_, err := CompileFilter(tc.expr)
		var fe *FilterError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFilter) {
			t.Errorf("CompileFilter(%q) = %v, want a *FilterError", tc.expr, err)
			continue
		}
		if fe.Word != tc.word || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("CompileFilter(%q) = %v (word %d), want word %d and %q", tc.expr, err, fe.Word, tc.word, tc.msg)
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

func TestProgramMatches(t *testing.T) {
	pl := spaPayload()
	pkts := map[string][]byte{
		"udp4 dport":   ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)),
		"udp4 opts":    ip4(ProtoUDP, cli4, srv4, 2, udpHdr(40000, 62201, pl)),
		"udp4 sport":   ip4(ProtoUDP, srv4, cli4, 0, udpHdr(62201, 40000, pl)),
		"udp4 dns":     ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 53, pl)),
		"udp4 other":   ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62202, pl)),
		"tcp4 dport":   ip4(ProtoTCP, cli4, srv4, 0, tcpHdr(40000, 62201, 0, pl)),
		"tcp4 80":      ip4(ProtoTCP, cli4, srv4, 1, tcpHdr(40000, 80, 0, pl)),
		"icmp4":        ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(0, pl)),
		"udp6 dport":   ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)),
		"udp6 dns":     ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 53, pl)),
		"tcp6 dport":   ip6(ProtoTCP, cli6, srv6, tcpHdr(40000, 62201, 0, pl)),
		"icmp6":        ip6(ProtoICMPv6, cli6, srv6, icmpHdr(129, pl)),
		"ipv6 ext hdr": ip6(0, cli6, srv6, append([]byte{ProtoUDP, 0, 0, 0, 0, 0, 0, 0}, udpHdr(40000, 62201, pl)...)),
	}
	frag := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	frag[6] = 0x20 // MF
	pkts["udp4 first fragment"] = frag
	later := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	later[7] = 0x10 // offset
	pkts["udp4 later fragment"] = later

	tests := []struct {
		expr string
		want []string
	}{
		{"udp port 62201", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp6 dport"}},
		{"udp dst port 62201", []string{"udp4 dport", "udp4 opts", "udp6 dport"}},
		{"udp src port 62201", []string{"udp4 sport"}},
		{"tcp port 62201", []string{"tcp4 dport", "tcp6 dport"}},
		{"port 62201", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp6 dport", "tcp4 dport", "tcp6 dport"}},
		{"icmp", []string{"icmp4"}},
		{"icmp6", []string{"icmp6"}},
		{"udp", []string{"udp4 dport", "udp4 opts", "udp4 sport", "udp4 dns", "udp4 other", "udp6 dport", "udp6 dns"}},
		{"udp dst port 62201 or tcp dst port 80 or icmp or icmp6", []string{"udp4 dport", "udp4 opts", "udp6 dport", "tcp4 80", "icmp4", "icmp6"}},
	}
	for _, tc := range tests {
		f := mustFilter(t, tc.expr)
		prog := mustProgram(t, f, ProgramOptions{})
		want := map[string]bool{}
		for _, w := range tc.want {
			want[w] = true
		}
		for name, pkt := range pkts {
			m := meta{pkttype: unix.PACKET_HOST, proto: unix.ETH_P_IP}
			if pkt[0]>>4 == 6 {
				m.proto = unix.ETH_P_IPV6
			}
			got := vmRun(t, prog, m, pkt)
			if (got != 0) != want[name] {
				t.Errorf("%q on %s: kernel program returns %d, want accept=%v", tc.expr, name, got, want[name])
			}
			if p, err := ParseIP(pkt); err == nil && f.Match(p) != want[name] {
				t.Errorf("%q on %s: Match = %v, want %v", tc.expr, name, f.Match(p), want[name])
			}
			if got != 0 && got != DefaultSnapLen {
				t.Errorf("accepted with snap %d", got)
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
}

func TestProgramSnapLenAndSize(t *testing.T) {
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	prog := mustProgram(t, mustFilter(t, "udp port 62201"), ProgramOptions{SnapLen: 300})
	if got := vmRun(t, prog, meta{unix.PACKET_HOST, unix.ETH_P_IP, 2}, pkt); got != 300 {
		t.Errorf("snap = %d, want 300", got)
	}
	// The largest filter keeps every jump within 8 bits.
	var terms []string
	for i := range maxTerms {
		terms = append(terms, fmt.Sprintf("port %d", 1000+i))
	}
	f := mustFilter(t, strings.Join(terms, " or "))
	prog = mustProgram(t, f, ProgramOptions{AnyDirection: true, Loopback: []uint32{1, 2, 3}})
	for i := range maxTerms {
		p := ip6(ProtoTCP, cli6, srv6, tcpHdr(uint16(1000+i), 9, 0, nil))
		if vmRun(t, prog, meta{unix.PACKET_HOST, unix.ETH_P_IPV6, 5}, p) == 0 {
			t.Errorf("port %d not matched", 1000+i)
		}
	}
	if vmRun(t, prog, meta{unix.PACKET_HOST, unix.ETH_P_IPV6, 5}, ip6(ProtoTCP, cli6, srv6, tcpHdr(999, 9, 0, nil))) != 0 {
		t.Error("port 999 matched")
	}
}

// FuzzFilterProgram checks the kernel program against the userspace Match: for every packet
// ParseIP accepts, the program accepts exactly when the filter matches.
func FuzzFilterProgram(f *testing.F) {
	exprs := []string{"udp port 62201", "udp dst port 62201 or tcp dst port 80 or icmp or icmp6",
		"port 62201", "udp src port 53 or tcp", "icmp6 or udp"}
	pl := spaPayload()
	f.Add(uint8(0), ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)))
	f.Add(uint8(1), ip4(ProtoTCP, cli4, srv4, 1, tcpHdr(40000, 80, 0, pl)))
	f.Add(uint8(1), ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(0, pl)))
	f.Add(uint8(2), ip6(ProtoTCP, cli6, srv6, tcpHdr(62201, 80, 0, pl)))
	f.Add(uint8(3), ip6(ProtoUDP, cli6, srv6, udpHdr(53, 80, pl)))
	f.Add(uint8(4), ip6(ProtoICMPv6, cli6, srv6, icmpHdr(128, pl)))
	progs := make([][]bpf.Instruction, len(exprs))
	filters := make([]Filter, len(exprs))
	for i, e := range exprs {
		filters[i] = mustFilter(f, e)
		progs[i] = mustProgram(f, filters[i], ProgramOptions{})
	}
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		i := int(which) % len(exprs)
		m := meta{pkttype: unix.PACKET_HOST, proto: unix.ETH_P_IP}
		if len(b) > 0 && b[0]>>4 == 6 {
			m.proto = unix.ETH_P_IPV6
		}
		got := vmRun(t, progs[i], m, b) != 0
		p, err := ParseIP(b)
		if err != nil {
			return // the kernel may pass malformed packets; Read drops them
		}
		if want := filters[i].Match(p); got != want {
			t.Fatalf("%q: program accept=%v, Match=%v for %+v", exprs[i], got, want, p)
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

// FuzzCompileFilter: CompileFilter never panics; an accepted expression has a canonical form
// that compiles to the same terms, and its program assembles.
func FuzzCompileFilter(f *testing.F) {
	for _, s := range []string{"udp port 62201", "(udp dst port 1 or tcp port 2) || icmp or icmp6",
		"port 65535", "udp", "udp port 1 and tcp", "((", "tcp src port 0x10", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		flt, err := CompileFilter(expr)
		if err != nil {
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("error %v does not wrap ErrFilter", err)
			}
			return
		}
		again, err := CompileFilter(flt.String())
		if err != nil || fmt.Sprint(again.Terms) != fmt.Sprint(flt.Terms) {
			t.Fatalf("canonical form %q of %q: %v, %v", flt.String(), expr, again.Terms, err)
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
	})
}

package capture

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// expectPayload waits for one packet from src with exactly payload, sent from local.
func (r *reader) expectPayload(t *testing.T, what string, local *net.UDPAddr, dst netip.AddrPort, payload []byte) {
	t.Helper()
	p := r.expect(t, what)
	if p.Src != local.AddrPort() || p.Dst != dst || p.Proto != ProtoUDP || !bytes.Equal(p.Payload, payload) {
		t.Fatalf("%s: got %v -> %v proto %d, %d bytes %.20q; want %v -> %v, %d bytes", what, p.Src, p.Dst, p.Proto,
			len(p.Payload), p.Payload, local, dst, len(payload))
	}
}

// TestIntegrationSnifferFragments: knocks the sending kernel fragments (over the veth's MTU of
// 1500, and over an MTU of 576 for IPv4) are reassembled and delivered once, with exactly their
// payload, over IPv4 and IPv6.
func TestIntegrationSnifferFragments(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	r := startReading(t, s)
	big := []byte(strings.Repeat("0123456789abcdef", 250)) // 4000 bytes: 3 fragments at 1500
	for _, dst := range []netip.AddrPort{srvAP4, srvAP6} {
		local, _ := sendUDP(t, cli, dst.String(), big, 0)
		r.expectPayload(t, "fragmented knock to "+dst.String(), local, dst, big)
	}
	cli.Run(t, "ip", "link", "set", cli.Ifc, "mtu", "576")
	mid := []byte(strings.Repeat("K", 1000))
	local, _ := sendUDP(t, cli, srvAP4.String(), mid, 0)
	r.expectPayload(t, "knock over MTU 576", local, srvAP4, mid)
	// A small knock after them arrives alone: nothing was delivered twice.
	local, _ = sendUDP(t, cli, srvAP4.String(), []byte("last"), 0)
	r.expectPayload(t, "the last knock", local, srvAP4, []byte("last"))
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Reassembled != 3 || st.Fragments < 3+3+2 || st.FragmentsDiscarded != 0 {
		t.Fatalf("stats %+v: want 3 datagrams reassembled", st)
	}
}

// setIPv6Option sets a sticky IPv6 extension header (IPV6_HOPOPTS, IPV6_DSTOPTS) on c: 8 bytes,
// a PadN option filling them; the kernel fills in the Next Header.
func setIPv6Option(t *testing.T, c *net.UDPConn, opt int) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, opt, string([]byte{0, 0, 1, 4, 0, 0, 0, 0}))
	})
	if serr != nil {
		t.Fatalf("setsockopt %d: %v", opt, serr)
	}
}

// TestIntegrationSnifferIPv6ExtensionHeaders: knocks behind hop-by-hop and destination options
// headers, alone, together and fragmented, are seen once each with exactly their payload.
func TestIntegrationSnifferIPv6ExtensionHeaders(t *testing.T) {
	srv, cli := nstest.Pair(t)
	r := startReading(t, openSniffer(t, srv, SniffConfig{Interface: srv.Ifc}))
	big := []byte(strings.Repeat("extension headers ", 200))
	for _, tc := range []struct {
		name    string
		opts    []int
		payload []byte
	}{
		{"hop-by-hop", []int{unix.IPV6_HOPOPTS}, []byte("knock behind hop-by-hop")},
		{"destination options", []int{unix.IPV6_DSTOPTS}, []byte("knock behind destination options")},
		{"both", []int{unix.IPV6_HOPOPTS, unix.IPV6_DSTOPTS}, []byte("knock behind both")},
		{"both, fragmented", []int{unix.IPV6_HOPOPTS, unix.IPV6_DSTOPTS}, big},
	} {
		var c *net.UDPConn
		if err := cli.Do(t, func() (err error) {
			c, err = net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(srvAP6))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, o := range tc.opts {
			setIPv6Option(t, c, o)
		}
		if _, err := c.Write(tc.payload); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r.expectPayload(t, tc.name, c.LocalAddr().(*net.UDPAddr), srvAP6, tc.payload)
		c.Close()
	}
	local, _ := sendUDP(t, cli, srvAP6.String(), []byte("plain"), 0)
	r.expectPayload(t, "a plain knock after them", local, srvAP6, []byte("plain"))
}

// rawSend sends whole IP packets (header included) from ns through a raw socket.
func rawSend(t *testing.T, ns *nstest.NS, pkts ...[]byte) {
	t.Helper()
	if err := ns.Do(t, func() error {
		for _, p := range pkts {
			fam, sa := unix.AF_INET, unix.Sockaddr(&unix.SockaddrInet4{Addr: [4]byte(p[16:20])})
			if p[0]>>4 == 6 {
				fam, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte(p[24:40])}
			}
			fd, err := unix.Socket(fam, unix.SOCK_RAW, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			err = unix.Sendto(fd, p, 0, sa)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationSnifferOverlappingFragments: fragments crafted to overlap (the "teardrop"
// kind) discard their datagram, for IPv4 as for IPv6 (RFC 5722), including fragments sent
// after the overlap; a clean fragmented knock with another identification is reassembled.
func TestIntegrationSnifferOverlappingFragments(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	r := startReading(t, s)
	c4, s4 := netip.MustParseAddr(nstest.CliIP4), srvAP4.Addr()
	c6, s6 := netip.MustParseAddr(nstest.CliIP6), srvAP6.Addr()
	pl := []byte(strings.Repeat("overlap!", 40)) // 320 bytes
	bad4 := frag4(ip4(ProtoUDP, c4, s4, 0, udpHdr(40000, 62201, pl)), 128, 0x1111)
	alt4 := frag4(ip4(ProtoUDP, c4, s4, 0, udpHdr(40000, 62201, pl)), 64, 0x1111)
	bad6 := frag6(ip6(ProtoUDP, c6, s6, udpHdr(40000, 62201, pl)), 128, 0x2222)
	alt6 := frag6(ip6(ProtoUDP, c6, s6, udpHdr(40000, 62201, pl)), 64, 0x2222)
	// The first fragment, one overlapping it, then all the rest.
	rawSend(t, cli, bad4[0], alt4[1])
	rawSend(t, cli, bad4[1:]...)
	rawSend(t, cli, bad6[0], alt6[1])
	rawSend(t, cli, bad6[1:]...)
	good := []byte("clean fragmented knock, long enough for three fragments of sixty-four bytes each.....")
	for _, p := range [][]byte{ip4(ProtoUDP, c4, s4, 0, udpHdr(40001, 62201, good)), ip6(ProtoUDP, c6, s6, udpHdr(40001, 62201, good))} {
		if p[0]>>4 == 4 {
			rawSend(t, cli, frag4(p, 64, 0x3333)...)
		} else {
			rawSend(t, cli, frag6(p, 64, 0x4444)...)
		}
		got := r.expect(t, "the clean knock")
		if !bytes.Equal(got.Payload, good) || got.Src.Port() != 40001 {
			t.Fatalf("got %v %q: the overlapping datagram came out", got.Src, got.Payload)
		}
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Reassembled != 2 || st.FragmentsDiscarded < 6 {
		t.Fatalf("stats %+v: want 2 reassembled, the overlapping fragments discarded", st)
	}
}

// TestIntegrationMultiSniffer: PCAP_INTF with two interfaces sniffs both; one going down and
// up again is reattached while the other keeps delivering; Close ends Read.
func TestIntegrationMultiSniffer(t *testing.T) {
	srv, cli := nstest.Pair(t)
	other := nstest.New(t)
	a2, b2 := nstest.Connect(t, srv, other, []string{"10.98.0.1/24", "fd98::1/64"}, []string{"10.98.0.2/24", "fd98::2/64"})
	var m *MultiSniffer
	if err := srv.Do(t, func() (err error) {
		m, err = NewMultiSniffer(SniffConfig{Interface: srv.Ifc + ", " + a2}, ResilientOptions{Log: newLogRecorder().logger()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if m.Interface() != srv.Ifc+","+a2 || len(m.Interfaces()) != 2 || m.Filter().String() != DefaultFilter {
		t.Fatalf("interfaces %q, filter %q", m.Interfaces(), m.Filter())
	}
	r := startReading(t, m)
	local, _ := sendUDP(t, cli, srvAP4.String(), []byte("via first"), 0)
	r.expectPayload(t, "knock on the first interface", local, srvAP4, []byte("via first"))
	dst2 := netip.MustParseAddrPort("[fd98::1]:62201")
	local, _ = sendUDP(t, other, dst2.String(), []byte("via second"), 0)
	r.expectPayload(t, "knock on the second interface", local, dst2, []byte("via second"))

	srv.Run(t, "ip", "link", "set", a2, "down")
	local, _ = sendUDP(t, cli, srvAP4.String(), []byte("first, second down"), 0)
	r.expectPayload(t, "knock while the other is down", local, srvAP4, []byte("first, second down"))
	srv.Run(t, "ip", "link", "set", a2, "up")
	waitLinkUp(t, other, b2)
	waitLinkUp(t, srv, a2)
	p := knockToUntilSeen(t, other, "10.98.0.1:62201", r, "back")
	if p.Dst.Addr().String() != "10.98.0.1" {
		t.Fatalf("reattached knock %v", p.Dst)
	}
	if n, attached := m.Reattachments(); n != 1 || !attached {
		t.Fatalf("reattachments %d attached %v", n, attached)
	}
	st, err := m.Stats()
	if err != nil || st.Received < 4 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.errc:
		if !strings.Contains(err.Error(), "closed") {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not end Read")
	}
}

// TestIntegrationKernelAcceptsPrograms: the kernel's classic BPF checker accepts the programs
// of complex filters (scratch memory, indirect loads, trampolines), and one of them delivers.
func TestIntegrationKernelAcceptsPrograms(t *testing.T) {
	ns := nstest.New(t)
	var ports []string
	for i := range 100 {
		ports = append(ports, fmt.Sprintf("port %d", 2000+i))
	}
	for _, expr := range append(append([]string{strings.Join(ports, " or ")}, filterCorpus...), DefaultFilter) {
		for _, anyDir := range []bool{false, true} {
			if err := ns.Do(t, func() error {
				s, err := NewSniffer(SniffConfig{Interface: "lo", Filter: expr, AnyDirection: anyDir})
				if err == nil {
					s.Close()
				}
				return err
			}); err != nil {
				t.Errorf("filter %q (any direction %v): %v", expr, anyDir, err)
			}
		}
	}
	r := startReading(t, openSniffer(t, ns, SniffConfig{Interface: "lo",
		Filter: "udp[8:2] = 0x6b6e and (src net 127.0.0.0/8 or ip6[6] = 17) and len > 30 and not port 53"}))
	sendUDP(t, ns, "127.0.0.1:53", []byte("kn to 53"), 0)
	sendUDP(t, ns, "127.0.0.1:9", []byte("no"), 0)
	sendUDP(t, ns, "127.0.0.1:9", []byte("kn"), 0) // len 30: too short
	sendUDP(t, ns, "[::1]:9", []byte("knock six"), 0)
	sendUDP(t, ns, "127.0.0.1:9", []byte("knock four"), 0)
	for _, want := range []string{"knock six", "knock four"} {
		if p := r.expect(t, want); string(p.Payload) != want {
			t.Fatalf("got %q, want %q", p.Payload, want)
		}
	}
}

package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

var (
	srvAP4 = netip.MustParseAddrPort(nstest.SrvIP4 + ":62201")
	srvAP6 = netip.MustParseAddrPort("[" + nstest.SrvIP6 + "]:62201")
)

// TestIntegrationSnifferClosedPort: the sniffer on the server's veth sees SPA datagrams over
// IPv4 and IPv6 while no socket listens and an nftables rule drops udp/62201, the sender gets
// no ICMP port unreachable, and decoys to udp/53 and another port are not returned.
func TestIntegrationSnifferClosedPort(t *testing.T) {
	nstest.Require(t, "nft")
	srv, cli := nstest.Pair(t)
	srv.Run(t, "nft", "add table inet captest")
	srv.Run(t, "nft", "add chain inet captest in { type filter hook input priority 0 ; policy accept ; }")
	srv.Run(t, "nft", "add rule inet captest in udp dport 62201 counter drop")

	r := startReading(t, openSniffer(t, srv, SniffConfig{Interface: srv.Ifc}))

	// Control: a closed port that the firewall does not drop answers with port unreachable,
	// so the checks below can tell "dropped" from "refused".
	if _, err := sendUDP(t, cli, nstest.SrvIP4+":62203", []byte("control"), time.Second); !isRefused(err) {
		t.Fatalf("control send to an undropped closed port: read error %v, want ECONNREFUSED", err)
	}
	sendUDP(t, cli, nstest.SrvIP4+":53", []byte("decoy dns"), 0)
	sendUDP(t, cli, "["+nstest.SrvIP6+"]:53", []byte("decoy dns6"), 0)

	for _, dst := range []netip.AddrPort{srvAP4, srvAP6} {
		payload := []byte("spa to " + dst.String())
		local, err := sendUDP(t, cli, dst.String(), payload, 500*time.Millisecond)
		if !isTimeout(err) {
			t.Fatalf("send to %v: read error %v, want a timeout (no ICMP: the port must look filtered)", dst, err)
		}
		p := r.expect(t, "SPA to "+dst.String())
		want := Packet{Src: local.AddrPort(), Dst: dst, Proto: ProtoUDP, Payload: payload}
		if p.Src != want.Src || p.Dst != want.Dst || p.Proto != want.Proto || !bytes.Equal(p.Payload, want.Payload) {
			t.Fatalf("got %v -> %v proto %d %q, want %v -> %v %q", p.Src, p.Dst, p.Proto, p.Payload, want.Src, want.Dst, want.Payload)
		}
	}
	r.expectNone(t, 300*time.Millisecond)
	if out := srv.Run(t, "nft", "list chain inet captest in"); !strings.Contains(out, "counter packets 2 ") {
		t.Fatalf("the firewall did not drop both SPA packets:\n%s", out)
	}
}

// TestIntegrationSnifferLoopback: on lo every packet is seen once, in every direction mode
// and on "any".
func TestIntegrationSnifferLoopback(t *testing.T) {
	for _, cfg := range []SniffConfig{
		{Interface: "lo"},
		{Interface: "lo", AnyDirection: true},
		{Interface: AnyInterface},
		{Interface: AnyInterface, AnyDirection: true},
	} {
		t.Run(fmt.Sprintf("%s/anydir=%v", cfg.Interface, cfg.AnyDirection), func(t *testing.T) {
			ns := nstest.New(t)
			r := startReading(t, openSniffer(t, ns, cfg))
			for _, dst := range []string{"127.0.0.1:62201", "[::1]:62201"} {
				local, _ := sendUDP(t, ns, dst, []byte("once "+dst), 0)
				p := r.expect(t, dst)
				if p.Src != local.AddrPort() || p.Dst.String() != dst || string(p.Payload) != "once "+dst {
					t.Fatalf("got %v -> %v %q", p.Src, p.Dst, p.Payload)
				}
				r.expectNone(t, 200*time.Millisecond)
			}
		})
	}
}

// TestIntegrationSnifferDirection: packets the server sends are ignored unless AnyDirection;
// incoming packets are seen once, also on "any".
func TestIntegrationSnifferDirection(t *testing.T) {
	srv, cli := nstest.Pair(t)
	in := startReading(t, openSniffer(t, srv, SniffConfig{Interface: srv.Ifc}))
	both := startReading(t, openSniffer(t, srv, SniffConfig{Interface: srv.Ifc, AnyDirection: true}))
	all := startReading(t, openSniffer(t, srv, SniffConfig{Interface: AnyInterface}))
	sendUDP(t, srv, nstest.CliIP4+":62201", []byte("outgoing"), 0)
	if p := both.expect(t, "outgoing packet"); string(p.Payload) != "outgoing" || p.Dst.Addr().String() != nstest.CliIP4 {
		t.Fatalf("got %v -> %v %q", p.Src, p.Dst, p.Payload)
	}
	in.expectNone(t, 200*time.Millisecond)
	all.expectNone(t, 50*time.Millisecond)
	sendUDP(t, cli, srvAP4.String(), []byte("incoming"), 0)
	for name, r := range map[string]*reader{"default": in, "any direction": both, "any interface": all} {
		if p := r.expect(t, "incoming packet"); string(p.Payload) != "incoming" {
			t.Fatalf("%s: got %q", name, p.Payload)
		}
		r.expectNone(t, 100*time.Millisecond)
	}
}

// TestIntegrationSnifferTCPAndICMP: the tcp and icmp filter forms over IPv4 and IPv6.
func TestIntegrationSnifferTCPAndICMP(t *testing.T) {
	srv, cli := nstest.Pair(t)
	r := startReading(t, openSniffer(t, srv, SniffConfig{Interface: srv.Ifc, Filter: "tcp dst port 62201 or icmp or icmp6"}))

	drainTCP(t, srv, "tcp", ":62201")
	// Neighbour discovery is ICMPv6 too; the test ignores it.
	isND := func(p Packet) bool {
		return p.Proto == ProtoICMPv6 && !strings.HasPrefix(string(p.Payload), "icmp spa")
	}
	// waitPayload skips the handshake's empty segments.
	waitPayload := func(want string, proto uint8) Packet {
		t.Helper()
		for {
			p := r.expect(t, want)
			if isND(p) {
				continue
			}
			if len(p.Payload) > 0 {
				if string(p.Payload) != want || p.Proto != proto {
					t.Fatalf("got proto %d %q, want %d %q", p.Proto, p.Payload, proto, want)
				}
				return p
			}
			if p.Proto != ProtoTCP || p.Dst.Port() != 62201 {
				t.Fatalf("unexpected empty packet %v -> %v proto %d", p.Src, p.Dst, p.Proto)
			}
		}
	}
	for _, dst := range []netip.AddrPort{srvAP4, srvAP6} {
		want := "tcp spa to " + dst.String()
		if err := cli.Do(t, func() error {
			c, err := net.DialTimeout("tcp", dst.String(), 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(want))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if p := waitPayload(want, ProtoTCP); p.Dst != dst {
			t.Fatalf("dst %v, want %v", p.Dst, dst)
		}
	}
	// UDP is not in this filter.
	sendUDP(t, cli, srvAP4.String(), []byte("udp not wanted"), 0)

	// ICMP echo reply (type 0, what fwknop -P icmp sends) and ICMPv6 echo reply.
	for _, c := range []struct {
		network, dst string
		typ          icmp.Type
		proto        uint8
	}{
		{"ip4:icmp", nstest.SrvIP4, ipv4.ICMPTypeEchoReply, ProtoICMP},
		{"ip6:ipv6-icmp", nstest.SrvIP6, ipv6.ICMPTypeEchoReply, ProtoICMPv6},
	} {
		want := "icmp spa to " + c.dst
		if err := cli.Do(t, func() error {
			pc, err := net.ListenPacket(c.network, "")
			if err != nil {
				return err
			}
			defer pc.Close()
			msg, err := (&icmp.Message{Type: c.typ, Body: &icmp.Echo{Data: []byte(want)}}).Marshal(nil)
			if err != nil {
				return err
			}
			_, err = pc.WriteTo(msg, &net.IPAddr{IP: net.ParseIP(c.dst)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// The echo header (id, seq) is part of the 8-byte ICMP header, so the payload is Data.
		if p := waitPayload(want, c.proto); p.Dst.Addr().String() != c.dst {
			t.Fatalf("dst %v", p.Dst)
		}
	}
	for {
		p, ok := r.next(t, 200*time.Millisecond)
		if !ok {
			break
		}
		// Neighbour discovery, and the connections' late empty segments (FIN, ACK) are fine.
		if !isND(p) && !(p.Proto == ProtoTCP && p.Dst.Port() == 62201 && len(p.Payload) == 0) {
			t.Fatalf("unexpected packet %v -> %v proto %d %q", p.Src, p.Dst, p.Proto, p.Payload)
		}
	}
}

// TestIntegrationSnifferRejects: packets and fragments cut by the snap length are rejected by
// Read and never reach the caller (a datagram whose fragments were cut is never completed); a
// packet of exactly the snap length fits its ring frame whole.
func TestIntegrationSnifferRejects(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc, SnapLen: 400, ReadBuffer: 1 << 20})
	r := startReading(t, s)

	sendUDP(t, cli, srvAP4.String(), bytes.Repeat([]byte("F"), 3000), 0)   // fragmented over MTU 1500
	sendUDP(t, cli, srvAP4.String(), bytes.Repeat([]byte("L"), 500), 0)    // over the snap length
	sendUDP(t, cli, srvAP4.String(), bytes.Repeat([]byte("S"), 400-28), 0) // exactly the snap length
	sendUDP(t, cli, srvAP4.String(), []byte("fits"), 0)
	if p := r.expect(t, "the packet of the snap length"); !bytes.Equal(p.Payload, bytes.Repeat([]byte("S"), 400-28)) {
		t.Fatalf("got %d bytes %.10q", len(p.Payload), p.Payload)
	}
	if p := r.expect(t, "the small packet"); string(p.Payload) != "fits" {
		t.Fatalf("got %d bytes %.10q", len(p.Payload), p.Payload)
	}
	r.expectNone(t, 200*time.Millisecond)
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// The kernel accepted the three fragments of the first datagram, the long packet and the
	// two others; Read rejected the long packet and the two fragments of 1500 bytes, and holds
	// the last fragment.
	if st.Received != 6 || st.Rejected != 3 || st.Fragments != 1 || st.Reassembled != 0 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 6 received, 3 rejected, 1 fragment held", st)
	}
}

// TestIntegrationSnifferCloseAndDown: Close unblocks Read with net.ErrClosed; an interface going
// down ends Read with ErrInterfaceDown.
func TestIntegrationSnifferCloseAndDown(t *testing.T) {
	srv, _ := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	errc := make(chan error, 1)
	go func() { _, err := s.Read(); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s = openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	go func() { _, err := s.Read(); errc <- err }()
	time.Sleep(50 * time.Millisecond)
	srv.Run(t, "ip", "link", "set", srv.Ifc, "down")
	select {
	case err := <-errc:
		if !errors.Is(err, ErrInterfaceDown) || !errors.Is(err, unix.ENETDOWN) {
			t.Fatalf("Read after link down: %v, want ErrInterfaceDown and ENETDOWN", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("link down did not end Read")
	}
}

func TestIntegrationSnifferConfigErrors(t *testing.T) {
	ns := nstest.New(t)
	for _, cfg := range []SniffConfig{
		{Interface: "nosuch0"},
		{Interface: "lo", Filter: "udp port 1 and vlan"},
		{Interface: "lo", SnapLen: 10},
		{Interface: AnyInterface, Promiscuous: true},
	} {
		if err := ns.Do(t, func() error {
			s, err := NewSniffer(cfg)
			if err == nil {
				s.Close()
			}
			return err
		}); err == nil {
			t.Errorf("NewSniffer(%+v) succeeded", cfg)
		}
	}
	// Promiscuous on a named interface works.
	r := startReading(t, openSniffer(t, ns, SniffConfig{Interface: "lo", Promiscuous: true}))
	sendUDP(t, ns, "127.0.0.1:62201", []byte("p"), 0)
	r.expect(t, "packet in promiscuous mode")
}

// TestIntegrationSnifferReadAllocs: Read allocates only the payload it returns.
func TestIntegrationSnifferReadAllocs(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	// Unconnected, so the port unreachable answers do not turn into write errors.
	var c *net.UDPConn
	if err := cli.Do(t, func() (err error) { c, err = net.ListenUDP("udp4", nil); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := spaPayload()
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.WriteToUDPAddrPort(msg, srvAP4); err != nil {
			t.Fatal(err)
		}
		if p, err := s.Read(); err != nil || len(p.Payload) != len(msg) {
			t.Fatalf("Read: %d bytes, %v", len(p.Payload), err)
		}
	})
	if allocs > 1 {
		t.Fatalf("%v allocations per packet, want at most 1 (the payload)", allocs)
	}
}

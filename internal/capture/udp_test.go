package capture

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// wrapped hides *net.UDPConn so FromPacketConn takes its generic path.
type wrapped struct{ net.PacketConn }

func TestUDPServerLoopback(t *testing.T) {
	for name, open := range map[string]func() (*UDPServer, error){
		"NewUDPServer": func() (*UDPServer, error) { return NewUDPServer("127.0.0.1:0") },
		"generic PacketConn": func() (*UDPServer, error) {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			return FromPacketConn(wrapped{pc}), nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := open()
			if err != nil {
				t.Fatal(err)
			}
			r := startReading(t, s)
			c, err := net.Dial("udp", s.LocalAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			big := make([]byte, 9000)
			for _, msg := range [][]byte{[]byte("one"), big, {}} {
				if _, err := c.Write(msg); err != nil {
					t.Fatal(err)
				}
				p := r.expect(t, "a datagram")
				port := uint16(s.LocalAddr().(*net.UDPAddr).Port)
				dst := netip.MustParseAddr("127.0.0.1") // from IP_PKTINFO
				if name == "generic PacketConn" {
					dst = netip.IPv4Unspecified() // no control messages: fwknopd's 0.0.0.0
				}
				want := Packet{Src: c.LocalAddr().(*net.UDPAddr).AddrPort(), Dst: netip.AddrPortFrom(dst, port), Proto: ProtoUDP}
				if p.Src != want.Src || p.Dst != want.Dst || p.Proto != ProtoUDP || len(p.Payload) != len(msg) {
					t.Fatalf("got %v -> %v proto %d %d bytes, want %v -> %v %d bytes", p.Src, p.Dst, p.Proto, len(p.Payload), want.Src, want.Dst, len(msg))
				}
			}
			s.Close()
			select {
			case <-r.ch:
			case <-time.After(2 * time.Second):
				t.Fatal("Close did not end Read")
			}
			if err := <-r.errc; !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
			}
		})
	}
}

func TestUDPServerReadAllocs(t *testing.T) {
	s, c := loopbackUDP(t)
	msg := spaPayload()
	allocs := testing.AllocsPerRun(50, func() {
		c.Write(msg)
		if _, err := s.Read(); err != nil {
			t.Fatal(err)
		}
	})
	// The payload copy, and the sender address that x/net's recvmmsg path builds per message
	// (a *net.UDPAddr and its IP): one system call per batch is worth more than those. The race
	// detector makes sync.Pool drop some of what it is given, hence more there.
	want := 3.0
	if raceEnabled {
		want = 5
	}
	if allocs > want {
		t.Fatalf("%v allocations per datagram, want at most %v", allocs, want)
	}
}

// TestIntegrationUDPServer: UDP-server mode on the dual-stack wildcard over IPv4 and IPv6,
// with IPv4 senders unmapped and each datagram's own destination address (IP_PKTINFO on the
// dual-stack socket for IPv4, IPV6_PKTINFO for IPv6).
func TestIntegrationUDPServer(t *testing.T) {
	srv, cli := nstest.Pair(t)
	var s *UDPServer
	if err := srv.Do(t, func() (err error) { s, err = NewUDPServer(DefaultUDPAddr); return err }); err != nil {
		t.Fatal(err)
	}
	if la := s.LocalAddr().(*net.UDPAddr); !la.IP.IsUnspecified() || la.IP.To4() != nil {
		t.Fatalf("listening on %v, want the dual-stack [::]", la)
	}
	r := startReading(t, s)
	for _, c := range []struct{ dst, unspec string }{
		{srvAP4.String(), srvAP4.String()},
		{srvAP6.String(), srvAP6.String()},
	} {
		local, _ := sendUDP(t, cli, c.dst, []byte("spa "+c.dst), 0)
		p := r.expect(t, c.dst)
		if p.Src != local.AddrPort() || p.Dst.String() != c.unspec || string(p.Payload) != "spa "+c.dst {
			t.Fatalf("got %v -> %v %q, want %v -> %s", p.Src, p.Dst, p.Payload, local.AddrPort(), c.unspec)
		}
		if p.Src.Addr().Is4In6() {
			t.Fatalf("source %v not unmapped", p.Src)
		}
	}
}

// TestUDPServerBurst sends datagrams before reading, so that one recvmmsg returns several, and
// checks that each comes out once, in order, with its own payload.
func TestUDPServerBurst(t *testing.T) {
	s, c := loopbackUDP(t)
	const n = udpBatch + 10
	for i := range n {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p, err := s.Read()
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Payload) != 1 || p.Payload[0] != byte(i) {
			t.Fatalf("datagram %d: payload %v", i, p.Payload)
		}
	}
}

// loopbackUDP returns a UDPServer on 127.0.0.1 and a client socket connected to it, both
// closed at cleanup.
func loopbackUDP(t *testing.T) (*UDPServer, net.Conn) {
	t.Helper()
	s, err := NewUDPServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := net.Dial("udp", s.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, c
}

// TestUDPServerStats: datagrams the kernel drops because the receive buffer is full are
// counted (SO_MEMINFO), and Received is what was read plus what was dropped.
func TestUDPServerStats(t *testing.T) {
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if err := uc.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	s := FromPacketConn(uc)
	defer s.Close()
	if st, err := s.Stats(); err != nil || st != (SourceStats{}) {
		t.Fatalf("stats at start %+v, %v; want zero", st, err)
	}
	c, err := net.Dial("udp", uc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 200
	for range sent {
		if _, err := c.Write(spaPayload()); err != nil {
			t.Fatal(err)
		}
	}
	// Read until every datagram is either read or counted as dropped (delivery may end in a
	// softirq after Write returned, so look again whenever nothing is queued).
	read := 0
	var st SourceStats
	for deadline := time.Now().Add(10 * time.Second); ; {
		if st, err = s.Stats(); err != nil {
			t.Fatal(err)
		}
		if st.Received >= sent || time.Now().After(deadline) {
			break
		}
		uc.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := s.Read(); err == nil {
			read++
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	if st.Received != sent || st.Dropped == 0 || st.Dropped != uint64(sent-read) || st.Rejected != 0 {
		t.Fatalf("stats %+v after %d sent and %d read; want %d received, the rest dropped", st, sent, read, sent)
	}
	// A PacketConn without a file descriptor has no drop counter.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := FromPacketConn(wrapped{pc})
	defer w.Close()
	if st, err := w.Stats(); err != nil || st != (SourceStats{}) {
		t.Fatalf("stats of a wrapped PacketConn %+v, %v; want zero", st, err)
	}
}

func TestPktinfoDst(t *testing.T) {
	v4 := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&v4[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	copy(v4[unix.CmsgLen(0)+8:], []byte{192, 0, 2, 9})
	v6 := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&v6[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a6 := netip.MustParseAddr("2001:db8::9").As16()
	copy(v6[unix.CmsgLen(0):], a6[:])
	mapped := bytes.Clone(v6)
	m := netip.MustParseAddr("::ffff:192.0.2.10").As16()
	copy(mapped[unix.CmsgLen(0):], m[:])
	other := make([]byte, unix.CmsgSpace(4))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&other[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SO_TIMESTAMP
	h.SetLen(unix.CmsgLen(4))
	for _, c := range []struct {
		name string
		oob  []byte
		want string
	}{
		{"ipv4", v4, "192.0.2.9"},
		{"ipv6", v6, "2001:db8::9"},
		{"mapped", mapped, "192.0.2.10"},
		{"after another message", append(bytes.Clone(other), v4...), "192.0.2.9"},
		{"other only", other, "invalid IP"},
		{"truncated", v4[:len(v4)-8], "invalid IP"},
		{"empty", nil, "invalid IP"},
	} {
		if got := pktinfoDst(c.oob); got.String() != c.want {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
}

func FuzzPktinfoDst(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, oob []byte) {
		if a := pktinfoDst(oob); a.IsValid() && a.Is4In6() {
			t.Fatalf("mapped address %v returned", a)
		}
	})
}

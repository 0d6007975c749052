package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestParseIP(t *testing.T) {
	pl := spaPayload()
	padded := append(ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, []byte("hi"))), 0, 0, 0, 0)
	frag := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	binary.BigEndian.PutUint16(frag[6:], 0x2000) // MF
	later := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	binary.BigEndian.PutUint16(later[6:], 0x0010) // offset 16*8
	badULen := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	binary.BigEndian.PutUint16(badULen[24:], 4)
	longULen := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	binary.BigEndian.PutUint16(longULen[24:], 1000)
	shortULen := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	binary.BigEndian.PutUint16(shortULen[24:], 8+10)
	badIHL := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(1, 2, nil))
	badIHL[0] = 0x44
	badTotal := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(1, 2, nil))
	binary.BigEndian.PutUint16(badTotal[2:], 10)
	badDoff := ip4(ProtoTCP, cli4, srv4, 0, tcpHdr(1, 2, 0, pl))
	badDoff[20+12] = 0x40
	jumbo := ip6(ProtoUDP, cli6, srv6, udpHdr(1, 2, pl))
	binary.BigEndian.PutUint16(jumbo[4:], 0)

	tests := []struct {
		name    string
		in      []byte
		want    Packet
		wantErr error
	}{
		{"udp4", ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)),
			Packet{netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 62201), ProtoUDP, pl, time.Time{}}, nil},
		{"udp4 options", ip4(ProtoUDP, cli4, srv4, 3, udpHdr(40000, 62201, pl)),
			Packet{netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 62201), ProtoUDP, pl, time.Time{}}, nil},
		{"udp4 link padding", padded,
			Packet{netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 62201), ProtoUDP, []byte("hi"), time.Time{}}, nil},
		{"udp4 short udp length", shortULen,
			Packet{netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 62201), ProtoUDP, pl[:10], time.Time{}}, nil},
		{"udp4 empty", ip4(ProtoUDP, cli4, srv4, 0, udpHdr(1, 2, nil)),
			Packet{netip.AddrPortFrom(cli4, 1), netip.AddrPortFrom(srv4, 2), ProtoUDP, []byte{}, time.Time{}}, nil},
		{"tcp4", ip4(ProtoTCP, cli4, srv4, 0, tcpHdr(40000, 62201, 3, pl)),
			Packet{netip.AddrPortFrom(cli4, 40000), netip.AddrPortFrom(srv4, 62201), ProtoTCP, pl, time.Time{}}, nil},
		{"icmp4", ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(0, pl)),
			Packet{netip.AddrPortFrom(cli4, 0), netip.AddrPortFrom(srv4, 0), ProtoICMP, pl, time.Time{}}, nil},
		{"udp6", ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)),
			Packet{netip.AddrPortFrom(cli6, 40000), netip.AddrPortFrom(srv6, 62201), ProtoUDP, pl, time.Time{}}, nil},
		{"tcp6", ip6(ProtoTCP, cli6, srv6, tcpHdr(40000, 62201, 0, pl)),
			Packet{netip.AddrPortFrom(cli6, 40000), netip.AddrPortFrom(srv6, 62201), ProtoTCP, pl, time.Time{}}, nil},
		{"icmp6", ip6(ProtoICMPv6, cli6, srv6, icmpHdr(129, pl)),
			Packet{netip.AddrPortFrom(cli6, 0), netip.AddrPortFrom(srv6, 0), ProtoICMPv6, pl, time.Time{}}, nil},

		{"empty", nil, Packet{}, ErrTruncated},
		{"version 5", []byte{0x50, 1, 2, 3}, Packet{}, ErrMalformed},
		{"short ipv4", ip4(ProtoUDP, cli4, srv4, 0, nil)[:19], Packet{}, ErrTruncated},
		{"short ipv6", ip6(ProtoUDP, cli6, srv6, nil)[:39], Packet{}, ErrTruncated},
		{"ihl < 5", badIHL, Packet{}, ErrMalformed},
		{"total < ihl", badTotal, Packet{}, ErrMalformed},
		{"cut by snaplen", ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))[:100], Packet{}, ErrTruncated},
		{"cut ipv6", ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl))[:100], Packet{}, ErrTruncated},
		{"first fragment", frag, Packet{}, ErrFragment},
		{"later fragment", later, Packet{}, ErrFragment},
		{"udp length < 8", badULen, Packet{}, ErrMalformed},
		{"udp length > ip", longULen, Packet{}, ErrMalformed},
		{"udp header cut", ip4(ProtoUDP, cli4, srv4, 0, []byte{1, 2, 3}), Packet{}, ErrTruncated},
		{"tcp header cut", ip4(ProtoTCP, cli4, srv4, 0, make([]byte, 19)), Packet{}, ErrTruncated},
		{"tcp data offset", badDoff, Packet{}, ErrMalformed},
		{"icmp header cut", ip4(ProtoICMP, cli4, srv4, 0, make([]byte, 7)), Packet{}, ErrTruncated},
		{"sctp", ip4(132, cli4, srv4, 0, make([]byte, 20)), Packet{}, ErrUnsupported},
		{"icmpv6 in ipv4", ip4(ProtoICMPv6, cli4, srv4, 0, icmpHdr(0, pl)), Packet{}, ErrUnsupported},
		{"icmp in ipv6", ip6(ProtoICMP, cli6, srv6, icmpHdr(0, pl)), Packet{}, ErrUnsupported},
		{"ipv6 hop-by-hop", ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop}, udpHdr(40000, 62201, pl)),
			Packet{netip.AddrPortFrom(cli6, 40000), netip.AddrPortFrom(srv6, 62201), ProtoUDP, pl, time.Time{}}, nil},
		{"ipv6 hop dst rt ah dst", ip6ext(ProtoTCP, cli6, srv6, []uint8{0, 60, 43, 51, 60}, tcpHdr(40000, 62201, 0, pl)),
			Packet{netip.AddrPortFrom(cli6, 40000), netip.AddrPortFrom(srv6, 62201), ProtoTCP, pl, time.Time{}}, nil},
		{"ipv6 8 extension headers", ip6ext(ProtoICMPv6, cli6, srv6, []uint8{0, 60, 60, 60, 60, 60, 60, 60}, icmpHdr(128, pl)),
			Packet{netip.AddrPortFrom(cli6, 0), netip.AddrPortFrom(srv6, 0), ProtoICMPv6, pl, time.Time{}}, nil},
		{"ipv6 9 extension headers", ip6ext(ProtoUDP, cli6, srv6, []uint8{0, 60, 60, 60, 60, 60, 60, 60, 60}, udpHdr(1, 2, pl)),
			Packet{}, ErrUnsupported},
		{"ipv6 extension header cut", ip6(0, cli6, srv6, make([]byte, 40)), Packet{}, ErrTruncated},
		{"ipv6 extension header past payload", ip6ext(ProtoUDP, cli6, srv6, []uint8{extDestOpts}, nil), Packet{}, ErrTruncated},
		{"ipv6 esp", ip6ext(50, cli6, srv6, []uint8{extHopByHop}, make([]byte, 40)), Packet{}, ErrUnsupported},
		{"ipv6 fragment header", ip6(44, cli6, srv6, make([]byte, 40)), Packet{}, ErrFragment},
		{"ipv6 fragment header cut", ip6(44, cli6, srv6, make([]byte, 7)), Packet{}, ErrTruncated},
		{"jumbogram", jumbo, Packet{}, ErrUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseIP(tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if got.Src != tc.want.Src || got.Dst != tc.want.Dst || got.Proto != tc.want.Proto ||
				!bytes.Equal(got.Payload, tc.want.Payload) {
				t.Fatalf("got %v %v %d %q\nwant %v %v %d %q", got.Src, got.Dst, got.Proto, got.Payload,
					tc.want.Src, tc.want.Dst, tc.want.Proto, tc.want.Payload)
			}
		})
	}
}

func TestParseIPDoesNotAllocate(t *testing.T) {
	good := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	bad := good[:30]
	if n := testing.AllocsPerRun(100, func() {
		ParseIP(good)
		ParseIP(bad)
	}); n != 0 {
		t.Fatalf("ParseIP allocates %v times per call", n)
	}
}

// FuzzParseIP checks that ParseIP never panics and that what it returns is consistent: the
// payload lies inside the input and the address family matches the protocol.
func FuzzParseIP(f *testing.F) {
	pl := spaPayload()
	f.Add(ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl)))
	f.Add(ip4(ProtoTCP, cli4, srv4, 2, tcpHdr(40000, 62201, 1, pl)))
	f.Add(ip4(ProtoICMP, cli4, srv4, 0, icmpHdr(0, pl)))
	f.Add(ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)))
	f.Add(ip6(ProtoTCP, cli6, srv6, tcpHdr(40000, 62201, 0, pl)))
	f.Add(ip6(ProtoICMPv6, cli6, srv6, icmpHdr(128, pl)))
	f.Add(ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop, extRouting, extAH, extDestOpts}, udpHdr(40000, 62201, pl[:16])))
	f.Add(frag6(ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl)), 64, 1)[0])
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseIP(b)
		if err != nil {
			if p.Payload != nil || p.Proto != 0 {
				t.Fatalf("error %v with a non-zero packet", err)
			}
			return
		}
		if len(p.Payload) > len(b) {
			t.Fatalf("payload %d bytes from a %d-byte packet", len(p.Payload), len(b))
		}
		if p.Src.Addr().Is4() != p.Dst.Addr().Is4() || p.Src.Addr().Is4() != (b[0]>>4 == 4) {
			t.Fatalf("address family mismatch: %v %v", p.Src, p.Dst)
		}
		if (p.Proto == ProtoICMP) == p.Src.Addr().Is6() && (p.Proto == ProtoICMP || p.Proto == ProtoICMPv6) {
			t.Fatalf("proto %d with %v", p.Proto, p.Src)
		}
	})
}

func BenchmarkParseIP(b *testing.B) {
	pkts := map[string][]byte{
		"udp4":    ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload())),
		"udp6":    ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, spaPayload())),
		"garbage": ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))[:60],
	}
	for name, pkt := range pkts {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pkt)))
			for b.Loop() {
				ParseIP(pkt)
			}
		})
	}
}

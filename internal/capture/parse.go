package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers carried in Packet.Proto.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
)

// Errors returned by ParseIP. They are returned unwrapped (no allocation on the hot path, where
// garbage is rejected), so compare with errors.Is or ==.
var (
	// ErrTruncated: the buffer is shorter than the headers or than the length the IP header
	// announces (for instance cut by the snap length).
	ErrTruncated = errors.New("capture: packet truncated")
	// ErrMalformed: a header field is inconsistent (bad version, header length, UDP length).
	ErrMalformed = errors.New("capture: malformed packet")
	// ErrFragment: an IPv4 fragment (first or later); fragments are not reassembled.
	ErrFragment = errors.New("capture: IPv4 fragment")
	// ErrUnsupported: an L4 protocol other than UDP, TCP, ICMP (IPv4) or ICMPv6 (IPv6), which
	// includes IPv6 extension headers and jumbograms.
	ErrUnsupported = errors.New("capture: unsupported protocol")
)

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	udpHeader     = 8
	tcpMinHeader  = 20
	icmpHeader    = 8
)

// ParseIP parses an IPv4 or IPv6 packet starting at the IP header (as a cooked AF_PACKET socket
// delivers it) and returns its addresses, protocol and L4 payload: after the UDP header, after
// the TCP header (options included), or after the 8-byte ICMP/ICMPv6 header, as fwknopd does.
// Bytes past the IP total length (link-layer padding) are ignored. ICMP packets have port 0.
//
// The returned Payload aliases b; copy it before reusing b. ParseIP never panics and does not
// allocate.
func ParseIP(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		return parseIPv4(b)
	case 6:
		return parseIPv6(b)
	default:
		return Packet{}, ErrMalformed
	}
}

func parseIPv4(b []byte) (Packet, error) {
	if len(b) < ipv4MinHeader {
		return Packet{}, ErrTruncated
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < ipv4MinHeader || total < ihl {
		return Packet{}, ErrMalformed
	}
	if total > len(b) {
		return Packet{}, ErrTruncated
	}
	// More-fragments flag or a non-zero offset: not a whole datagram.
	if binary.BigEndian.Uint16(b[6:8])&0x3fff != 0 {
		return Packet{}, ErrFragment
	}
	src := netip.AddrFrom4([4]byte(b[12:16]))
	dst := netip.AddrFrom4([4]byte(b[16:20]))
	proto := b[9]
	if proto == ProtoICMPv6 {
		return Packet{}, ErrUnsupported
	}
	return parseL4(proto, src, dst, b[ihl:total])
}

func parseIPv6(b []byte) (Packet, error) {
	if len(b) < ipv6Header {
		return Packet{}, ErrTruncated
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if plen == 0 {
		// A jumbogram (or a bogus zero length): needs a hop-by-hop header, unsupported.
		return Packet{}, ErrUnsupported
	}
	if ipv6Header+plen > len(b) {
		return Packet{}, ErrTruncated
	}
	src := netip.AddrFrom16([16]byte(b[8:24]))
	dst := netip.AddrFrom16([16]byte(b[24:40]))
	proto := b[6]
	if proto == ProtoICMP {
		return Packet{}, ErrUnsupported
	}
	return parseL4(proto, src, dst, b[ipv6Header:ipv6Header+plen])
}

// parseL4 parses the transport header in l4 (exactly the IP payload).
func parseL4(proto uint8, src, dst netip.Addr, l4 []byte) (Packet, error) {
	p := Packet{Proto: proto}
	var sport, dport uint16
	switch proto {
	case ProtoUDP:
		if len(l4) < udpHeader {
			return Packet{}, ErrTruncated
		}
		ulen := int(binary.BigEndian.Uint16(l4[4:6]))
		if ulen < udpHeader || ulen > len(l4) {
			return Packet{}, ErrMalformed
		}
		sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		p.Payload = l4[udpHeader:ulen]
	case ProtoTCP:
		if len(l4) < tcpMinHeader {
			return Packet{}, ErrTruncated
		}
		off := int(l4[12]>>4) * 4
		if off < tcpMinHeader || off > len(l4) {
			return Packet{}, ErrMalformed
		}
		sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		p.Payload = l4[off:]
	case ProtoICMP, ProtoICMPv6:
		if len(l4) < icmpHeader {
			return Packet{}, ErrTruncated
		}
		p.Payload = l4[icmpHeader:]
	default:
		return Packet{}, ErrUnsupported
	}
	p.Src = netip.AddrPortFrom(src, sport)
	p.Dst = netip.AddrPortFrom(dst, dport)
	return p, nil
}

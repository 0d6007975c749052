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

// IPv6 extension headers (RFC 8200 section 4, RFC 4302) that ParseIP and the kernel program
// walk past to reach the upper-layer header. ESP (50) and No Next Header (59) end the walk.
const (
	extHopByHop uint8 = 0
	extRouting  uint8 = 43
	extFragment uint8 = 44
	extAH       uint8 = 51
	extDestOpts uint8 = 60
)

// MaxExtHeaders is how many IPv6 extension headers ParseIP and the kernel program walk at most
// (classic BPF has no loops, so the walk is unrolled). A packet with more is dropped.
const MaxExtHeaders = 8

// Errors returned by ParseIP. They are returned unwrapped (no allocation on the hot path, where
// garbage is rejected), so compare with errors.Is or ==.
var (
	// ErrTruncated: the buffer is shorter than the headers or than the length the IP header
	// announces (for instance cut by the snap length).
	ErrTruncated = errors.New("capture: packet truncated")
	// ErrMalformed: a header field is inconsistent (bad version, header length, UDP length).
	ErrMalformed = errors.New("capture: malformed packet")
	// ErrFragment: an IPv4 fragment (more-fragments flag or a non-zero offset) or an IPv6
	// packet with a Fragment header. Sources reassemble them (see Reassembler) and parse the
	// whole datagram.
	ErrFragment = errors.New("capture: IP fragment")
	// ErrUnsupported: an upper-layer protocol other than UDP, TCP, ICMP (IPv4) or ICMPv6 (IPv6),
	// which includes ESP, IPv6 chains of more than MaxExtHeaders extension headers, and
	// jumbograms.
	ErrUnsupported = errors.New("capture: unsupported protocol")
)

const (
	ipv4MinHeader = 20
	ipv6Header    = 40
	udpHeader     = 8
	tcpMinHeader  = 20
	icmpHeader    = 8
	fragHeader    = 8
)

// ipView is an IP packet with its headers located: what the filter and the reassembler read.
type ipView struct {
	b     []byte // from the IP header to the end of the buffer (link padding included)
	v6    bool
	proto uint8  // upper-layer protocol: IPv4's protocol field, IPv6's after the extension headers
	seen  uint32 // IPv6: extBit of each extension header walked past
	l4    int    // offset of the upper-layer header; for an IPv6 fragment, of the Fragment header
	end   int    // end of the datagram: the IP total length (the rest of b is padding)
	frag  bool   // IPv4 fragment, or IPv6 packet with a Fragment header at l4
	// prevNext is, for an IPv6 fragment, the offset of the Next Header field that names the
	// Fragment header (6 in the fixed header, or the first byte of the preceding extension).
	prevNext int
}

// extBit is the bit ipView.seen (and the kernel program's scratch word) uses for a walked
// extension header; 0 for headers that are not walked.
func extBit(h uint8) uint32 {
	switch h {
	case extHopByHop:
		return 1
	case extRouting:
		return 2
	case extAH:
		return 4
	case extDestOpts:
		return 8
	case extFragment:
		return 16
	}
	return 0
}

// parseView locates the headers of the IP packet in b. It checks the IP header, and for IPv6
// walks up to MaxExtHeaders extension headers; it does not look at the upper-layer header.
// Errors are ErrTruncated, ErrMalformed and ErrUnsupported (too many extension headers, or a
// jumbogram).
func parseView(b []byte) (ipView, error) {
	if len(b) == 0 {
		return ipView{}, ErrTruncated
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < ipv4MinHeader {
			return ipView{}, ErrTruncated
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < ipv4MinHeader || total < ihl {
			return ipView{}, ErrMalformed
		}
		if total > len(b) {
			return ipView{}, ErrTruncated
		}
		return ipView{b: b, proto: b[9], l4: ihl, end: total,
			frag: binary.BigEndian.Uint16(b[6:8])&0x3fff != 0}, nil
	case 6:
		if len(b) < ipv6Header {
			return ipView{}, ErrTruncated
		}
		plen := int(binary.BigEndian.Uint16(b[4:6]))
		if plen == 0 {
			// A jumbogram (or a bogus zero length): needs a hop-by-hop option, unsupported.
			return ipView{}, ErrUnsupported
		}
		end := ipv6Header + plen
		if end > len(b) {
			return ipView{}, ErrTruncated
		}
		v := ipView{b: b, v6: true, proto: b[6], l4: ipv6Header, end: end, prevNext: 6}
		for range MaxExtHeaders + 1 {
			var n int
			switch v.proto {
			case extHopByHop, extRouting, extDestOpts:
				if v.l4+2 > end {
					return ipView{}, ErrTruncated
				}
				n = (int(b[v.l4+1]) + 1) * 8
			case extAH:
				if v.l4+2 > end {
					return ipView{}, ErrTruncated
				}
				n = (int(b[v.l4+1]) + 2) * 4
			case extFragment:
				if v.l4+fragHeader > end {
					return ipView{}, ErrTruncated
				}
				v.frag = true
				return v, nil
			default:
				return v, nil
			}
			if v.l4+n > end {
				return ipView{}, ErrTruncated
			}
			v.seen |= extBit(v.proto)
			v.prevNext = v.l4
			v.proto = b[v.l4]
			v.l4 += n
		}
		return ipView{}, ErrUnsupported // more than MaxExtHeaders
	default:
		return ipView{}, ErrMalformed
	}
}

// ipLen is the datagram's length from its IP header: IPv4's total length, IPv6's payload
// length plus the fixed header. The filter's "len" is this.
func (v *ipView) ipLen() uint32 { return uint32(v.end) }

func (v *ipView) src() netip.Addr {
	if v.v6 {
		return netip.AddrFrom16([16]byte(v.b[8:24]))
	}
	return netip.AddrFrom4([4]byte(v.b[12:16]))
}

func (v *ipView) dst() netip.Addr {
	if v.v6 {
		return netip.AddrFrom16([16]byte(v.b[24:40]))
	}
	return netip.AddrFrom4([4]byte(v.b[16:20]))
}

// ParseIP parses an IPv4 or IPv6 packet starting at the IP header (as a cooked AF_PACKET socket
// delivers it) and returns its addresses, protocol and L4 payload: after the UDP header, after
// the TCP header (options included), or after the 8-byte ICMP/ICMPv6 header, as fwknopd does.
// IPv6 extension headers (hop-by-hop, routing, destination options, AH; up to MaxExtHeaders)
// are walked past. Bytes past the IP total length (link-layer padding) are ignored. ICMP
// packets have port 0. A fragment is ErrFragment: reassemble it first.
//
// The returned Payload aliases b; copy it before reusing b. ParseIP never panics and does not
// allocate.
func ParseIP(b []byte) (Packet, error) {
	v, err := parseView(b)
	if err != nil {
		return Packet{}, err
	}
	return v.packet()
}

// packet parses the upper-layer header of a located packet.
func (v *ipView) packet() (Packet, error) {
	if v.frag {
		return Packet{}, ErrFragment
	}
	switch {
	case v.proto == ProtoICMPv6 && !v.v6, v.proto == ProtoICMP && v.v6:
		return Packet{}, ErrUnsupported
	}
	return parseL4(v.proto, v.src(), v.dst(), v.b[v.l4:v.end])
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

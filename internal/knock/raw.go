package knock

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
)

// IP protocol numbers of the raw transports.
const (
	ipProtoICMP = 1
	ipProtoTCP  = 6
	ipProtoUDP  = 17
)

// sendRaw sends payload over a raw IP socket (needs CAP_NET_RAW), with TTL 255 as fwknop:
//
//   - udpraw: a UDP datagram (random source port unless -S), checksum set;
//   - tcpraw: a TCP SYN carrying the payload (random source port unless -S, random sequence
//     number, window 32767), checksum set; no connection is made;
//   - icmp: an ICMP message (default type 0, echo reply; id 0, seq 0) with the payload after
//     its 8-byte header.
//
// With t.SpoofSource (IPv4 only) sesame writes the IPv4 header itself (IP_HDRINCL) with that
// source address; the checksums cover it.
func sendRaw(proto string, ap netip.AddrPort, t Target, payload []byte) (Sent, error) {
	dst := ap.Addr()
	spoof := t.SpoofSource
	if spoof.IsValid() && (!spoof.Is4() || !dst.Is4()) {
		return Sent{}, fmt.Errorf("%w: -Q %s: spoofing works with IPv4 only (source and server)", ErrBadOption, spoof)
	}
	src := spoof
	if !src.IsValid() && proto != ProtoICMP {
		// Learn the source address the kernel will use, for the checksum's pseudo-header.
		probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
		if err != nil {
			return Sent{}, fmt.Errorf("send SPA packet over %s to %s: %w", proto, ap, err)
		}
		src = probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		probe.Close()
	}
	srcPort := t.SourcePort
	if srcPort == 0 {
		srcPort = randomSourcePort()
	}
	var seg []byte
	var ipProto int
	switch proto {
	case ProtoUDPRaw:
		ipProto, seg = ipProtoUDP, udpSegment(src, ap, srcPort, payload)
	case ProtoTCPRaw:
		ipProto, seg = ipProtoTCP, tcpSYN(src, ap, srcPort, payload)
	default:
		ipProto, seg = ipProtoICMP, icmpMessage(dst, t, payload)
	}
	dest := ap
	if proto == ProtoICMP {
		dest = netip.AddrPortFrom(dst, 0)
	}
	if err := writeRaw(ipProto, src, spoof.IsValid(), dst, seg); err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over %s to %s: %w", proto, dest, err)
	}
	return Sent{Dest: dest, Bytes: len(payload)}, nil
}

func randomSourcePort() int {
	var b [2]byte
	rand.Read(b[:])
	return 10000 + int(binary.BigEndian.Uint16(b[:]))%55535
}

// writeRaw sends one L4 segment. With hdrIncl the IPv4 header, source src included, is ours.
func writeRaw(ipProto int, src netip.Addr, hdrIncl bool, dst netip.Addr, seg []byte) error {
	names := map[int]string{ipProtoICMP: "icmp", ipProtoTCP: "tcp", ipProtoUDP: "udp"}
	network := "ip4:" + names[ipProto]
	if dst.Is6() {
		network = "ip6:" + names[ipProto]
		if ipProto == ipProtoICMP {
			network = "ip6:ipv6-icmp" // the kernel computes the ICMPv6 checksum
		}
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return fmt.Errorf("open raw socket (needs root or CAP_NET_RAW): %w", err)
	}
	defer c.Close()
	if !hdrIncl {
		setTTL(c, dst)
		_, err = c.WriteTo(seg, &net.IPAddr{IP: dst.AsSlice()})
		return err
	}
	rc, err := ipv4.NewRawConn(c)
	if err != nil {
		return fmt.Errorf("raw IPv4 header: %w", err)
	}
	h := &ipv4.Header{Version: ipv4.Version, Len: ipv4.HeaderLen, TotalLen: ipv4.HeaderLen + len(seg),
		TTL: 255, Protocol: ipProto, Src: src.AsSlice(), Dst: dst.AsSlice()}
	return rc.WriteTo(h, seg, nil)
}

// pseudoSum is the checksum sum of the IPv4/IPv6 pseudo-header.
func pseudoSum(src, dst netip.Addr, ipProto, length int) uint32 {
	var p []byte
	p = append(p, src.AsSlice()...)
	p = append(p, dst.AsSlice()...)
	p = append(p, 0, byte(ipProto), byte(length>>8), byte(length))
	return checksumAdd(0, p)
}

func udpSegment(src netip.Addr, ap netip.AddrPort, srcPort int, payload []byte) []byte {
	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], uint16(srcPort))
	binary.BigEndian.PutUint16(seg[2:], ap.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	sum := checksum(pseudoSum(src, ap.Addr(), ipProtoUDP, len(seg)), seg)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(seg[6:], sum)
	return seg
}

// tcpSYN builds a 20-byte TCP header with only SYN set, followed by payload.
func tcpSYN(src netip.Addr, ap netip.AddrPort, srcPort int, payload []byte) []byte {
	seg := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(seg[0:], uint16(srcPort))
	binary.BigEndian.PutUint16(seg[2:], ap.Port())
	rand.Read(seg[4:8]) // sequence number
	seg[12] = 5 << 4    // data offset: 5 words
	seg[13] = 0x02      // SYN
	binary.BigEndian.PutUint16(seg[14:], 32767)
	copy(seg[20:], payload)
	binary.BigEndian.PutUint16(seg[16:], checksum(pseudoSum(src, ap.Addr(), ipProtoTCP, len(seg)), seg))
	return seg
}

func icmpMessage(dst netip.Addr, t Target, payload []byte) []byte {
	msg := make([]byte, 8+len(payload))
	typ := t.ICMPType
	if dst.Is6() && typ == 0 {
		typ = 129 // ICMPv6 echo reply
	}
	msg[0], msg[1] = byte(typ), byte(t.ICMPCode)
	copy(msg[8:], payload)
	if dst.Is4() {
		binary.BigEndian.PutUint16(msg[2:], checksum(0, msg))
	}
	return msg
}

package capture

import (
	"encoding/binary"
	"net/netip"
)

// Hand-built packets for the parser and filter tests. Checksums are left zero: neither the
// parser nor the BPF program looks at them.

func udpHdr(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(payload)))
	return append(b, payload...)
}

func tcpHdr(sport, dport uint16, optWords int, payload []byte) []byte {
	n := 20 + 4*optWords
	b := make([]byte, n, n+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = byte(n/4) << 4
	b[13] = 0x18 // PSH ACK
	return append(b, payload...)
}

func icmpHdr(typ byte, payload []byte) []byte {
	b := make([]byte, 8, 8+len(payload))
	b[0] = typ
	return append(b, payload...)
}

var (
	cli4 = netip.MustParseAddr("10.99.0.2")
	srv4 = netip.MustParseAddr("10.99.0.1")
	cli6 = netip.MustParseAddr("fd99::2")
	srv6 = netip.MustParseAddr("fd99::1")
)

// ip4 wraps l4 in an IPv4 header with optWords words of options.
func ip4(proto uint8, src, dst netip.Addr, optWords int, l4 []byte) []byte {
	ihl := 20 + 4*optWords
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | byte(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(l4)))
	binary.BigEndian.PutUint16(b[6:], 0x4000) // DF
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, l4...)
}

func ip6(next uint8, src, dst netip.Addr, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(l4))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(l4)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, l4...)
}

func spaPayload() []byte {
	b := make([]byte, 180)
	for i := range b {
		b[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i%64]
	}
	return b
}

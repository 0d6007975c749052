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

// ip6ext wraps l4 (of protocol final) in an IPv6 header followed by the extension headers in
// chain (extHopByHop, extDestOpts, extRouting: 8 bytes each; extAH: 12 bytes).
func ip6ext(final uint8, src, dst netip.Addr, chain []uint8, l4 []byte) []byte {
	var exts []byte
	for i, h := range chain {
		nx := final
		if i+1 < len(chain) {
			nx = chain[i+1]
		}
		switch h {
		case extAH:
			exts = append(exts, nx, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1)
		case extRouting:
			exts = append(exts, nx, 0, 253, 0, 0, 0, 0, 0) // experimental type, no segments left
		default:
			exts = append(exts, nx, 0, 1, 4, 0, 0, 0, 0) // a PadN option
		}
	}
	first := final
	if len(chain) > 0 {
		first = chain[0]
	}
	return ip6(first, src, dst, append(exts, l4...))
}

// frag4 cuts the IPv4 datagram pkt (20-byte header) into fragments of at most size data bytes
// (a multiple of 8), all with the identification id.
func frag4(pkt []byte, size int, id uint16) [][]byte {
	hdr, data := pkt[:20], pkt[20:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append(append([]byte(nil), hdr...), data[off:end]...)
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		binary.BigEndian.PutUint16(f[4:], id)
		fl := uint16(off / 8)
		if end < len(data) {
			fl |= 0x2000
		}
		binary.BigEndian.PutUint16(f[6:], fl)
		out = append(out, f)
	}
	return out
}

// frag6 cuts the IPv6 datagram pkt (fixed header only, then the fragmentable part) into
// fragments of at most size data bytes (a multiple of 8) with the identification id.
func frag6(pkt []byte, size int, id uint32) [][]byte {
	next, data := pkt[6], pkt[40:]
	var out [][]byte
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		f := append([]byte(nil), pkt[:40]...)
		f[6] = extFragment
		fh := make([]byte, 8)
		fh[0] = next
		of := uint16(off)
		if end < len(data) {
			of |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], of)
		binary.BigEndian.PutUint32(fh[4:], id)
		f = append(append(f, fh...), data[off:end]...)
		binary.BigEndian.PutUint16(f[4:], uint16(len(f)-40))
		out = append(out, f)
	}
	return out
}

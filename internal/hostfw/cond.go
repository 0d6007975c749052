package hostfw

import (
	"bytes"
	"encoding/binary"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Conntrack state bits (ct state, xt_state, xt_conntrack): 1 << (ctinfo + 1).
const ctStateNew = 8

// ctStatusKnown are the ct status bits known to be clear for the model packet:
// IPS_EXPECTED, IPS_SEEN_REPLY, IPS_ASSURED, IPS_SRC_NAT, IPS_DST_NAT (linux/netfilter/nf_conntrack_common.h).
const ctStatusKnown = 0x1 | 0x2 | 0x4 | 0x10 | 0x20

// IP protocols the model knows by name.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// val is a partly known value: the bits set in known are known and equal those of b.
type val struct{ b, known []byte }

// full reports whether every bit of v is known.
func (v val) full() bool {
	for _, k := range v.known {
		if k != 0xff {
			return false
		}
	}
	return true
}

func fullVal(b []byte) val { return val{b, bytes.Repeat([]byte{0xff}, len(b))} }

// srcKind is what a register holds after a load the model understands.
type srcKind int

const (
	srcUnknown    srcKind = iota
	srcL4proto            // meta l4proto
	srcNfproto            // meta nfproto
	srcIPProto4           // ip protocol (IPv4 header byte 9)
	srcIP6Nexthdr         // ip6 nexthdr (IPv6 header byte 6)
	srcTransport          // transport header bytes [off, off+n): th dport is off 2, n 2
	srcMark               // meta mark (host order)
	srcCtState            // ct state (host order)
	srcCtStatus           // ct status (host order)
	srcIifname            // meta iifname
	srcIif                // meta iif
)

// src is a register's content: a loaded field, possibly masked (bitwise and, xor).
type src struct {
	kind      srcKind
	off, n    uint32 // srcTransport
	mask, xor []byte // nil: none
}

// value returns what the register holds for p; ok is false when nothing of it is known.
func (s src) value(p packet) (val, bool) {
	var v val
	switch s.kind {
	case srcL4proto:
		if p.proto == 0 {
			return v, false
		}
		v = fullVal([]byte{p.proto})
	case srcIPProto4, srcIP6Nexthdr:
		if p.proto == 0 || p.v6 != (s.kind == srcIP6Nexthdr) {
			return v, false
		}
		v = fullVal([]byte{p.proto})
	case srcNfproto:
		if p.v6 {
			v = fullVal([]byte{10})
		} else {
			v = fullVal([]byte{2})
		}
	case srcTransport:
		// Only the destination port (bytes 2 and 3) is known; iptables-nft loads
		// "--sport 67 --dport 68" as one 4-byte field.
		if p.dport == 0 || p.proto == 0 || s.n == 0 || s.n > 16 {
			return v, false
		}
		v = val{make([]byte, s.n), make([]byte, s.n)}
		port := binaryutil.BigEndian.PutUint16(p.dport)
		for i := range v.b {
			if at := s.off + uint32(i); at == 2 || at == 3 {
				v.b[i], v.known[i] = port[at-2], 0xff
			}
		}
	case srcMark:
		var m uint32
		if p.marked {
			m = p.mark
		}
		v = val{binaryutil.NativeEndian.PutUint32(m), binaryutil.NativeEndian.PutUint32(p.mark)}
	case srcCtState:
		v = fullVal(binaryutil.NativeEndian.PutUint32(ctStateNew))
	case srcCtStatus:
		// A new, direct connection: not expected, no reply seen, not assured, not NATed.
		v = val{make([]byte, 4), binaryutil.NativeEndian.PutUint32(ctStatusKnown)}
	default:
		return v, false
	}
	if s.mask != nil {
		if len(s.mask) != len(v.b) || len(s.xor) != len(v.b) {
			return val{}, false
		}
		for i := range v.b {
			v.b[i] = v.b[i]&s.mask[i] ^ s.xor[i]
			v.known[i] |= ^s.mask[i] // masked-out bits are known: zero, then xor
		}
	}
	return v, true
}

// equal says whether the register equals data for p.
func (s src) equal(p packet, data []byte) tri {
	switch s.kind {
	case srcIifname:
		// The model packet does not arrive on lo; an exact "lo" is NUL-terminated (a prefix
		// such as iifname "lo*" is not).
		if s.mask == nil && bytes.HasPrefix(data, []byte("lo\x00")) {
			return never
		}
		return maybe
	case srcIif:
		if s.mask == nil && len(data) == 4 && binaryutil.NativeEndian.Uint32(data) == 1 { // lo is ifindex 1
			return never
		}
		return maybe
	}
	v, ok := s.value(p)
	if !ok || len(v.b) != len(data) {
		return maybe
	}
	for i := range data {
		if (v.b[i]^data[i])&v.known[i] != 0 {
			return never
		}
	}
	if v.full() {
		return always
	}
	return maybe
}

// compare returns the ordering of the register's value against data, when fully known.
func (s src) compare(p packet, data []byte) (int, bool) {
	v, ok := s.value(p)
	if !ok || !v.full() || len(v.b) != len(data) {
		return 0, false
	}
	return bytes.Compare(v.b, data), true
}

func cmpCond(s src, op expr.CmpOp, data []byte) cond {
	data = bytes.Clone(data)
	return func(p packet) tri {
		switch op {
		case expr.CmpOpEq:
			return s.equal(p, data)
		case expr.CmpOpNeq:
			return not(s.equal(p, data))
		}
		c, ok := s.compare(p, data)
		if !ok {
			return maybe
		}
		var r bool
		switch op {
		case expr.CmpOpLt:
			r = c < 0
		case expr.CmpOpLte:
			r = c <= 0
		case expr.CmpOpGt:
			r = c > 0
		case expr.CmpOpGte:
			r = c >= 0
		default:
			return maybe
		}
		return truth(r)
	}
}

func rangeCond(s src, op expr.CmpOp, from, to []byte) cond {
	from, to = bytes.Clone(from), bytes.Clone(to)
	return func(p packet) tri {
		lo, ok1 := s.compare(p, from)
		hi, ok2 := s.compare(p, to)
		if !ok1 || !ok2 {
			return maybe
		}
		in := truth(lo >= 0 && hi <= 0)
		if op == expr.CmpOpNeq {
			return not(in)
		}
		return in
	}
}

func truth(b bool) tri {
	if b {
		return always
	}
	return never
}

// Conditions built directly (xt matches, legacy iptables rules).

// protoCond: the IP protocol is proto (0: any protocol).
func protoCond(proto uint8) cond {
	return func(p packet) tri {
		if proto == 0 {
			return always
		}
		if p.proto == 0 {
			return maybe
		}
		return truth(p.proto == proto)
	}
}

// dportCond: the destination port is in [lo, hi].
func dportCond(lo, hi uint16) cond {
	return func(p packet) tri {
		if p.dport == 0 || p.proto == 0 {
			return maybe
		}
		return truth(p.dport >= lo && p.dport <= hi)
	}
}

// stateCond: the conntrack state is one of the bits in mask.
func stateCond(mask uint32) cond {
	return func(packet) tri { return truth(mask&ctStateNew != 0) }
}

// markCond: mark & mask == value.
func markCond(value, mask uint32) cond {
	return func(p packet) tri {
		if value&^mask != 0 {
			return never
		}
		var m uint32
		if p.marked {
			m = p.mark
		}
		if (m^value)&mask&p.mark != 0 {
			return never
		}
		if mask&^p.mark == 0 {
			return always
		}
		return maybe
	}
}

// loCond: the packet arrives on lo.
func loCond(packet) tri { return never }

func anyCond(packet) tri { return maybe }

func notCond(c cond) cond { return func(p packet) tri { return not(c(p)) } }

func nativeUint32(b []byte) (uint32, bool) {
	if len(b) < 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(b), true
}

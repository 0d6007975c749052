package capture

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// nodeKind is the kind of a filter expression node.
type nodeKind uint8

const (
	nTrue nodeKind = iota
	nFalse
	nAnd // kids, evaluated left to right
	nOr
	nNot       // kids[0]
	nFamily    // fam: "ip" (fam4) or "ip6" (fam6)
	nProto     // fam, proto
	nHost      // dir, pfx
	nPort      // dir, lo..hi, ports
	nMulticast // fam
	nBroadcast // IPv4 destination 0.0.0.0 or 255.255.255.255
	nRel       // rel, l, r
)

// famSet is a set of IP families.
type famSet uint8

const (
	fam4 famSet = 1 << iota
	fam6
	famAny = fam4 | fam6
)

func (s famSet) has(v6 bool) bool {
	if v6 {
		return s&fam6 != 0
	}
	return s&fam4 != 0
}

// dirQual is an address or port direction qualifier.
type dirQual uint8

const (
	dirSrcOrDst dirQual = iota // no qualifier, or "src or dst"
	dirSrc
	dirDst
	dirSrcAndDst
)

func (d dirQual) String() string {
	return [...]string{"", "src ", "dst ", "src and dst "}[d]
}

// Transport protocols a port test applies to (node.ports).
const (
	portTCP uint8 = 1 << iota
	portUDP
	portSCTP
	portAny = portTCP | portUDP | portSCTP
)

const protoSCTP uint8 = 132

func portProtoBit(p uint8) uint8 {
	switch p {
	case ProtoTCP:
		return portTCP
	case ProtoUDP:
		return portUDP
	case protoSCTP:
		return portSCTP
	}
	return 0
}

// relOp is a comparison of two arithmetic expressions.
type relOp uint8

const (
	relEq relOp = iota
	relNe
	relGt
	relGe
	relLt
	relLe
)

func (r relOp) String() string { return [...]string{"=", "!=", ">", ">=", "<", "<="}[r] }

func (r relOp) apply(a, b uint32) bool {
	switch r {
	case relEq:
		return a == b
	case relNe:
		return a != b
	case relGt:
		return a > b
	case relGe:
		return a >= b
	case relLt:
		return a < b
	default:
		return a <= b
	}
}

// node is a filter expression.
type node struct {
	kind  nodeKind
	kids  []*node
	fam   famSet
	proto uint8
	dir   dirQual
	pfx   netip.Prefix
	lo    uint16
	hi    uint16
	ports uint8
	rel   relOp
	l, r  *arith
}

var (
	trueNode  = &node{kind: nTrue}
	falseNode = &node{kind: nFalse}
)

func notNode(n *node) *node { return &node{kind: nNot, kids: []*node{n}} }

// join combines a and b with and/or, flattening chains of the same operator.
func join(kind nodeKind, a, b *node) *node {
	var kids []*node
	for _, n := range []*node{a, b} {
		if n.kind == kind {
			kids = append(kids, n.kids...)
		} else {
			kids = append(kids, n)
		}
	}
	return &node{kind: kind, kids: kids}
}

// arithKind is the kind of an arithmetic expression node.
type arithKind uint8

const (
	aConst arithKind = iota
	aLen             // the datagram's length (ipView.ipLen)
	aLoad            // base[x:size]
	aBin             // x op y
	aNeg             // -x
)

// loadBase is the header an indexed load counts from.
type loadBase uint8

const (
	baseIP loadBase = iota
	baseIP6
	baseTCP
	baseUDP
	baseSCTP
	baseICMP
	baseICMP6
	baseIGMP
)

var baseNames = [...]string{"ip", "ip6", "tcp", "udp", "sctp", "icmp", "icmp6", "igmp"}

// need returns what a load from base requires of a packet: its family, and for transport
// bases the upper-layer protocol (0 for none).
func (b loadBase) need() (famSet, uint8) {
	switch b {
	case baseIP:
		return fam4, 0
	case baseIP6:
		return fam6, 0
	case baseTCP:
		return famAny, ProtoTCP
	case baseUDP:
		return famAny, ProtoUDP
	case baseSCTP:
		return famAny, protoSCTP
	case baseICMP:
		return fam4, ProtoICMP
	case baseICMP6:
		return fam6, ProtoICMPv6
	default:
		return fam4, 2 // igmp
	}
}

// binOp is an arithmetic operator.
type binOp uint8

const (
	opAdd binOp = iota
	opSub
	opMul
	opDiv
	opMod
	opAnd
	opOr
	opXor
	opShl
	opShr
)

func (o binOp) String() string {
	return [...]string{"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"}[o]
}

// apply computes x op y in 32-bit unsigned arithmetic, as the kernel does; ok is false for a
// division by zero, which ends a kernel program with "reject". Shift counts are taken modulo
// 32 (the kernel masks them).
func (o binOp) apply(x, y uint32) (v uint32, ok bool) {
	switch o {
	case opAdd:
		return x + y, true
	case opSub:
		return x - y, true
	case opMul:
		return x * y, true
	case opDiv:
		if y == 0 {
			return 0, false
		}
		return x / y, true
	case opMod:
		if y == 0 {
			return 0, false
		}
		return x % y, true
	case opAnd:
		return x & y, true
	case opOr:
		return x | y, true
	case opXor:
		return x ^ y, true
	case opShl:
		return x << (y & 31), true
	default:
		return x >> (y & 31), true
	}
}

// arith is an arithmetic expression.
type arith struct {
	kind arithKind
	val  uint32
	base loadBase
	size uint8
	op   binOp
	x, y *arith
}

// loads calls fn for every load in a.
func (a *arith) loads(fn func(*arith)) {
	if a == nil {
		return
	}
	if a.kind == aLoad {
		fn(a)
	}
	a.x.loads(fn)
	a.y.loads(fn)
}

func (a *arith) String() string {
	switch a.kind {
	case aConst:
		return strconv.FormatUint(uint64(a.val), 10)
	case aLen:
		return "len"
	case aLoad:
		s := baseNames[a.base] + "[" + a.x.String()
		if a.size != 1 {
			s += ":" + strconv.Itoa(int(a.size))
		}
		return s + "]"
	case aNeg:
		return "-" + a.x.paren()
	default:
		return a.x.paren() + " " + a.op.String() + " " + a.y.paren()
	}
}

func (a *arith) paren() string {
	if a.kind == aBin {
		return "(" + a.String() + ")"
	}
	return a.String()
}

// eval computes a on v; ok is false when a load falls outside the buffer or a division by zero
// happens, which rejects the packet as the kernel does.
func (a *arith) eval(v *ipView) (uint32, bool) {
	switch a.kind {
	case aConst:
		return a.val, true
	case aLen:
		return v.ipLen(), true
	case aLoad:
		off, ok := a.x.eval(v)
		if !ok {
			return 0, false
		}
		if a.base != baseIP && a.base != baseIP6 {
			off += uint32(v.l4)
		}
		end := uint64(off) + uint64(a.size)
		if end > uint64(len(v.b)) {
			return 0, false
		}
		switch a.size {
		case 1:
			return uint32(v.b[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(v.b[off:])), true
		default:
			return binary.BigEndian.Uint32(v.b[off:]), true
		}
	case aNeg:
		x, ok := a.x.eval(v)
		return -x, ok
	default:
		x, ok := a.x.eval(v)
		if !ok {
			return 0, false
		}
		y, ok := a.y.eval(v)
		if !ok {
			return 0, false
		}
		return a.op.apply(x, y)
	}
}

// protoNames are the names of the protocol primitives ("udp", "icmp6" ...): protocol number
// and the families it is tested in.
var protoNames = []struct {
	name  string
	fam   famSet
	proto uint8
}{
	{"tcp", famAny, ProtoTCP}, {"udp", famAny, ProtoUDP}, {"sctp", famAny, protoSCTP},
	{"icmp", fam4, ProtoICMP}, {"icmp6", fam6, ProtoICMPv6}, {"igmp", fam4, 2}, {"igrp", fam4, 9},
	{"pim", famAny, 103}, {"vrrp", fam4, 112}, {"ah", famAny, extAH}, {"esp", famAny, 50},
}

func (n *node) String() string {
	switch n.kind {
	case nTrue:
		return "1 = 1"
	case nFalse:
		return "1 = 0"
	case nAnd, nOr:
		op := " and "
		if n.kind == nOr {
			op = " or "
		}
		s := make([]string, len(n.kids))
		for i, k := range n.kids {
			s[i] = k.String()
			if k.kind == nAnd || k.kind == nOr {
				s[i] = "(" + s[i] + ")"
			}
		}
		return strings.Join(s, op)
	case nNot:
		k := n.kids[0]
		if k.kind == nAnd || k.kind == nOr || k.kind == nRel {
			return "not (" + k.String() + ")"
		}
		return "not " + k.String()
	case nFamily:
		if n.fam == fam6 {
			return "ip6"
		}
		return "ip"
	case nProto:
		for _, p := range protoNames {
			if p.fam == n.fam && p.proto == n.proto {
				return p.name
			}
		}
		return famPrefix(n.fam) + "proto " + strconv.Itoa(int(n.proto))
	case nHost:
		if n.pfx.IsSingleIP() {
			return n.dir.String() + "host " + n.pfx.Addr().String()
		}
		return n.dir.String() + "net " + n.pfx.String()
	case nPort:
		s := ""
		for _, p := range protoNames[:3] {
			if n.ports == portProtoBit(p.proto) {
				s = p.name + " "
			}
		}
		if n.lo == n.hi {
			return s + n.dir.String() + "port " + strconv.Itoa(int(n.lo))
		}
		return fmt.Sprintf("%s%sportrange %d-%d", s, n.dir, n.lo, n.hi)
	case nMulticast:
		return strings.TrimSpace(famPrefix(n.fam)) + " multicast"
	case nBroadcast:
		return "ip broadcast"
	default:
		return n.l.String() + " " + n.rel.String() + " " + n.r.String()
	}
}

func famPrefix(f famSet) string {
	switch f {
	case fam4:
		return "ip "
	case fam6:
		return "ip6 "
	}
	return ""
}

// fctx is what is known about a packet before the filter runs: its family, and whether it is
// a fragment, whose upper-layer header is unknown (or absent).
type fctx struct{ v6, frag bool }

func ctxIndex(v6, frag bool) int {
	i := 0
	if v6 {
		i |= 1
	}
	if frag {
		i |= 2
	}
	return i
}

func ctxFromIndex(i int) fctx { return fctx{v6: i&1 != 0, frag: i&2 != 0} }

// tri is a leaf's value known before the packet is seen.
type tri uint8

const (
	atRuntime tri = iota // to be tested on the packet
	known0               // false
	known1               // true
	unknown              // cannot be tested (a fragment): over-approximated as true
)

func knownIf(b bool) tri {
	if b {
		return known1
	}
	return known0
}

// static says what c tells about the leaf n.
func (c fctx) static(n *node) tri {
	switch n.kind {
	case nTrue:
		return known1
	case nFalse:
		return known0
	case nFamily:
		return knownIf(n.fam.has(c.v6))
	case nProto:
		switch {
		case !n.fam.has(c.v6):
			return known0
		case c.frag && c.v6:
			return unknown // the Fragment header hides the chain behind it
		}
		return atRuntime
	case nHost:
		if n.pfx.Addr().Is6() != c.v6 {
			return known0
		}
		return atRuntime
	case nMulticast:
		return knownIf(n.fam.has(c.v6)).orRuntime()
	case nBroadcast:
		return knownIf(!c.v6).orRuntime()
	case nPort:
		if c.frag {
			return unknown
		}
		return atRuntime
	default: // nRel
		if c.frag {
			return unknown
		}
		st := atRuntime
		for _, a := range []*arith{n.l, n.r} {
			a.loads(func(l *arith) {
				if f, _ := l.base.need(); !f.has(c.v6) {
					st = known0
				}
			})
		}
		return st
	}
}

func (t tri) orRuntime() tri {
	if t == known1 {
		return atRuntime
	}
	return t
}

// fold returns n (negated if neg) specialised to context c, in negation normal form: negation
// only directly above leaves, constants folded away. Leaves c cannot test become true whatever
// their polarity, so the result matches every packet n matches, and for whole datagrams it
// matches exactly those (a fragment is checked again once reassembled). Folding keeps the
// evaluation order, and never drops a leaf whose loads could reject the packet, so the kernel
// program and eval agree to the packet.
func fold(n *node, c fctx, neg bool) *node {
	switch n.kind {
	case nNot:
		return fold(n.kids[0], c, !neg)
	case nAnd, nOr:
		isAnd := (n.kind == nAnd) != neg
		var kids []*node
		for _, k := range n.kids {
			f := fold(k, c, neg)
			switch {
			case isAnd && f.kind == nTrue, !isAnd && f.kind == nFalse:
				continue // neutral
			case isAnd && f.kind == nFalse:
				return falseNode // a false conjunct: earlier ones may reject, which is false too
			case !isAnd && f.kind == nTrue && !anyMayAbort(kids):
				return trueNode
			}
			kids = append(kids, f)
		}
		switch {
		case len(kids) == 0 && isAnd:
			return trueNode
		case len(kids) == 0:
			return falseNode
		case len(kids) == 1:
			return kids[0]
		}
		kind := nOr
		if isAnd {
			kind = nAnd
		}
		return &node{kind: kind, kids: kids}
	}
	if n.kind == nPort && c.frag && !c.v6 {
		// An IPv4 fragment tells the protocol: a port test needs one of its protocols, while
		// its negation may hold whatever the protocol.
		if neg {
			return trueNode
		}
		var alt *node
		for _, p := range []uint8{ProtoTCP, ProtoUDP, protoSCTP} {
			if n.ports&portProtoBit(p) != 0 {
				pn := &node{kind: nProto, fam: famAny, proto: p}
				if alt == nil {
					alt = pn
				} else {
					alt = join(nOr, alt, pn)
				}
			}
		}
		return alt
	}
	switch c.static(n) {
	case known1:
		return constNode(!neg)
	case known0:
		return constNode(neg)
	case unknown:
		return trueNode
	}
	if neg {
		return notNode(n)
	}
	return n
}

func constNode(b bool) *node {
	if b {
		return trueNode
	}
	return falseNode
}

func anyMayAbort(ns []*node) bool {
	for _, n := range ns {
		if n.mayAbort() {
			return true
		}
	}
	return false
}

// mayAbort reports whether evaluating n can reject the packet outright (a load past its end,
// a division by zero).
func (n *node) mayAbort() bool {
	switch n.kind {
	case nRel, nPort:
		return true
	case nAnd, nOr, nNot:
		return anyMayAbort(n.kids)
	}
	return false
}

// eval evaluates a folded node on a whole datagram. fine is false when the packet must be
// rejected whatever the value (a load past its end, a division by zero), as the kernel
// program stops with "reject" then.
func (n *node) eval(v *ipView) (val, fine bool) {
	switch n.kind {
	case nTrue:
		return true, true
	case nFalse:
		return false, true
	case nAnd:
		for _, k := range n.kids {
			if val, fine := k.eval(v); !fine || !val {
				return false, fine
			}
		}
		return true, true
	case nOr:
		for _, k := range n.kids {
			if val, fine := k.eval(v); !fine || val {
				return val, fine
			}
		}
		return false, true
	case nNot:
		val, fine := n.kids[0].eval(v)
		return !val, fine
	case nFamily:
		return n.fam.has(v.v6), true
	case nProto:
		if !n.fam.has(v.v6) {
			return false, true
		}
		return v.proto == n.proto || (v.v6 && v.seen&extBit(n.proto) != 0), true
	case nHost:
		if n.pfx.Addr().Is6() != v.v6 {
			return false, true
		}
		s, d := n.pfx.Contains(v.src()), n.pfx.Contains(v.dst())
		switch n.dir {
		case dirSrc:
			return s, true
		case dirDst:
			return d, true
		case dirSrcAndDst:
			return s && d, true
		}
		return s || d, true
	case nMulticast:
		if !n.fam.has(v.v6) {
			return false, true
		}
		if v.v6 {
			return v.b[24] == 0xff, true
		}
		return v.b[16] >= 224, true
	case nBroadcast:
		if v.v6 {
			return false, true
		}
		d := binary.BigEndian.Uint32(v.b[16:20])
		return d == 0 || d == 0xffffffff, true
	case nPort:
		if n.ports&portProtoBit(v.proto) == 0 {
			return false, true
		}
		// Load in the kernel program's order: the source port, then the destination port only
		// if the answer still depends on it.
		port := func(off int) (bool, bool) {
			if v.l4+off+2 > len(v.b) {
				return false, false
			}
			p := binary.BigEndian.Uint16(v.b[v.l4+off:])
			return p >= n.lo && p <= n.hi, true
		}
		if n.dir == dirDst {
			return port(2)
		}
		s, fine := port(0)
		switch {
		case !fine:
			return false, false
		case n.dir == dirSrc, n.dir == dirSrcAndDst && !s, n.dir == dirSrcOrDst && s:
			return s, true
		}
		return port(2)
	default: // nRel
		ok := true
		for _, a := range []*arith{n.l, n.r} {
			a.loads(func(l *arith) {
				f, p := l.base.need()
				if !f.has(v.v6) || (p != 0 && v.proto != p) {
					ok = false
				}
			})
		}
		if !ok {
			return false, true
		}
		x, fine := n.l.eval(v)
		if !fine {
			return false, false
		}
		y, fine := n.r.eval(v)
		if !fine {
			return false, false
		}
		return n.rel.apply(x, y), true
	}
}

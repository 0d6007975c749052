package capture

import (
	"errors"
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ProgramOptions shape the kernel program built by Filter.Program.
type ProgramOptions struct {
	// SnapLen is how many bytes of an accepted packet, counted from the IP header, are kept
	// (MAX_SNIFF_BYTES); 0 means DefaultSnapLen.
	SnapLen uint32
	// AnyDirection keeps packets the host sends too (ENABLE_PCAP_ANY_DIRECTION). Outgoing
	// packets on the interfaces in Loopback are still dropped: a loopback packet is seen once
	// leaving and once arriving, and only the arriving copy is kept.
	AnyDirection bool
	// Loopback lists the interface indexes of loopback devices (used with AnyDirection); at
	// most maxLoopback.
	Loopback []uint32
}

// DefaultSnapLen is fwknopd's MAX_SNIFF_BYTES default.
const DefaultSnapLen = 1500

// optionsSlack is the room CompileFilter leaves under the kernel's instruction limit for what
// ProgramOptions add; maxLoopback keeps the options within it.
const (
	optionsSlack = 64
	maxLoopback  = 32
)

// Scratch memory words of the program (classic BPF has 16).
const (
	mProto   = 0 // upper-layer protocol
	mL4      = 1 // offset of the upper-layer header
	mSeen    = 2 // IPv6 extension headers walked past (extBit)
	mTemp    = 3 // first word for arithmetic temporaries
	mScratch = 16
)

// Program returns the classic BPF program for a cooked (SOCK_DGRAM) AF_PACKET socket, whose
// buffer starts at the IP header on every link type. It reads the packet type, the EtherType
// and the interface index from the kernel's ancillary data (SKF_AD_*), so it must run in the
// kernel, not in bpf.VM, which lacks those extensions. It rejects, in order:
//
//   - packets the host sends (PACKET_OUTGOING), unless AnyDirection; then only outgoing loopback
//     copies;
//   - anything but IPv4 and IPv6, and IP packets whose version nibble disagrees;
//   - IPv6 packets with more than MaxExtHeaders extension headers;
//   - whole datagrams the filter does not match, the IPv6 ones tested on the upper-layer
//     header found by walking the extension headers;
//   - fragments (IPv4, or IPv6 with a Fragment header) that fail the parts of the filter a
//     fragment can answer (addresses, families; for IPv4 also the protocol); the rest of the
//     filter is taken as true, and Read checks the reassembled datagram with Filter.Match.
//
// Accepted packets are cut to SnapLen bytes. The error reports a program the kernel would
// refuse (too long).
func (f Filter) Program(o ProgramOptions) ([]bpf.Instruction, error) {
	if f.root == nil {
		return nil, errors.New("capture: empty filter")
	}
	if len(o.Loopback) > maxLoopback {
		return nil, fmt.Errorf("capture: %d loopback interfaces, at most %d", len(o.Loopback), maxLoopback)
	}
	prog, err := f.program(o)
	if err != nil {
		return nil, fmt.Errorf("capture: filter %q: %w", f.Expr, err)
	}
	return prog, nil
}

func (f Filter) program(o ProgramOptions) ([]bpf.Instruction, error) {
	snap := o.SnapLen
	if snap == 0 {
		snap = DefaultSnapLen
	}
	b := &builder{}
	accept, reject := b.newLabel(), b.newLabel()
	v4, v6, proto := b.newLabel(), b.newLabel(), b.newLabel()

	switch {
	case !o.AnyDirection:
		b.emit(bpf.LoadExtension{Num: bpf.ExtType})
		b.jumpIf(bpf.JumpEqual, unix.PACKET_OUTGOING, reject, next)
	case len(o.Loopback) > 0:
		out := b.newLabel()
		b.emit(bpf.LoadExtension{Num: bpf.ExtType})
		b.jumpIf(bpf.JumpEqual, unix.PACKET_OUTGOING, out, proto)
		b.mark(out)
		b.emit(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for _, idx := range o.Loopback {
			b.jumpIf(bpf.JumpEqual, idx, reject, next)
		}
	}
	b.mark(proto)
	b.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	b.jumpIf(bpf.JumpEqual, unix.ETH_P_IP, v4, next)
	b.jumpIf(bpf.JumpEqual, unix.ETH_P_IPV6, v6, reject)

	g := &codegen{b: b}
	// IPv4: M[proto] is the protocol field, M[l4] the header length.
	b.mark(v4)
	frag4 := b.newLabel()
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	b.jumpIf(bpf.JumpEqual, 0x40, next, reject)
	b.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mProto})
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
	b.jumpIf(bpf.JumpBitsSet, 0x3fff, frag4, next)
	b.emit(bpf.LoadMemShift{Off: 0})
	b.emit(bpf.StoreScratch{Src: bpf.RegX, N: mL4})
	if err := g.gen(f.res[ctxIndex(false, false)], fctx{}, accept, reject); err != nil {
		return nil, err
	}
	b.mark(frag4)
	if err := g.gen(f.res[ctxIndex(false, true)], fctx{frag: true}, accept, reject); err != nil {
		return nil, err
	}

	// IPv6: walk the extension headers (unrolled; X is the offset of the current header and
	// M[proto] its type), then M[l4] is the upper-layer header's offset.
	b.mark(v6)
	done, frag6 := b.newLabel(), b.newLabel()
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	b.jumpIf(bpf.JumpEqual, 0x60, next, reject)
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mProto})
	b.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: 0})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mSeen})
	b.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ipv6Header})
	for range MaxExtHeaders {
		hop, rt, dst, ah, ext8, adv := b.newLabel(), b.newLabel(), b.newLabel(), b.newLabel(), b.newLabel(), b.newLabel()
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
		b.jumpIf(bpf.JumpEqual, uint32(extFragment), frag6, next)
		b.jumpIf(bpf.JumpEqual, uint32(extHopByHop), hop, next)
		b.jumpIf(bpf.JumpEqual, uint32(extRouting), rt, next)
		b.jumpIf(bpf.JumpEqual, uint32(extDestOpts), dst, next)
		b.jumpIf(bpf.JumpEqual, uint32(extAH), ah, done)
		for _, h := range []struct {
			l   label
			ext uint8
		}{{hop, extHopByHop}, {rt, extRouting}, {dst, extDestOpts}} {
			b.mark(h.l)
			b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mSeen})
			b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: extBit(h.ext)})
			b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mSeen})
			b.jump(ext8)
		}
		// Hop-by-hop, routing, destination options: (length+1)*8 bytes.
		b.mark(ext8)
		b.emit(bpf.LoadIndirect{Off: 0, Size: 1})
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mProto})
		b.emit(bpf.LoadIndirect{Off: 1, Size: 1})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3})
		b.jump(adv)
		// AH: (length+2)*4 bytes.
		b.mark(ah)
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mSeen})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpOr, Val: extBit(extAH)})
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mSeen})
		b.emit(bpf.LoadIndirect{Off: 0, Size: 1})
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mProto})
		b.emit(bpf.LoadIndirect{Off: 1, Size: 1})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 2})
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
		b.mark(adv)
		b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		b.emit(bpf.TAX{})
	}
	// After MaxExtHeaders, a Fragment header still counts; another extension is one too many.
	b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
	b.jumpIf(bpf.JumpEqual, uint32(extFragment), frag6, next)
	for _, h := range []uint8{extHopByHop, extRouting, extDestOpts, extAH} {
		b.jumpIf(bpf.JumpEqual, uint32(h), reject, next)
	}
	b.mark(done)
	b.emit(bpf.StoreScratch{Src: bpf.RegX, N: mL4})
	if err := g.gen(f.res[ctxIndex(true, false)], fctx{v6: true}, accept, reject); err != nil {
		return nil, err
	}
	b.mark(frag6)
	if err := g.gen(f.res[ctxIndex(true, true)], fctx{v6: true, frag: true}, accept, reject); err != nil {
		return nil, err
	}

	b.mark(accept)
	b.emit(bpf.RetConstant{Val: snap})
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0})
	return b.finish()
}

// codegen emits the code of folded filter nodes.
type codegen struct {
	b *builder
}

// gen emits code that jumps to t when n holds and to f when it does not. n is folded for c.
func (g *codegen) gen(n *node, c fctx, t, f label) error {
	b := g.b
	switch n.kind {
	case nTrue:
		b.jump(t)
	case nFalse:
		b.jump(f)
	case nAnd, nOr:
		for i, k := range n.kids {
			if i == len(n.kids)-1 {
				return g.gen(k, c, t, f)
			}
			m := b.newLabel()
			var err error
			if n.kind == nAnd {
				err = g.gen(k, c, m, f)
			} else {
				err = g.gen(k, c, t, m)
			}
			if err != nil {
				return err
			}
			b.mark(m)
		}
	case nNot:
		return g.gen(n.kids[0], c, f, t)
	case nFamily:
		if n.fam.has(c.v6) {
			b.jump(t)
		} else {
			b.jump(f)
		}
	case nProto:
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
		if bit := extBit(n.proto); c.v6 && bit != 0 {
			m := b.newLabel()
			b.jumpIf(bpf.JumpEqual, uint32(n.proto), t, m)
			b.mark(m)
			b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mSeen})
			b.jumpIf(bpf.JumpBitsSet, bit, t, f)
		} else {
			b.jumpIf(bpf.JumpEqual, uint32(n.proto), t, f)
		}
	case nHost:
		src, dst := uint32(12), uint32(16)
		if c.v6 {
			src, dst = 8, 24
		}
		g.dirs(n.dir, t, f, func(second bool, t, f label) {
			off := src
			if second {
				off = dst
			}
			g.addr(off, n, t, f)
		})
	case nMulticast:
		if c.v6 {
			b.emit(bpf.LoadAbsolute{Off: 24, Size: 1})
			b.jumpIf(bpf.JumpEqual, 0xff, t, f)
		} else {
			b.emit(bpf.LoadAbsolute{Off: 16, Size: 1})
			b.jumpIf(bpf.JumpGreaterOrEqual, 224, t, f)
		}
	case nBroadcast:
		b.emit(bpf.LoadAbsolute{Off: 16, Size: 4})
		b.jumpIf(bpf.JumpEqual, 0, t, next)
		b.jumpIf(bpf.JumpEqual, 0xffffffff, t, f)
	case nPort:
		ok := b.newLabel()
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
		var protos []uint8
		for _, p := range []uint8{ProtoTCP, ProtoUDP, protoSCTP} {
			if n.ports&portProtoBit(p) != 0 {
				protos = append(protos, p)
			}
		}
		for i, p := range protos {
			if i == len(protos)-1 {
				b.jumpIf(bpf.JumpEqual, uint32(p), ok, f)
			} else {
				b.jumpIf(bpf.JumpEqual, uint32(p), ok, next)
			}
		}
		b.mark(ok)
		b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: mL4})
		g.dirs(n.dir, t, f, func(second bool, t, f label) {
			off := uint32(0)
			if second || n.dir == dirDst {
				off = 2
			}
			b.emit(bpf.LoadIndirect{Off: off, Size: 2})
			g.inRange(n.lo, n.hi, t, f)
		})
	default:
		return g.relation(n, c, t, f)
	}
	return nil
}

// dirs emits a test of the source (first) and destination (second) as the direction asks.
func (g *codegen) dirs(d dirQual, t, f label, test func(second bool, t, f label)) {
	switch d {
	case dirSrc:
		test(false, t, f)
	case dirDst:
		test(true, t, f)
	case dirSrcAndDst:
		m := g.b.newLabel()
		test(false, m, f)
		g.b.mark(m)
		test(true, t, f)
	default:
		m := g.b.newLabel()
		test(false, t, m)
		g.b.mark(m)
		test(true, t, f)
	}
}

// addr tests the address at off against n's prefix, a 32-bit word at a time.
func (g *codegen) addr(off uint32, n *node, t, f label) {
	a := n.pfx.Addr().AsSlice()
	bitsLeft := n.pfx.Bits()
	var words []struct{ off, val, mask uint32 }
	for i := 0; i < len(a); i += 4 {
		m := uint32(0xffffffff)
		switch {
		case bitsLeft <= 0:
			m = 0
		case bitsLeft < 32:
			m = ^uint32(0) << (32 - bitsLeft)
		}
		bitsLeft -= 32
		if m != 0 {
			v := uint32(a[i])<<24 | uint32(a[i+1])<<16 | uint32(a[i+2])<<8 | uint32(a[i+3])
			words = append(words, struct{ off, val, mask uint32 }{off + uint32(i), v & m, m})
		}
	}
	if len(words) == 0 {
		g.b.jump(t)
		return
	}
	for i, w := range words {
		g.b.emit(bpf.LoadAbsolute{Off: w.off, Size: 4})
		if w.mask != 0xffffffff {
			g.b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: w.mask})
		}
		yes := next
		if i == len(words)-1 {
			yes = t
		}
		g.b.jumpIf(bpf.JumpEqual, w.val, yes, f)
	}
}

// inRange tests lo <= A <= hi.
func (g *codegen) inRange(lo, hi uint16, t, f label) {
	if lo == hi {
		g.b.jumpIf(bpf.JumpEqual, uint32(lo), t, f)
		return
	}
	g.b.jumpIf(bpf.JumpGreaterOrEqual, uint32(lo), next, f)
	g.b.jumpIf(bpf.JumpGreaterThan, uint32(hi), f, t)
}

// relation emits an arithmetic comparison: the protocol checks its loads need, then the
// operands (right first, kept in scratch memory), then the comparison.
func (g *codegen) relation(n *node, c fctx, t, f label) error {
	b := g.b
	var protos []uint8
	for _, a := range []*arith{n.l, n.r} {
		a.loads(func(l *arith) {
			if _, p := l.base.need(); p != 0 {
				for _, q := range protos {
					if q == p {
						return
					}
				}
				protos = append(protos, p)
			}
		})
	}
	for _, p := range protos {
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: mProto})
		b.jumpIf(bpf.JumpEqual, uint32(p), next, f)
	}
	withX := n.r.kind != aConst
	if withX {
		if err := g.arith(n.r, c, mTemp); err != nil {
			return err
		}
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: mTemp})
	}
	if err := g.arith(n.l, c, mTemp+1); err != nil {
		return err
	}
	if withX {
		b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: mTemp})
	}
	cond, swap := bpf.JumpEqual, false
	switch n.rel {
	case relNe:
		swap = true
	case relGt:
		cond = bpf.JumpGreaterThan
	case relGe:
		cond = bpf.JumpGreaterOrEqual
	case relLt:
		cond, swap = bpf.JumpGreaterOrEqual, true
	case relLe:
		cond, swap = bpf.JumpGreaterThan, true
	}
	yes, no := t, f
	if swap {
		yes, no = f, t
	}
	if withX {
		b.jumpIfX(cond, yes, no)
	} else {
		b.jumpIf(cond, n.r.val, yes, no)
	}
	return nil
}

// arith emits code leaving a's value in A, using scratch words from slot on.
func (g *codegen) arith(a *arith, c fctx, slot uint32) error {
	b := g.b
	if slot >= mScratch {
		return errors.New("arithmetic nested too deep for the kernel's 16 scratch words")
	}
	switch a.kind {
	case aConst:
		b.emit(bpf.LoadConstant{Dst: bpf.RegA, Val: a.val})
	case aLen:
		if c.v6 {
			b.emit(bpf.LoadAbsolute{Off: 4, Size: 2})
			b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: ipv6Header})
		} else {
			b.emit(bpf.LoadAbsolute{Off: 2, Size: 2})
		}
	case aLoad:
		l4 := a.base != baseIP && a.base != baseIP6
		if a.x.kind == aConst && a.x.val < 0x10000 {
			if l4 {
				b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: mL4})
				b.emit(bpf.LoadIndirect{Off: a.x.val, Size: int(a.size)})
			} else {
				b.emit(bpf.LoadAbsolute{Off: a.x.val, Size: int(a.size)})
			}
			return nil
		}
		if err := g.arith(a.x, c, slot); err != nil {
			return err
		}
		if l4 {
			b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: mL4})
			b.emit(bpf.ALUOpX{Op: bpf.ALUOpAdd})
		}
		b.emit(bpf.TAX{})
		b.emit(bpf.LoadIndirect{Off: 0, Size: int(a.size)})
	case aNeg:
		if err := g.arith(a.x, c, slot); err != nil {
			return err
		}
		// -A as A * (2^32 - 1): the same in 32-bit arithmetic, and bpf.VM has no negation.
		b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpMul, Val: 0xffffffff})
	default:
		op := map[binOp]bpf.ALUOp{opAdd: bpf.ALUOpAdd, opSub: bpf.ALUOpSub, opMul: bpf.ALUOpMul,
			opDiv: bpf.ALUOpDiv, opMod: bpf.ALUOpMod, opAnd: bpf.ALUOpAnd, opOr: bpf.ALUOpOr,
			opXor: bpf.ALUOpXor, opShl: bpf.ALUOpShiftLeft, opShr: bpf.ALUOpShiftRight}[a.op]
		if a.y.kind == aConst {
			if err := g.arith(a.x, c, slot); err != nil {
				return err
			}
			v := a.y.val
			if a.op == opShl || a.op == opShr {
				v &= 31 // the kernel refuses constant shifts of 32 or more
			}
			b.emit(bpf.ALUOpConstant{Op: op, Val: v})
			return nil
		}
		if err := g.arith(a.y, c, slot); err != nil {
			return err
		}
		b.emit(bpf.StoreScratch{Src: bpf.RegA, N: int(slot)})
		if err := g.arith(a.x, c, slot+1); err != nil {
			return err
		}
		b.emit(bpf.LoadScratch{Dst: bpf.RegX, N: int(slot)})
		b.emit(bpf.ALUOpX{Op: op})
	}
	return nil
}

// label names a program position for the builder; next means "the following instruction".
type label int

const next label = -1

// insn is one instruction of a program being built; jumps name their targets by label.
type insn struct {
	ins      bpf.Instruction
	jump     bool // conditional jump (JumpIf or JumpIfX) to yes/not
	always   bool // unconditional jump to yes
	yes, not label
}

// builder assembles a program with symbolic forward jumps. Conditional jumps reach 255
// instructions at most; finish inserts unconditional trampolines for farther targets.
type builder struct {
	prog []insn
	pos  []int // label -> index in prog, -1 until marked
}

func (b *builder) newLabel() label {
	b.pos = append(b.pos, -1)
	return label(len(b.pos) - 1)
}

func (b *builder) mark(l label) { b.pos[l] = len(b.prog) }

func (b *builder) emit(i bpf.Instruction) { b.prog = append(b.prog, insn{ins: i}) }

func (b *builder) jumpIf(cond bpf.JumpTest, val uint32, yes, not label) {
	b.prog = append(b.prog, insn{ins: bpf.JumpIf{Cond: cond, Val: val}, jump: true, yes: yes, not: not})
}

func (b *builder) jumpIfX(cond bpf.JumpTest, yes, not label) {
	b.prog = append(b.prog, insn{ins: bpf.JumpIfX{Cond: cond}, jump: true, yes: yes, not: not})
}

func (b *builder) jump(to label) {
	b.prog = append(b.prog, insn{ins: bpf.Jump{}, always: true, yes: to})
}

// finish resolves the jumps and returns the program.
func (b *builder) finish() ([]bpf.Instruction, error) {
	// Give every "next" a label of its own, so that inserting trampolines keeps it right.
	for i := range b.prog {
		in := &b.prog[i]
		if !in.jump && !in.always {
			continue
		}
		for _, l := range []*label{&in.yes, &in.not} {
			if *l == next {
				*l = b.newLabel()
				b.pos[*l] = i + 1
			}
		}
	}
	for _, p := range b.pos {
		if p < 0 {
			return nil, errors.New("bpf label never marked")
		}
	}
	// Insert trampolines until every conditional jump reaches its targets. Each pass inserts
	// them after all the jumps that are too far, which can push other jumps too far.
	for {
		if len(b.prog) > maxInstructions {
			break // trampolines only add instructions
		}
		type farJump struct {
			at    int
			which []*label
		}
		var far []farJump
		for i := range b.prog {
			if !b.prog[i].jump {
				continue
			}
			fj := farJump{at: i}
			for _, l := range []*label{&b.prog[i].yes, &b.prog[i].not} {
				if b.pos[*l]-i-1 > 255 {
					fj.which = append(fj.which, l)
				}
			}
			if len(fj.which) > 0 {
				far = append(far, fj)
			}
		}
		if len(far) == 0 {
			break
		}
		// newIdx maps an old position (len(prog) included) to its new one.
		newIdx := make([]int, len(b.prog)+1)
		out := make([]insn, 0, len(b.prog)+2*len(far))
		type tramp struct {
			at     int
			target label
			from   *label
		}
		var tramps []tramp
		f := 0
		for i, in := range b.prog {
			newIdx[i] = len(out)
			out = append(out, in)
			if f < len(far) && far[f].at == i {
				for _, l := range far[f].which {
					tramps = append(tramps, tramp{at: len(out), target: *l, from: l})
					out = append(out, insn{ins: bpf.Jump{}, always: true, yes: *l})
				}
				f++
			}
		}
		newIdx[len(b.prog)] = len(out)
		for l := range b.pos {
			b.pos[l] = newIdx[b.pos[l]]
		}
		// The label pointers in far refer to the old slice; retarget in the new one.
		for _, tr := range tramps {
			nl := b.newLabel()
			b.pos[nl] = tr.at
			for k := tr.at - 1; k >= 0; k-- {
				if out[k].jump {
					if out[k].yes == tr.target && b.pos[out[k].yes]-k-1 > 255 {
						out[k].yes = nl
					} else if out[k].not == tr.target && b.pos[out[k].not]-k-1 > 255 {
						out[k].not = nl
					}
					break
				}
			}
		}
		b.prog = out
	}
	if len(b.prog) > maxInstructions {
		return nil, fmt.Errorf("program has %d instructions, the kernel's limit is %d", len(b.prog), maxInstructions)
	}
	out := make([]bpf.Instruction, len(b.prog))
	for i, in := range b.prog {
		yes, not := b.pos[in.yes]-i-1, 0
		if in.jump {
			not = b.pos[in.not] - i - 1
		}
		if (in.jump || in.always) && (yes < 0 || not < 0) {
			return nil, errors.New("bpf jump backwards")
		}
		switch ins := in.ins.(type) {
		case bpf.JumpIf:
			ins.SkipTrue, ins.SkipFalse = uint8(yes), uint8(not)
			out[i] = ins
		case bpf.JumpIfX:
			ins.SkipTrue, ins.SkipFalse = uint8(yes), uint8(not)
			out[i] = ins
		case bpf.Jump:
			ins.Skip = uint32(yes)
			out[i] = ins
		default:
			out[i] = in.ins
		}
	}
	return out, nil
}

// maxInstructions is the kernel's BPF_MAXINSNS for classic socket filters.
const maxInstructions = 4096

func assemble(prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("capture: assemble filter: %w", err)
	}
	return raw, nil
}

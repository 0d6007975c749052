package capture

import (
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
	// Loopback lists the interface indexes of loopback devices (used with AnyDirection).
	Loopback []uint32
}

// DefaultSnapLen is fwknopd's MAX_SNIFF_BYTES default.
const DefaultSnapLen = 1500

// Program returns the classic BPF program for a cooked (SOCK_DGRAM) AF_PACKET socket, whose
// buffer starts at the IP header on every link type. It reads the packet type, the EtherType
// and the interface index from the kernel's ancillary data (SKF_AD_*), so it must run in the
// kernel, not in bpf.VM, which lacks those extensions. It rejects, in order:
//
//   - packets the host sends (PACKET_OUTGOING), unless AnyDirection; then only outgoing loopback
//     copies;
//   - anything but IPv4 and IPv6, and IP packets whose version nibble disagrees;
//   - IPv4 fragments (more-fragments flag or a non-zero offset);
//   - packets no term matches. IPv6 is matched on the first Next Header only, so packets with
//     extension headers never match.
//
// Accepted packets are cut to SnapLen bytes.
func (f Filter) Program(o ProgramOptions) ([]bpf.Instruction, error) {
	snap := o.SnapLen
	if snap == 0 {
		snap = DefaultSnapLen
	}
	var b builder
	reject4, v4, v6, proto := b.newLabel(), b.newLabel(), b.newLabel(), b.newLabel()

	switch {
	case !o.AnyDirection:
		b.emit(bpf.LoadExtension{Num: bpf.ExtType})
		b.jumpIf(bpf.JumpEqual, unix.PACKET_OUTGOING, reject4, next)
	case len(o.Loopback) > 0:
		out := b.newLabel()
		b.emit(bpf.LoadExtension{Num: bpf.ExtType})
		b.jumpIf(bpf.JumpEqual, unix.PACKET_OUTGOING, out, proto)
		b.mark(out)
		b.emit(bpf.LoadExtension{Num: bpf.ExtInterfaceIndex})
		for _, idx := range o.Loopback {
			b.jumpIf(bpf.JumpEqual, idx, reject4, next)
		}
	}
	b.mark(proto)
	b.emit(bpf.LoadExtension{Num: bpf.ExtProto})
	b.jumpIf(bpf.JumpEqual, unix.ETH_P_IP, v4, next)
	b.jumpIf(bpf.JumpEqual, unix.ETH_P_IPV6, v6, reject4)

	// Each family block ends with its own accept and reject, which keeps the jumps short.
	b.mark(v4)
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	b.jumpIf(bpf.JumpEqual, 0x40, next, reject4)
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 2})
	b.jumpIf(bpf.JumpBitsSet, 0x3fff, reject4, next)
	b.emit(bpf.LoadAbsolute{Off: 9, Size: 1})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: 0})
	b.emit(bpf.LoadMemShift{Off: 0})
	f.emitTerms(&b, false, snap, reject4)

	b.mark(v6)
	reject6 := b.newLabel()
	b.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
	b.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
	b.jumpIf(bpf.JumpEqual, 0x60, next, reject6)
	b.emit(bpf.LoadAbsolute{Off: 6, Size: 1})
	b.emit(bpf.StoreScratch{Src: bpf.RegA, N: 0})
	b.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: ipv6Header})
	f.emitTerms(&b, true, snap, reject6)

	prog, err := b.finish()
	if err != nil {
		return nil, fmt.Errorf("capture: filter %q: %w", f.Expr, err)
	}
	return prog, nil
}

// emitTerms emits the term checks for one IP family, then that family's accept and reject
// returns (reject is marked here). On entry M[0] holds the L4 protocol and X the L4 offset.
// Each term falls through to the next on a mismatch; the last falls through to reject.
func (f Filter) emitTerms(b *builder, ipv6 bool, snap uint32, reject label) {
	accept := b.newLabel()
	for _, t := range f.Terms {
		if (t.Proto == ProtoICMP && ipv6) || (t.Proto == ProtoICMPv6 && !ipv6) {
			continue
		}
		fail, ports := b.newLabel(), b.newLabel()
		b.emit(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
		switch {
		case t.Proto != 0 && !t.HasPort:
			b.jumpIf(bpf.JumpEqual, uint32(t.Proto), accept, fail)
		case t.Proto != 0:
			b.jumpIf(bpf.JumpEqual, uint32(t.Proto), ports, fail)
		default:
			b.jumpIf(bpf.JumpEqual, uint32(ProtoUDP), ports, next)
			b.jumpIf(bpf.JumpEqual, uint32(ProtoTCP), ports, fail)
		}
		if t.HasPort {
			b.mark(ports)
			if t.Dir != Dst {
				b.emit(bpf.LoadIndirect{Off: 0, Size: 2})
				if t.Dir == Src {
					b.jumpIf(bpf.JumpEqual, uint32(t.Port), accept, fail)
				} else {
					b.jumpIf(bpf.JumpEqual, uint32(t.Port), accept, next)
				}
			}
			if t.Dir != Src {
				b.emit(bpf.LoadIndirect{Off: 2, Size: 2})
				b.jumpIf(bpf.JumpEqual, uint32(t.Port), accept, fail)
			}
		}
		b.mark(fail)
	}
	b.jump(reject)
	b.mark(accept)
	b.emit(bpf.RetConstant{Val: snap})
	b.mark(reject)
	b.emit(bpf.RetConstant{Val: 0})
}

// label names a program position for the builder; next means "the following instruction".
type label int

const next label = -1

type pendingJump struct {
	at       int
	yes, not label
	always   bool
}

// builder assembles a program with symbolic forward jumps.
type builder struct {
	prog  []bpf.Instruction
	jumps []pendingJump
	pos   []int
}

func (b *builder) newLabel() label {
	b.pos = append(b.pos, -1)
	return label(len(b.pos) - 1)
}

func (b *builder) mark(l label) { b.pos[l] = len(b.prog) }

func (b *builder) emit(i bpf.Instruction) { b.prog = append(b.prog, i) }

func (b *builder) jumpIf(cond bpf.JumpTest, val uint32, yes, not label) {
	b.jumps = append(b.jumps, pendingJump{at: len(b.prog), yes: yes, not: not})
	b.emit(bpf.JumpIf{Cond: cond, Val: val})
}

func (b *builder) jump(to label) {
	b.jumps = append(b.jumps, pendingJump{at: len(b.prog), yes: to, always: true})
	b.emit(bpf.Jump{})
}

// finish resolves the jumps.
func (b *builder) finish() ([]bpf.Instruction, error) {
	skip := func(at int, l label) (int, error) {
		if l == next {
			return 0, nil
		}
		target := b.pos[l]
		if target <= at {
			return 0, fmt.Errorf("bpf label %d unresolved or backward", l)
		}
		return target - at - 1, nil
	}
	for _, j := range b.jumps {
		yes, err := skip(j.at, j.yes)
		if err != nil {
			return nil, err
		}
		if j.always {
			b.prog[j.at] = bpf.Jump{Skip: uint32(yes)}
			continue
		}
		not, err := skip(j.at, j.not)
		if err != nil {
			return nil, err
		}
		if yes > 255 || not > 255 {
			return nil, fmt.Errorf("program too long for classic BPF jumps (%d instructions)", len(b.prog))
		}
		ji := b.prog[j.at].(bpf.JumpIf)
		ji.SkipTrue, ji.SkipFalse = uint8(yes), uint8(not)
		b.prog[j.at] = ji
	}
	if len(b.prog) > maxInstructions {
		return nil, fmt.Errorf("program has %d instructions, limit %d", len(b.prog), maxInstructions)
	}
	return b.prog, nil
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

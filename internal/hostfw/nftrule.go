package hostfw

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/google/nftables/xt"
)

// hookComment tags sesame's hook rule (nft userdata comment, or the iptables comment match).
const hookComment = "sesame"

// setFunc resolves a set or map of the rule's table by name; nil when it cannot be read.
type setFunc func(name string) *setModel

// translateRule turns an nftables rule into the model. family is the table's family.
func translateRule(pos int, r *nftables.Rule, family string, sets setFunc) rule {
	out := rule{pos: pos}
	if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && c == hookComment {
		out.sesame = true
	}
	regs := map[uint32]src{}
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			if e.SourceRegister {
				continue // meta set: a statement
			}
			regs[e.Register] = src{kind: metaSrc(e.Key)}
		case *expr.Payload:
			if e.OperationType != expr.PayloadLoad {
				continue // payload write: a statement
			}
			regs[e.DestRegister] = payloadSrc(e, family)
		case *expr.Ct:
			if e.SourceRegister {
				continue // ct set: a statement
			}
			k := srcUnknown
			switch e.Key {
			case expr.CtKeySTATE:
				k = srcCtState
			case expr.CtKeySTATUS:
				k = srcCtStatus
			}
			regs[e.Register] = src{kind: k}
		case *expr.Immediate: // data for a statement (meta mark set 0x1)
			regs[e.Register] = src{}
		case *expr.Bitwise:
			regs[e.DestRegister] = bitwiseSrc(regs[e.SourceRegister], e)
		case *expr.Cmp:
			out.conds = append(out.conds, cmpCond(regs[e.Register], e.Op, e.Data))
		case *expr.Range:
			out.conds = append(out.conds, rangeCond(regs[e.Register], e.Op, e.FromData, e.ToData))
		case *expr.Lookup:
			var m *setModel
			if sets != nil {
				m = sets(e.SetName)
			}
			switch {
			case e.IsDestRegSet && e.DestRegister == 0: // verdict map
				if m == nil || !m.isMap {
					out.branches = append(out.branches, branch{verdict: vUnknown, what: "verdict map " + e.SetName})
				} else {
					out.branches = append(out.branches, mapBranches(regs[e.SourceRegister], m)...)
				}
			case e.IsDestRegSet: // data map: loads a value we do not follow
				regs[e.DestRegister] = src{}
			case m == nil:
				out.conds = append(out.conds, anyCond)
			default:
				out.conds = append(out.conds, lookupCond(regs[e.SourceRegister], m, e.Invert))
			}
		case *expr.Verdict:
			if v := verdictOf(e.Kind); v != 0 {
				out.branches = append(out.branches, branch{verdict: v, target: e.Chain, what: verdictWhat(v)})
			}
		case *expr.Reject:
			out.branches = append(out.branches, branch{verdict: vDrop, what: "reject"})
		case *expr.Match:
			c, sesame := xtMatch(e)
			out.sesame = out.sesame || sesame
			if c != nil {
				out.conds = append(out.conds, c)
			}
		case *expr.Target:
			if b, ok := xtTarget(e.Name); ok {
				out.branches = append(out.branches, b)
			}
		case *expr.Counter, *expr.Log, *expr.Notrack, *expr.Dynset, *expr.Dup, *expr.FlowOffload:
			// Statements: no condition, no verdict.
		case *expr.Objref:
			if e.Type != 1 { // NFT_OBJECT_COUNTER; quotas and limits are conditions
				out.conds = append(out.conds, anyCond)
			}
		case *expr.Queue, *expr.SynProxy:
			out.branches = append(out.branches, branch{verdict: vUnknown, what: "queue or synproxy"})
		default:
			// Not modelled (limit, quota, connlimit, fib, exthdr, rt, hash, numgen, socket,
			// ...): it may be a condition, and it may load any register.
			clear(regs)
			out.conds = append(out.conds, anyCond)
		}
	}
	return out
}

func metaSrc(k expr.MetaKey) srcKind {
	switch k {
	case expr.MetaKeyL4PROTO:
		return srcL4proto
	case expr.MetaKeyNFPROTO:
		return srcNfproto
	case expr.MetaKeyMARK:
		return srcMark
	case expr.MetaKeyIIFNAME:
		return srcIifname
	case expr.MetaKeyIIF:
		return srcIif
	}
	return srcUnknown
}

func payloadSrc(e *expr.Payload, family string) src {
	switch {
	case e.Base == expr.PayloadBaseTransportHeader:
		return src{kind: srcTransport, off: e.Offset, n: e.Len}
	case e.Base == expr.PayloadBaseNetworkHeader && e.Len == 1 && e.Offset == 9 && family != "ip6":
		return src{kind: srcIPProto4}
	case e.Base == expr.PayloadBaseNetworkHeader && e.Len == 1 && e.Offset == 6 && family != "ip":
		return src{kind: srcIP6Nexthdr}
	}
	return src{}
}

// bitwiseSrc applies a bitwise and/xor to a register that holds a host-order 32-bit field.
func bitwiseSrc(s src, e *expr.Bitwise) src {
	if (s.kind != srcMark && s.kind != srcCtState && s.kind != srcCtStatus) || e.Len != 4 || len(e.Mask) != 4 || len(e.Xor) != 4 {
		return src{}
	}
	n := src{kind: s.kind, mask: make([]byte, 4), xor: make([]byte, 4)}
	for i := range 4 {
		m, x := byte(0xff), byte(0)
		if s.mask != nil {
			m, x = s.mask[i], s.xor[i]
		}
		// ((v & m) ^ x) & M ^ X == (v & (m & M)) ^ (x & M ^ X)
		n.mask[i] = m & e.Mask[i]
		n.xor[i] = x&e.Mask[i] ^ e.Xor[i]
	}
	return n
}

// xtMatch returns the condition of an xt match (nil: none) and whether it is sesame's comment.
func xtMatch(m *expr.Match) (cond, bool) {
	switch info := m.Info.(type) {
	case *xt.Comment:
		return nil, string(*info) == hookComment
	case *xt.Tcp:
		return portMatch(protoTCP, info.SrcPorts, info.DstPorts, info.InvFlags&xt.TcpInvDestPorts != 0,
			info.FlagsMask != 0 || info.Option != 0 || info.InvFlags&^xt.TcpInvDestPorts != 0), false
	case *xt.Udp:
		return portMatch(protoUDP, info.SrcPorts, info.DstPorts, info.InvFlags&xt.UdpInvDestPorts != 0,
			info.InvFlags&^xt.UdpInvDestPorts != 0), false
	case *xt.ConntrackMtinfo1:
		return conntrackMatch(&info.ConntrackMtinfoBase, uint32(info.StateMask)), false
	case *xt.ConntrackMtinfo2:
		return conntrackMatch(&info.ConntrackMtinfoBase, uint32(info.StateMask)), false
	case *xt.ConntrackMtinfo3:
		return conntrackMatch(&info.ConntrackMtinfoBase, uint32(info.StateMask)), false
	case *xt.Unknown:
		switch {
		case m.Name == "state" && len(*info) >= 4: // struct xt_state_info { unsigned int statemask; }
			mask, _ := nativeUint32(*info)
			return stateCond(mask), false
		case m.Name == "mark" && m.Rev == 1 && len(*info) >= 9: // struct xt_mark_mtinfo1 { u32 mark, mask; u8 invert; }
			v := binary.NativeEndian.Uint32((*info)[0:4])
			mask := binary.NativeEndian.Uint32((*info)[4:8])
			c := markCond(v, mask)
			if (*info)[8] != 0 {
				c = notCond(c)
			}
			return c, false
		}
	}
	return anyCond, false
}

// portMatch is the xt tcp or udp match: protocol proto, destination port in dst (inverted with
// inv), with other conditions (source ports other than all, flags) left undecided.
func portMatch(proto uint8, srcPorts, dst [2]uint16, inv, other bool) cond {
	pc, dc := protoCond(proto), dportCond(dst[0], dst[1])
	if inv {
		dc = notCond(dc)
	}
	undecided := other || srcPorts != [2]uint16{0, 0xffff}
	return func(p packet) tri {
		r := and(pc(p), dc(p))
		if undecided {
			r = and(r, maybe)
		}
		return r
	}
}

// conntrackMatch is the xt conntrack match: only its state test is decided.
func conntrackMatch(b *xt.ConntrackMtinfoBase, stateMask uint32) cond {
	flags := xt.ConntrackFlags(b.MatchFlags)
	var c cond = anyCond
	if flags&xt.ConntrackState != 0 {
		c = stateCond(stateMask)
		if xt.ConntrackFlags(b.InvertFlags)&xt.ConntrackState != 0 {
			c = notCond(c)
		}
	}
	if flags&^(xt.ConntrackState|xt.ConntrackStateAlias) != 0 {
		inner := c
		c = func(p packet) tri { return and(inner(p), maybe) }
	}
	return c
}

// nonTerminal lists xt targets that do not end the chain.
var nonTerminal = map[string]bool{
	"LOG": true, "NFLOG": true, "ULOG": true, "MARK": true, "CONNMARK": true, "CT": true,
	"NOTRACK": true, "TRACE": true, "AUDIT": true, "CLASSIFY": true, "DSCP": true, "TOS": true,
	"TCPMSS": true, "CHECKSUM": true, "SET": true, "TTL": true, "HL": true, "SECMARK": true,
	"CONNSECMARK": true, "IDLETIMER": true, "LED": true, "TCPOPTSTRIP": true,
}

// xtTarget maps an iptables target name to a branch; ok is false for targets that do not end
// the chain. Standard targets (ACCEPT, DROP, RETURN, chain names) are native verdicts in
// iptables-nft but appear by name in legacy rules.
func xtTarget(name string) (branch, bool) {
	switch name {
	case "ACCEPT":
		return branch{verdict: vAccept, what: "accept"}, true
	case "DROP":
		return branch{verdict: vDrop, what: "drop"}, true
	case "REJECT":
		return branch{verdict: vDrop, what: "reject"}, true
	case "RETURN":
		return branch{verdict: vReturn, what: "return"}, true
	}
	if nonTerminal[name] {
		return branch{}, false
	}
	return branch{verdict: vUnknown, what: "target " + name}, true
}

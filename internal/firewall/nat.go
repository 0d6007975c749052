package firewall

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NAT and forwarding objects (Config.NAT; see the package doc). Every grant is one element per
// set below, with the grant's own timeout, so NAT grants expire in the kernel like access
// grants.
const (
	setDnat4   = "dnat4"
	setDnat6   = "dnat6"
	setFwd4    = "fwd4"
	setFwd6    = "fwd6"
	setFwdAll4 = "fwdall4"
	setFwdAll6 = "fwdall6"
	setLnat4   = "lnat4"
	setLnat6   = "lnat6"

	setFwdGuard4 = "fwdguard4"
	setFwdGuard6 = "fwdguard6"

	chainNatPre   = "nat_pre"
	chainNatPost  = "nat_post"
	chainForward  = "forward"
	chainFwdGuard = "fwd_guard"
)

// Priorities of the NAT chains.
const (
	prioDstNat  = nftables.ChainPriority(-100) // dstnat
	prioSrcNat  = nftables.ChainPriority(100)  // srcnat
	prioForward = prioMark                     // mangle, as the input mark chain
	prioFwdGrd  = prioGuard                    // filter - 10, as the input guard chain
)

var (
	fwdType4   = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIPAddr, nftables.TypeInetService)
	fwdType6   = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeIP6Addr, nftables.TypeInetService)
	dnatData4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetService)
	dnatData6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetService)
	natComment = "sesame NAT grants (kernel-expired)"
)

// natObjects are the NAT sets and chains.
type natObjects struct {
	dnat4, dnat6, fwd4, fwd6, fwdall4, fwdall6, lnat4, lnat6 *nftables.Set
	guard4, guard6                                           *nftables.Set // Config.ForwardGuard
	pre, post, forward, guard                                *nftables.Chain
}

func newNatObjects(t *nftables.Table) natObjects {
	m := func(name string, key, data nftables.SetDatatype, concat bool) *nftables.Set {
		return &nftables.Set{Table: t, Name: name, KeyType: key, DataType: data, IsMap: true, HasTimeout: true,
			Concatenation: concat, Comment: natComment}
	}
	return natObjects{
		dnat4:   m(setDnat4, keyType4, dnatData4, true),
		dnat6:   m(setDnat6, keyType6, dnatData6, true),
		fwd4:    m(setFwd4, fwdType4, nftables.TypeIPAddr, true),
		fwd6:    m(setFwd6, fwdType6, nftables.TypeIP6Addr, true),
		fwdall4: m(setFwdAll4, nftables.TypeIPAddr, nftables.TypeIPAddr, false),
		fwdall6: m(setFwdAll6, nftables.TypeIP6Addr, nftables.TypeIP6Addr, false),
		lnat4: &nftables.Set{Table: t, Name: setLnat4, KeyType: fwdType4, HasTimeout: true, Concatenation: true,
			Comment: natComment},
		lnat6: &nftables.Set{Table: t, Name: setLnat6, KeyType: fwdType6, HasTimeout: true, Concatenation: true,
			Comment: natComment},
		guard4: &nftables.Set{Table: t, Name: setFwdGuard4, KeyType: nftables.TypeIPAddr, Interval: true,
			Comment: "forwarded destinations dropped unless granted"},
		guard6: &nftables.Set{Table: t, Name: setFwdGuard6, KeyType: nftables.TypeIP6Addr, Interval: true,
			Comment: "forwarded destinations dropped unless granted"},
		guard: &nftables.Chain{Name: chainFwdGuard, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(prioFwdGrd)},
		pre: &nftables.Chain{Name: chainNatPre, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioDstNat)},
		post: &nftables.Chain{Name: chainNatPost, Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityRef(prioSrcNat)},
		forward: &nftables.Chain{Name: chainForward, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(prioForward)},
	}
}

// sets returns the NAT grant sets, IPv4 then IPv6 of each.
func (o natObjects) sets() []*nftables.Set {
	return []*nftables.Set{o.dnat4, o.dnat6, o.fwd4, o.fwd6, o.fwdall4, o.fwdall6, o.lnat4, o.lnat6}
}

// allSets is sets and the forward guard's sets.
func (o natObjects) allSets() []*nftables.Set { return append(o.sets(), o.guard4, o.guard6) }

// chains returns the NAT chains.
func (o natObjects) chains() []*nftables.Chain {
	return []*nftables.Chain{o.pre, o.post, o.forward, o.guard}
}

// More 32-bit registers for the long forward keys.
const (
	reg32_03 = unix.NFT_REG32_03
	reg32_06 = unix.NFT_REG32_06
	reg32_10 = unix.NFT_REG32_10
)

// fam describes where a family's fields go.
type fam struct {
	nfproto         byte
	saddr, daddr    uint32 // network header offsets
	alen            uint32
	natFamily       uint32
	proto, port     uint32 // registers after saddr (src . proto . port keys)
	fproto, foport  uint32 // registers of the forward key: src . proto . orig port . daddr . dport
	fdaddr, fdport  uint32
	dnatProtoReg    uint32 // register of the port in the DNAT map's value
	snatRegDataSize int
}

var (
	fam4 = fam{nfproto: unix.NFPROTO_IPV4, saddr: 12, daddr: 16, alen: 4, natFamily: unix.NFPROTO_IPV4,
		proto: reg32_01, port: reg32_02, fproto: reg32_01, foport: reg32_02, fdaddr: reg32_03, fdport: reg32_04,
		dnatProtoReg: reg32_01, snatRegDataSize: 4}
	fam6 = fam{nfproto: unix.NFPROTO_IPV6, saddr: 8, daddr: 24, alen: 16, natFamily: unix.NFPROTO_IPV6,
		proto: reg32_04, port: reg32_05, fproto: reg32_04, foport: reg32_05, fdaddr: reg32_06, fdport: reg32_10,
		dnatProtoReg: reg32_04, snatRegDataSize: 16}
)

// isFam is `meta nfproto F`.
func (f fam) isFam() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{f.nfproto}},
	}
}

// srcKey loads `ip saddr . meta l4proto . th dport` into reg1.
func (f fam) srcKey() []expr.Any {
	return append(f.isFam(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.alen},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: f.proto},
		&expr.Payload{DestRegister: f.port, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	)
}

// fwdKey loads `ip saddr . meta l4proto . ct original proto-dst . ip daddr . th dport` into reg1:
// the source, the port it asked for (before DNAT) and where the packet goes now.
func (f fam) fwdKey() []expr.Any {
	return append(f.isFam(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.alen},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: f.fproto},
		&expr.Ct{Key: expr.CtKeyPROTODST, Direction: 0, Register: f.foport},
		&expr.Payload{DestRegister: f.fdaddr, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddr, Len: f.alen},
		&expr.Payload{DestRegister: f.fdport, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	)
}

// saddrKey loads `ip saddr` into reg1.
func (f fam) saddrKey() []expr.Any {
	return append(f.isFam(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.alen})
}

// dnatRule is `dnat ip to ip saddr . meta l4proto . th dport map @dnat4` (ip6 likewise).
func dnatRule(f fam, m *nftables.Set) []expr.Any {
	return append(f.srcKey(),
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: f.natFamily, RegAddrMin: reg1, RegProtoMin: f.dnatProtoReg, Specified: true},
	)
}

// lookupMark is `KEY @set meta mark set meta mark | MARK`.
func lookupMark(key []expr.Any, s *nftables.Set, mark uint32) []expr.Any {
	e := append(key, &expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID})
	return append(e, setMark(mark)...)
}

// snatRules are the two postrouting rules of one map whose value is the snat value:
//
//	KEY map @m == 255.255.255.255 masquerade
//	KEY map @m != 0.0.0.0 snat ip to KEY map @m
func snatRules(f fam, key func() []expr.Any, m *nftables.Set) [][]expr.Any {
	ones := make([]byte, f.snatRegDataSize)
	for i := range ones {
		ones[i] = 0xff
	}
	look := &expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID}
	masq := append(key(), look,
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: ones},
		&expr.Masq{})
	snat := append(key(), look,
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, f.snatRegDataSize)},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: f.natFamily, RegAddrMin: reg1})
	return [][]expr.Any{masq, snat}
}

// natRuleCounts are the rules per NAT chain (for Check), and the mark chain's extra rules.
const (
	natPreRules   = 2
	natPostRules  = 8
	forwardRules  = 4
	fwdGuardRules = 4
	markNATRules  = 2
	natSetsPerFam = 5
)

// addNAT queues the NAT sets (the grant sets kept with their elements, the guard sets
// rewritten from guard), chains and rules on c.
func addNAT(c *nftables.Conn, o objects, mark uint32, guard []netip.Prefix) error {
	n := o.nat
	for _, s := range n.allSets() {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	c.FlushSet(n.guard4)
	c.FlushSet(n.guard6)
	g4, g6 := prefixElements(guard)
	if len(g4) > 0 {
		if err := c.SetAddElements(n.guard4, g4); err != nil {
			return fmt.Errorf("forward guard: %w", err)
		}
	}
	if len(g6) > 0 {
		if err := c.SetAddElements(n.guard6, g6); err != nil {
			return fmt.Errorf("forward guard: %w", err)
		}
	}
	rule := func(ch *nftables.Chain, e []expr.Any) {
		c.AddRule(&nftables.Rule{Table: o.table, Chain: ch, Exprs: e})
	}
	c.AddChain(n.pre)
	c.FlushChain(n.pre)
	rule(n.pre, dnatRule(fam4, n.dnat4))
	rule(n.pre, dnatRule(fam6, n.dnat6))

	c.AddChain(n.forward)
	c.FlushChain(n.forward)
	rule(n.forward, lookupMark(fam4.fwdKey(), n.fwd4, mark))
	rule(n.forward, lookupMark(fam6.fwdKey(), n.fwd6, mark))
	rule(n.forward, lookupMark(fam4.saddrKey(), n.fwdall4, mark))
	rule(n.forward, lookupMark(fam6.saddrKey(), n.fwdall6, mark))

	// The forward guard: always there (with empty sets it drops nothing), like the input guard.
	c.AddChain(n.guard)
	c.FlushChain(n.guard)
	rule(n.guard, ctEstablished())
	rule(n.guard, markAccept(mark))
	rule(n.guard, daddrDrop(fam4, n.guard4))
	rule(n.guard, daddrDrop(fam6, n.guard6))

	c.AddChain(n.post)
	c.FlushChain(n.post)
	for _, r := range [][][]expr.Any{
		snatRules(fam4, fam4.fwdKey, n.fwd4), snatRules(fam6, fam6.fwdKey, n.fwd6),
		snatRules(fam4, fam4.saddrKey, n.fwdall4), snatRules(fam6, fam6.saddrKey, n.fwdall6),
	} {
		for _, e := range r {
			rule(n.post, e)
		}
	}
	return nil
}

// markNAT are the mark chain's rules for LocalNAT: the packet came in through the DNAT of a
// grant (its original port and its new address and port are the grant's).
func markNAT(o objects, mark uint32) [][]expr.Any {
	return [][]expr.Any{
		lookupMark(fam4.fwdKey(), o.nat.lnat4, mark),
		lookupMark(fam6.fwdKey(), o.nat.lnat6, mark),
	}
}

// daddrDrop is `ip daddr @fwdguard4 drop` (ip6 likewise).
func daddrDrop(f fam, s *nftables.Set) []expr.Any {
	return append(f.isFam(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddr, Len: f.alen},
		&expr.Lookup{SourceRegister: reg1, SetName: s.Name, SetID: s.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// prefixElements turns prefixes into interval-set elements per family: the first address, and
// the address after the last flagged as the interval's end (none when the prefix reaches the
// top of the address space).
func prefixElements(ps []netip.Prefix) (v4, v6 []nftables.SetElement) {
	for _, p := range ps {
		p = p.Masked()
		start := p.Addr()
		last := lastAddr(p)
		es := []nftables.SetElement{{Key: addrBytes(start)}}
		if next := last.Next(); next.IsValid() {
			es = append(es, nftables.SetElement{Key: addrBytes(next), IntervalEnd: true})
		}
		if start.Is4() {
			v4 = append(v4, es...)
		} else {
			v6 = append(v6, es...)
		}
	}
	return v4, v6
}

// lastAddr is the highest address of p (masked).
func lastAddr(p netip.Prefix) netip.Addr {
	b := addrBytes(p.Addr())
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b))
	}
	return netip.AddrFrom16([16]byte(b))
}

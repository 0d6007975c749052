package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Names of the objects in sesame's table.
const (
	setGrants4 = "grants4"
	setGrants6 = "grants6"
	// The destination grant sets (Grant.Dst): source . destination . proto . port.
	setGrantsD4 = "grantsd4"
	setGrantsD6 = "grantsd6"
	setGuarded  = "guarded"
	chainMark   = "mark"
	chainGuard  = "guard"
	// hostComment tags the rule sesame inserts into a host chain (nft userdata comment, and
	// the iptables comment match), so it can be found and removed.
	hostComment = "sesame"
)

// Priorities of sesame's base chains (both hook input). See the package doc.
const (
	prioMark  = nftables.ChainPriority(-150) // mangle: after conntrack (-200), before any filter
	prioGuard = nftables.ChainPriority(-10)  // filter - 10: before the host's filter chains (0)
)

var (
	keyType4  = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	keyType6  = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
	keyPort   = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
	keyTypeD4 = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	keyTypeD6 = nftables.MustConcatSetType(nftables.TypeIP6Addr, nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
)

// objects are the nftables objects of sesame's table. They are plain values; building them
// touches nothing.
type objects struct {
	table    *nftables.Table
	grants4  *nftables.Set
	grants6  *nftables.Set
	grantsd4 *nftables.Set // grants with a destination (Grant.Dst)
	grantsd6 *nftables.Set
	guarded  *nftables.Set
	mark     *nftables.Chain
	guard    *nftables.Chain
	nat      natObjects // used with Config.NAT
}

func newObjects(tableName string) objects {
	t := &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}
	return objects{
		table: t,
		nat:   newNatObjects(t),
		grants4: &nftables.Set{Table: t, Name: setGrants4, KeyType: keyType4, HasTimeout: true,
			Concatenation: true, Comment: "sesame grants (kernel-expired)"},
		grants6: &nftables.Set{Table: t, Name: setGrants6, KeyType: keyType6, HasTimeout: true,
			Concatenation: true, Comment: "sesame grants (kernel-expired)"},
		grantsd4: &nftables.Set{Table: t, Name: setGrantsD4, KeyType: keyTypeD4, HasTimeout: true,
			Concatenation: true, Comment: "sesame grants to one destination (kernel-expired)"},
		grantsd6: &nftables.Set{Table: t, Name: setGrantsD6, KeyType: keyTypeD6, HasTimeout: true,
			Concatenation: true, Comment: "sesame grants to one destination (kernel-expired)"},
		guarded: &nftables.Set{Table: t, Name: setGuarded, KeyType: keyPort, Concatenation: true,
			Comment: "ports dropped unless granted"},
		mark: &nftables.Chain{Name: chainMark, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(prioMark)},
		guard: &nftables.Chain{Name: chainGuard, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(prioGuard)},
	}
}

// Register numbers: NFT_REG_1 is the 16-byte register made of the 32-bit registers 8-11;
// concatenated lookups read consecutive 32-bit registers starting at the source register.
const (
	reg1     = unix.NFT_REG_1
	reg32_01 = unix.NFT_REG32_01
	reg32_02 = unix.NFT_REG32_02
	reg32_04 = unix.NFT_REG32_04
	reg32_05 = unix.NFT_REG32_05
)

// markRule4 is, in nft syntax:
//
//	meta nfproto ipv4 ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | MARK
func markRule4(o objects, mark uint32) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_01},
		&expr.Payload{DestRegister: reg32_02, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: o.grants4.Name, SetID: o.grants4.ID},
	}
	return append(e, setMark(mark)...)
}

// markRule6 is markRule4 for IPv6 (ip6 saddr is 16 bytes, so proto and port move to the 32-bit
// registers after it).
func markRule6(o objects, mark uint32) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_04},
		&expr.Payload{DestRegister: reg32_05, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: o.grants6.Name, SetID: o.grants6.ID},
	}
	return append(e, setMark(mark)...)
}

// More 32-bit registers for the destination keys.
const (
	reg32_08 = unix.NFT_REG32_08
	reg32_09 = unix.NFT_REG32_09
)

// markRuleD4 is, in nft syntax:
//
//	meta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport @grantsd4 meta mark set meta mark | MARK
func markRuleD4(o objects, mark uint32) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Payload{DestRegister: reg32_01, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_02},
		&expr.Payload{DestRegister: reg32_03, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: o.grantsd4.Name, SetID: o.grantsd4.ID},
	}
	return append(e, setMark(mark)...)
}

// markRuleD6 is markRuleD4 for IPv6 (saddr in registers 0-3, daddr 4-7, proto 8, port 9).
func markRuleD6(o objects, mark uint32) []expr.Any {
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16},
		&expr.Payload{DestRegister: reg32_04, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_08},
		&expr.Payload{DestRegister: reg32_09, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: o.grantsd6.Name, SetID: o.grantsd6.ID},
	}
	return append(e, setMark(mark)...)
}

// setMark is `meta mark set meta mark | MARK`: mark = (mark & ^MARK) ^ MARK.
func setMark(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^mark), Xor: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1},
	}
}

// markAccept is `meta mark & MARK == MARK accept`, the rule for the guard chain and for the host
// chain.
func markAccept(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mark), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// ctEstablished is `ct state established,related accept`.
func ctEstablished() []expr.Any {
	bits := expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED
	return []expr.Any{
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// loopbackAccept is `iifname "lo" accept`.
func loopbackAccept() []expr.Any {
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, "lo")
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: name},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// guardDrop is `meta l4proto . th dport @guarded drop`.
func guardDrop(o objects) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Payload{DestRegister: reg32_01, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, SetName: o.guarded.Name, SetID: o.guarded.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// commentData is the rule userdata nft shows as `comment "sesame"`.
func commentData() []byte {
	return userdata.AppendString(nil, userdata.TypeComment, hostComment)
}

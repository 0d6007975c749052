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
	reg32_00 = unix.NFT_REG32_00 // the first 32-bit register of reg1
	reg32_01 = unix.NFT_REG32_01
	reg32_02 = unix.NFT_REG32_02
	reg32_04 = unix.NFT_REG32_04
	reg32_05 = unix.NFT_REG32_05
)

// markRule4 is, in nft syntax:
//
//	meta nfproto ipv4 ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | MARK
func markRule4(o objects, mark uint32) []expr.Any {
	return lookupMark(fam4.srcKey(), o.grants4, mark)
}

// markRule6 is markRule4 for ip6 saddr and @grants6.
func markRule6(o objects, mark uint32) []expr.Any {
	return lookupMark(fam6.srcKey(), o.grants6, mark)
}

// markRuleD4 is, in nft syntax:
//
//	meta nfproto ipv4 ip saddr . ip daddr . meta l4proto . th dport @grantsd4 meta mark set meta mark | MARK
func markRuleD4(o objects, mark uint32) []expr.Any {
	return lookupMark(fam4.dstKey(), o.grantsd4, mark)
}

// markRuleD6 is markRuleD4 for ip6 saddr . ip6 daddr and @grantsd6.
func markRuleD6(o objects, mark uint32) []expr.Any {
	return lookupMark(fam6.dstKey(), o.grantsd6, mark)
}

// dstKey loads `ip saddr . ip daddr . meta l4proto . th dport` into reg1. Each field takes whole
// 32-bit registers from NFT_REG32_00 on (an address alen/4 of them; proto and port one each):
// for IPv4 saddr 0, daddr 1, proto 2, port 3; for IPv6 saddr 0-3, daddr 4-7, proto 8, port 9.
func (f fam) dstKey() []expr.Any {
	words := f.alen / 4
	return append(f.isFam(),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: f.saddr, Len: f.alen},
		&expr.Payload{DestRegister: reg32_00 + words, Base: expr.PayloadBaseNetworkHeader, Offset: f.daddr, Len: f.alen},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32_00 + 2*words},
		&expr.Payload{DestRegister: reg32_00 + 2*words + 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	)
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

package hostfw

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/sesame-spa/sesame/internal/firewall"
)

// Expression builders, shaped as the kernel returns what nft and iptables-nft 1.8.9 write
// (checked by dumping real rules with google/nftables).

func rl(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case expr.Any:
			out = append(out, p)
		case []expr.Any:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("rl: %T", p))
		}
	}
	return out
}

func l4(proto byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
}

func tcpDport(port uint16) []expr.Any {
	return append(l4(protoTCP),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)})
}

// ctState is "ct state & mask != 0" (nft's form of ct state { established, related }).
func ctState(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func iifname(name string) []expr.Any {
	b := make([]byte, 16)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b},
	}
}

func markIs(m uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(m), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(m)},
	}
}

// saddr4 is "ip saddr A.B.C.D" as nft writes it in an inet table, a condition the model
// leaves undecided for IPv4.
func saddr4(a ...byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a},
	}
}

func lookup(set string) *expr.Lookup { return &expr.Lookup{SourceRegister: 1, SetName: set} }

func vmap(set string) *expr.Lookup {
	return &expr.Lookup{SourceRegister: 1, SetName: set, IsDestRegSet: true, DestRegister: 0}
}

var (
	accept = &expr.Verdict{Kind: expr.VerdictAccept}
	drop   = &expr.Verdict{Kind: expr.VerdictDrop}
	reject = &expr.Reject{Type: 2, Code: 3}
	ret    = &expr.Verdict{Kind: expr.VerdictReturn}
)

func jump(c string) *expr.Verdict    { return &expr.Verdict{Kind: expr.VerdictJump, Chain: c} }
func goTo(c string) *expr.Verdict    { return &expr.Verdict{Kind: expr.VerdictGoto, Chain: c} }
func xtTgt(name string) *expr.Target { return &expr.Target{Name: name} }

// sesameHook is the rule firewall's nft hook inserts.
func sesameHook() *nftables.Rule {
	return &nftables.Rule{
		Exprs:    rl(markIs(firewall.DefaultMark), accept),
		UserData: userdata.AppendString(nil, userdata.TypeComment, hookComment),
	}
}

func baseChain(t *nftables.Table, name string, prio int32, policy nftables.ChainPolicy) *nftables.Chain {
	return &nftables.Chain{
		Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput,
		Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &policy,
	}
}

func regChain(t *nftables.Table, name string) *nftables.Chain {
	return &nftables.Chain{Name: name, Table: t}
}

const (
	pDrop   = nftables.ChainPolicyDrop
	pAccept = nftables.ChainPolicyAccept
)

// summary formats a finding for comparison in tests.
func summary(f Finding) string {
	s := fmt.Sprintf("%s %s %s %s %s %q", f.Level, f.Kind, f.Family, f.Table, f.Chain, f.Why)
	if f.Level == Hook {
		s += " hook=" + f.Hook.String()
	}
	if f.Binary != "" {
		s += " bin=" + f.Binary
	}
	if f.Manager != "" {
		s += " by=" + f.Manager
	}
	if f.Hooked {
		s += " hooked"
	}
	if f.BySesame {
		s += " sesame"
	}
	return s
}

func summaries(r Report) string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, summary(f))
	}
	return strings.Join(s, "\n")
}

func exposedString(e []Exposed) string {
	var s []string
	for _, x := range e {
		s = append(s, x.String())
	}
	return strings.Join(s, ", ")
}

func ports(t interface{ Fatal(...any) }, s string) []firewall.Port {
	p, err := firewall.ParsePorts(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// saveToRestore turns `iptables -S` output into iptables-restore input for the filter table.
func saveToRestore(save string) string {
	var b strings.Builder
	b.WriteString("*filter\n")
	var rules []string
	for _, line := range strings.Split(strings.TrimSpace(save), "\n") {
		f := strings.Fields(line)
		switch f[0] {
		case "-P":
			fmt.Fprintf(&b, ":%s %s [0:0]\n", f[1], f[2])
		case "-N":
			fmt.Fprintf(&b, ":%s - [0:0]\n", f[1])
		default:
			rules = append(rules, line)
		}
	}
	for _, r := range rules {
		b.WriteString(r + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

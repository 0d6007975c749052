package nfevents

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func str(s string) []byte  { return append([]byte(s), 0) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func attrs(t testing.TB, as ...netlink.Attribute) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nfMsg builds an nftables message of type msg: nfgenmsg for family, then body.
func nfMsg(msg uint8, family uint8, body []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | uint16(msg))},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, body...),
	}
}

// xtComment is a rule expression list holding a counter and an xt comment match, as
// iptables-nft encodes `-m comment --comment text`.
func xtComment(t testing.TB, text string) []byte {
	info := make([]byte, 256) // struct xt_comment_info
	copy(info, text)
	elem := func(name string, data []byte) netlink.Attribute {
		return netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: attrs(t,
			netlink.Attribute{Type: unix.NFTA_EXPR_NAME, Data: str(name)},
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA, Data: data})}
	}
	return attrs(t,
		elem("counter", attrs(t, netlink.Attribute{Type: 1, Data: be64(0)})),
		elem("match", attrs(t,
			netlink.Attribute{Type: nftaMatchName, Data: str("comment")},
			netlink.Attribute{Type: 2, Data: be32(0)},
			netlink.Attribute{Type: nftaMatchInfo, Data: info})))
}

func TestParse(t *testing.T) {
	a := func(typ uint16, data []byte) netlink.Attribute { return netlink.Attribute{Type: typ, Data: data} }
	comment := userdata.AppendString(userdata.AppendUint32(nil, userdata.TypeEbtablesPolicy, 7), userdata.TypeComment, "sesame")
	tests := []struct {
		name string
		m    netlink.Message
		want Event
	}{
		{"new table", nfMsg(unix.NFT_MSG_NEWTABLE, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_TABLE_NAME, str("sesame")), a(unix.NFTA_TABLE_FLAGS, be32(0)),
			a(unix.NFTA_TABLE_USE, be32(3)), a(nftaTableHandle, be64(9)))),
			Event{Kind: NewTable, Family: unix.NFPROTO_INET, Table: "sesame", Handle: 9}},
		{"del table", nfMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_IPV4, attrs(t, a(unix.NFTA_TABLE_NAME, str("filter")))),
			Event{Kind: DelTable, Family: unix.NFPROTO_IPV4, Table: "filter"}},
		{"destroy table", nfMsg(msgDestroyTable, unix.NFPROTO_IPV6, attrs(t, a(unix.NFTA_TABLE_NAME, str("x")))),
			Event{Kind: DelTable, Family: unix.NFPROTO_IPV6, Table: "x"}},
		{"new chain", nfMsg(unix.NFT_MSG_NEWCHAIN, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_CHAIN_TABLE, str("sesame")), a(unix.NFTA_CHAIN_HANDLE, be64(1)), a(unix.NFTA_CHAIN_NAME, str("mark")))),
			Event{Kind: NewChain, Family: unix.NFPROTO_INET, Table: "sesame", Chain: "mark", Handle: 1}},
		{"destroy chain", nfMsg(msgDestroyChain, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_CHAIN_TABLE, str("sesame")), a(unix.NFTA_CHAIN_NAME, str("guard")))),
			Event{Kind: DelChain, Family: unix.NFPROTO_INET, Table: "sesame", Chain: "guard"}},
		{"del set", nfMsg(unix.NFT_MSG_DELSET, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_TABLE, str("sesame")), a(unix.NFTA_SET_NAME, str("grants4")), a(nftaSetHandle, be64(4)))),
			Event{Kind: DelSet, Family: unix.NFPROTO_INET, Table: "sesame", Set: "grants4", Handle: 4}},
		{"new set", nfMsg(unix.NFT_MSG_NEWSET, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_TABLE, str("sesame")), a(unix.NFTA_SET_NAME, str("guarded")))),
			Event{Kind: NewSet, Family: unix.NFPROTO_INET, Table: "sesame", Set: "guarded"}},
		{"del set elem", nfMsg(unix.NFT_MSG_DELSETELEM, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_ELEM_LIST_TABLE, str("sesame")), a(unix.NFTA_SET_ELEM_LIST_SET, str("grants6")),
			a(unix.NLA_F_NESTED|unix.NFTA_SET_ELEM_LIST_ELEMENTS, nil))),
			Event{Kind: DelSetElem, Family: unix.NFPROTO_INET, Table: "sesame", Set: "grants6"}},
		{"new set elem", nfMsg(unix.NFT_MSG_NEWSETELEM, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_ELEM_LIST_TABLE, str("sesame")), a(unix.NFTA_SET_ELEM_LIST_SET, str("grants4")))),
			Event{Kind: NewSetElem, Family: unix.NFPROTO_INET, Table: "sesame", Set: "grants4"}},
		{"rule with userdata comment", nfMsg(unix.NFT_MSG_DELRULE, unix.NFPROTO_IPV4, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("filter")), a(unix.NFTA_RULE_CHAIN, str("INPUT")),
			a(unix.NFTA_RULE_HANDLE, be64(42)), a(unix.NFTA_RULE_USERDATA, comment))),
			Event{Kind: DelRule, Family: unix.NFPROTO_IPV4, Table: "filter", Chain: "INPUT", Handle: 42, Comment: "sesame"}},
		{"rule with xt comment", nfMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("filter")), a(unix.NFTA_RULE_CHAIN, str("INPUT")),
			a(unix.NFTA_RULE_HANDLE, be64(2)), a(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, xtComment(t, "from iptables")))),
			Event{Kind: NewRule, Family: unix.NFPROTO_IPV4, Table: "filter", Chain: "INPUT", Handle: 2, Comment: "from iptables"}},
		{"userdata comment wins", nfMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("filter")), a(unix.NFTA_RULE_CHAIN, str("INPUT")),
			a(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, xtComment(t, "xt")), a(unix.NFTA_RULE_USERDATA, comment))),
			Event{Kind: NewRule, Family: unix.NFPROTO_IPV4, Table: "filter", Chain: "INPUT", Comment: "sesame"}},
		{"truncated userdata", nfMsg(unix.NFT_MSG_DELRULE, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("t")), a(unix.NFTA_RULE_CHAIN, str("c")),
			a(unix.NFTA_RULE_USERDATA, []byte{byte(userdata.TypeComment), 20, 'x'}))),
			Event{Kind: DelRule, Family: unix.NFPROTO_INET, Table: "t", Chain: "c"}},
		{"destroy rule", nfMsg(msgDestroyRule, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("t")), a(unix.NFTA_RULE_CHAIN, str("c")), a(unix.NFTA_RULE_HANDLE, be64(5)))),
			Event{Kind: DelRule, Family: unix.NFPROTO_INET, Table: "t", Chain: "c", Handle: 5}},
		{"destroy set and elements", nfMsg(msgDestroySet, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_TABLE, str("t")), a(unix.NFTA_SET_NAME, str("s")))),
			Event{Kind: DelSet, Family: unix.NFPROTO_INET, Table: "t", Set: "s"}},
		{"destroy set elem", nfMsg(msgDestroySetElem, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_SET_ELEM_LIST_TABLE, str("t")), a(unix.NFTA_SET_ELEM_LIST_SET, str("s")))),
			Event{Kind: DelSetElem, Family: unix.NFPROTO_INET, Table: "t", Set: "s"}},
		{"new gen", nfMsg(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, attrs(t,
			a(unix.NFTA_GEN_ID, be32(77)), a(unix.NFTA_GEN_PROC_PID, be32(1234)), a(unix.NFTA_GEN_PROC_NAME, str("nft")))),
			Event{Kind: NewGen, Gen: 77, PID: 1234, ProcName: "nft"}},
		{"new gen without process", nfMsg(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, attrs(t, a(unix.NFTA_GEN_ID, be32(1)))),
			Event{Kind: NewGen, Gen: 1}},
	}
	for _, tt := range tests {
		got, ok, err := Parse(tt.m)
		if err != nil || !ok {
			t.Errorf("%s: ok %v, err %v", tt.name, ok, err)
			continue
		}
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseIgnores(t *testing.T) {
	for name, m := range map[string]netlink.Message{
		"other subsystem": {Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | unix.NFT_MSG_DELTABLE)},
			Data: []byte{2, 0, 0, 0}},
		"netlink done":  {Header: netlink.Header{Type: netlink.Done}},
		"get table":     nfMsg(unix.NFT_MSG_GETTABLE, unix.NFPROTO_INET, nil),
		"new object":    nfMsg(unix.NFT_MSG_NEWOBJ, unix.NFPROTO_INET, nil),
		"del flowtable": nfMsg(unix.NFT_MSG_DELFLOWTABLE, unix.NFPROTO_INET, nil),
		"trace":         nfMsg(unix.NFT_MSG_TRACE, unix.NFPROTO_INET, nil),
	} {
		if ev, ok, err := Parse(m); ok || err != nil {
			t.Errorf("%s: got %v, %v, %v; want not ok, no error", name, ev, ok, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	a := func(typ uint16, data []byte) netlink.Attribute { return netlink.Attribute{Type: typ, Data: data} }
	for name, m := range map[string]netlink.Message{
		"no nfgenmsg": {Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_DELTABLE)},
			Data: []byte{1, 0}},
		"table without name":   nfMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, nil),
		"chain without name":   nfMsg(unix.NFT_MSG_DELCHAIN, unix.NFPROTO_INET, attrs(t, a(unix.NFTA_CHAIN_TABLE, str("t")))),
		"rule without chain":   nfMsg(unix.NFT_MSG_DELRULE, unix.NFPROTO_INET, attrs(t, a(unix.NFTA_RULE_TABLE, str("t")))),
		"set elem without set": nfMsg(unix.NFT_MSG_DELSETELEM, unix.NFPROTO_INET, attrs(t, a(unix.NFTA_SET_ELEM_LIST_TABLE, str("t")))),
		"gen without id":       nfMsg(unix.NFT_MSG_NEWGEN, 0, attrs(t, a(unix.NFTA_GEN_PROC_NAME, str("nft")))),
		"short handle": nfMsg(unix.NFT_MSG_DELRULE, unix.NFPROTO_INET, attrs(t,
			a(unix.NFTA_RULE_TABLE, str("t")), a(unix.NFTA_RULE_CHAIN, str("c")), a(unix.NFTA_RULE_HANDLE, be32(1)))),
		"truncated attribute": nfMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, []byte{12, 0, 1, 0, 'a'}),
	} {
		ev, ok, err := Parse(m)
		if err == nil || ok {
			t.Errorf("%s: got %v, %v, %v; want an error", name, ev, ok, err)
		} else if !strings.HasPrefix(err.Error(), "nfevents: decode ") {
			t.Errorf("%s: error %q lacks context", name, err)
		}
	}
}

func TestEventString(t *testing.T) {
	for _, tt := range []struct {
		e    Event
		want string
	}{
		{Event{Kind: DelRule, Family: unix.NFPROTO_INET, Table: "sesame", Chain: "mark", Handle: 4, Comment: "x"},
			`DelRule inet sesame/mark handle 4 comment "x"`},
		{Event{Kind: DelSet, Family: unix.NFPROTO_IPV4, Table: "t", Set: "s"}, "DelSet ip t/s"},
		{Event{Kind: NewGen, Gen: 5, PID: 9, ProcName: "nft"}, "NewGen 5 by 9 (nft)"},
		{Event{Kind: Overrun}, "Overrun"},
		{Event{Kind: Kind(99), Family: 42, Table: "t"}, "Kind(99) family42 t"},
	} {
		if got := tt.e.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// FuzzParse feeds Parse a header type (2 bytes, little endian) and data. Seeds: built messages
// and the kernel's from testdata.
func FuzzParse(f *testing.F) {
	seed := func(m netlink.Message) {
		f.Add(append(binary.LittleEndian.AppendUint16(nil, uint16(m.Header.Type)), m.Data...))
	}
	a := func(typ uint16, data []byte) netlink.Attribute { return netlink.Attribute{Type: typ, Data: data} }
	seed(nfMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, attrs(f, a(unix.NFTA_TABLE_NAME, str("sesame")))))
	seed(nfMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, attrs(f,
		a(unix.NFTA_RULE_TABLE, str("filter")), a(unix.NFTA_RULE_CHAIN, str("INPUT")), a(unix.NFTA_RULE_HANDLE, be64(2)),
		a(unix.NFTA_RULE_USERDATA, userdata.AppendString(nil, userdata.TypeComment, "c")),
		a(unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS, xtComment(f, "xt")))))
	seed(nfMsg(unix.NFT_MSG_NEWGEN, 0, attrs(f, a(unix.NFTA_GEN_ID, be32(1)), a(unix.NFTA_GEN_PROC_NAME, str("nft")))))
	// And the kernel's own messages from testdata.
	for _, file := range []string{"nft.nlmsg", "iptables.nlmsg"} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		raw, err := syscall.ParseNetlinkMessage(b)
		if err != nil {
			f.Fatal(err)
		}
		for _, r := range raw {
			seed(netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(r.Header.Type)}, Data: r.Data})
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 2 {
			return
		}
		m := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(binary.LittleEndian.Uint16(b))}, Data: b[2:]}
		ev, ok, err := Parse(m)
		switch {
		case err != nil && (ok || ev != Event{}):
			t.Fatalf("error %v with ok %v and event %v", err, ok, ev)
		case !ok && ev != Event{}:
			t.Fatalf("not ok but event %v", ev)
		case ok && (ev.Kind < NewTable || ev.Kind > NewGen):
			t.Fatalf("kind %v", ev.Kind)
		case ok && ev.Kind != NewGen && ev.Table == "":
			t.Fatalf("no table in %v", ev)
		}
	})
}

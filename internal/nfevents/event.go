package nfevents

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind says what an Event reports.
type Kind int

// The kinds of Event. The zero Kind is not a valid event.
const (
	_          Kind = iota
	NewTable        // NFT_MSG_NEWTABLE: a table was added or updated
	DelTable        // NFT_MSG_DELTABLE (or DESTROYTABLE): a table was deleted
	NewChain        // NFT_MSG_NEWCHAIN
	DelChain        // NFT_MSG_DELCHAIN (or DESTROYCHAIN)
	NewRule         // NFT_MSG_NEWRULE
	DelRule         // NFT_MSG_DELRULE (or DESTROYRULE)
	NewSet          // NFT_MSG_NEWSET
	DelSet          // NFT_MSG_DELSET (or DESTROYSET)
	NewSetElem      // NFT_MSG_NEWSETELEM: elements were added to (or refreshed in) a set
	DelSetElem      // NFT_MSG_DELSETELEM (or DESTROYSETELEM): elements were deleted from a set
	NewGen          // NFT_MSG_NEWGEN: a transaction was committed; it ends each transaction's events
	Overrun         // the receive buffer overflowed (ENOBUFS): events were lost, re-check everything
)

var kindNames = [...]string{
	NewTable: "NewTable", DelTable: "DelTable", NewChain: "NewChain", DelChain: "DelChain",
	NewRule: "NewRule", DelRule: "DelRule", NewSet: "NewSet", DelSet: "DelSet",
	NewSetElem: "NewSetElem", DelSetElem: "DelSetElem", NewGen: "NewGen", Overrun: "Overrun",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Event is one ruleset change. Which fields are set depends on Kind: Table for every kind but
// NewGen and Overrun, Chain for chain and rule events, Set for set and set-element events,
// Comment for rules that carry one, Gen, PID and ProcName for NewGen.
type Event struct {
	Kind   Kind
	Family uint8 // NFPROTO_* of the table (unix.NFPROTO_INET, NFPROTO_IPV4, ...); 0 for NewGen
	Table  string
	Chain  string
	Set    string
	// Handle is the kernel's handle of the object the event is about: the rule's for rule
	// events, the chain's, set's or table's for theirs. 0 if the kernel did not send one.
	Handle uint64
	// Comment is a rule's comment: the TypeComment entry of its userdata (what `nft ... comment
	// "x"` and google/nftables/userdata store) or, failing that, the text of an xt "comment"
	// match (what iptables-nft stores for `-m comment --comment x`).
	Comment string
	// Gen is the ruleset generation a NewGen event announces.
	Gen uint32
	// PID is NFTA_GEN_PROC_PID: the kernel's task id (in the initial PID namespace) of the
	// thread that committed the transaction. It is a thread id, which equals the process id
	// only for single-threaded programs such as nft; it is not a netlink port id.
	PID uint32
	// ProcName is NFTA_GEN_PROC_NAME: that thread's command name (at most 15 bytes).
	ProcName string
}

// String formats e for logs, for example `DelRule inet sesame/mark handle 4 comment "x"`.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	switch e.Kind {
	case Overrun:
		return b.String()
	case NewGen:
		fmt.Fprintf(&b, " %d by %d (%s)", e.Gen, e.PID, e.ProcName)
		return b.String()
	}
	fmt.Fprintf(&b, " %s %s", familyName(e.Family), e.Table)
	switch {
	case e.Chain != "":
		b.WriteString("/" + e.Chain)
	case e.Set != "":
		b.WriteString("/" + e.Set)
	}
	if e.Handle != 0 {
		fmt.Fprintf(&b, " handle %d", e.Handle)
	}
	if e.Comment != "" {
		fmt.Fprintf(&b, " comment %q", e.Comment)
	}
	return b.String()
}

// familyName names an NFPROTO_* value the way nft does.
func familyName(f uint8) string {
	switch f {
	case unix.NFPROTO_INET:
		return "inet"
	case unix.NFPROTO_IPV4:
		return "ip"
	case unix.NFPROTO_ARP:
		return "arp"
	case unix.NFPROTO_NETDEV:
		return "netdev"
	case unix.NFPROTO_BRIDGE:
		return "bridge"
	case unix.NFPROTO_IPV6:
		return "ip6"
	}
	return fmt.Sprintf("family%d", f)
}

package hostfw

import (
	"fmt"
	"slices"

	"github.com/sesame-spa/sesame/internal/firewall"
)

// Kind says what kind of chain a Finding is about.
type Kind int

const (
	NftChain        Kind = iota + 1 // a native nftables base chain
	IPTablesNft                     // a chain of iptables-nft (table ip, named after an iptables table)
	IP6TablesNft                    // a chain of ip6tables-nft (table ip6)
	IPTablesLegacy                  // the legacy (x_tables) IPv4 filter table's INPUT chain
	IP6TablesLegacy                 // the legacy IPv6 filter table's INPUT chain
)

func (k Kind) String() string {
	switch k {
	case NftChain:
		return "nft"
	case IPTablesNft:
		return "iptables-nft"
	case IP6TablesNft:
		return "ip6tables-nft"
	case IPTablesLegacy:
		return "iptables-legacy"
	case IP6TablesLegacy:
		return "ip6tables-legacy"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Level says what a Finding asks of sesame.
type Level int

const (
	// Hook: the chain may drop a granted packet; sesame must install Hook (it may be there
	// already: BySesame).
	Hook Level = iota + 1
	// Accepted: a rule that is not sesame's already accepts marked packets before anything in
	// the chain may drop them. Nothing to do.
	Accepted
	// Error: the chain may drop a granted packet and sesame cannot hook it by itself; Fix says
	// what the operator can do.
	Error
)

func (l Level) String() string {
	switch l {
	case Hook:
		return "hook"
	case Accepted:
		return "accepted"
	case Error:
		return "error"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Finding is one host chain that may drop a packet sesame grants.
type Finding struct {
	Level  Level
	Kind   Kind
	Family string // "ip", "ip6" or "inet"
	Table  string
	Chain  string
	// Priority is the chain's hook priority (the legacy filter table's is 0).
	Priority int
	// Why says what may drop: "policy drop", "rule 4: drop", "rule 2: reject",
	// "rule 1: jump ufw-before-input: rule 3: jump ufw-not-local: rule 4: drop".
	Why string
	// Manager names the program that manages the chain, when recognised: "ufw", "firewalld".
	Manager string
	// Hooked: a marked packet is certainly accepted before anything in the chain may drop it.
	Hooked bool
	// BySesame: the chain holds sesame's own hook rule (comment "sesame").
	BySesame bool
	// Hook is what sesame should hook for this chain (Level Hook); zero for the other levels.
	// For iptables kinds it is the "iptables" kind: run Binary (and its IPv6 twin).
	Hook firewall.HostChain
	// Binary is the command that edits the chain, for the iptables kinds: "iptables-nft",
	// "ip6tables-nft", "iptables-legacy" or "ip6tables-legacy". Empty for NftChain.
	Binary string
	// Note is a caveat for the operator, such as a manager's reload removing the hook.
	Note string
	// Fix says what the operator can do, for Level Error.
	Fix string
}

// String formats f as one log line.
func (f Finding) String() string {
	s := fmt.Sprintf("%s %s %s %s %s (priority %d): %s", f.Level, f.Kind, f.Family, f.Table, f.Chain, f.Priority, f.Why)
	if f.Manager != "" {
		s += "; managed by " + f.Manager
	}
	if f.Level == Hook {
		s += "; hook: " + f.Hook.String()
		if f.Binary != "" {
			s += " (" + f.Binary + ")"
		}
	}
	if f.Note != "" {
		s += "; " + f.Note
	}
	if f.Fix != "" {
		s += "; fix: " + f.Fix
	}
	return s
}

// Report is the result of Detect.
type Report struct {
	// Findings lists every examined chain that may drop a granted packet, IPv4 families
	// first, then by table, priority and chain.
	Findings []Finding
	// Notes are facts about what was not examined ("netdev filter ingress: not examined").
	Notes []string

	chains []*chainModel // every examined base chain, for Open
	mark   uint32
}

// Hooks returns, without duplicates and in the order of Findings, the hooks of the findings of
// Level Hook: what sesame must install so that every granted packet passes.
func (r Report) Hooks() []firewall.HostChain {
	var hooks []firewall.HostChain
	for _, f := range r.Findings {
		if f.Level == Hook && !slices.Contains(hooks, f.Hook) {
			hooks = append(hooks, f.Hook)
		}
	}
	return hooks
}

// Binaries returns, without duplicates, the iptables commands whose INPUT chains need the hook
// (Level Hook findings of the iptables kinds), such as "iptables-nft" or "ip6tables-legacy".
func (r Report) Binaries() []string {
	var bins []string
	for _, f := range r.Findings {
		if f.Level == Hook && f.Binary != "" && !slices.Contains(bins, f.Binary) {
			bins = append(bins, f.Binary)
		}
	}
	return bins
}

// Errors returns the findings of Level Error.
func (r Report) Errors() []Finding {
	var errs []Finding
	for _, f := range r.Findings {
		if f.Level == Error {
			errs = append(errs, f)
		}
	}
	return errs
}

// Exposed is a port that no examined chain certainly drops, for one IP version.
type Exposed struct {
	Port   firewall.Port
	Family string // "ip" (IPv4) or "ip6" (IPv6)
}

func (e Exposed) String() string {
	v := "IPv4"
	if e.Family == "ip6" {
		v = "IPv6"
	}
	return e.Port.String() + " over " + v
}

// Open returns the ports, for each IP version, that no examined chain certainly drops for the
// first packet of a new connection from a remote address without sesame's mark: the ports a
// grant would not change, since they are open to everyone already (or to some sources, when
// an accept rule has a condition this package does not decide). Chains in sesame's own table
// do not count. A nil result means every port is dropped for IPv4 and IPv6 alike.
func (r Report) Open(ports []firewall.Port) []Exposed {
	var open []Exposed
	for _, fam := range []string{"ip", "ip6"} {
		for _, p := range ports {
			pkt := packet{v6: fam == "ip6", proto: p.Proto, dport: p.Port, mark: r.mark}
			dropped := false
			for _, c := range r.chains {
				if c.covers(fam) && c.eval(pkt) == outDrop {
					dropped = true
					break
				}
			}
			if !dropped {
				open = append(open, Exposed{Port: p, Family: fam})
			}
		}
	}
	return open
}

// Package hostfw finds the host firewall chains that would drop a packet sesame grants, and says
// where sesame must put its accept-if-marked hook (firewall.HostChain) so the grant works.
//
// sesame's mark chain (inet sesame, priority mangle -150) marks granted packets. Every base
// chain on the input hook sees the packet, an accept ends only its own chain, and a drop
// anywhere is final, so each host chain that may drop needs its own hook. Detect reads the
// ruleset over netlink (Reader: tables, chains, rules, set elements) and, for the legacy
// iptables, the /proc/net/ip{,6}_tables_names files of the namespace and the output of
// `iptables-legacy -S` / `ip6tables-legacy -S` (Host).
//
// # What counts
//
// A chain is examined when it is a base chain of type filter on the input hook in family ip,
// ip6 or inet (iptables-nft's INPUT chains are such chains), or the legacy filter table's
// INPUT chain. netdev ingress, bridge and arp chains, and prerouting chains, are not examined;
// Report.Notes names the netdev ingress chains found. sesame's own table (Options.TableName,
// family inet) and sesame's own hook rules (comment "sesame") are ignored.
//
// A chain needs a hook when it may drop: its policy is drop, or some rule's verdict is drop or
// reject (a native drop or reject, an xt REJECT or DROP target, an element of a verdict map, a
// verdict this package does not model), directly or in a chain it jumps or goes to (followed
// up to MaxDepth levels; deeper counts as dropping). Conditions are not considered for this
// question: a rule that drops only tcp/80 still counts. This is deliberately conservative,
// since a superfluous hook accepts only marked packets.
//
// # Hooked chains and open ports
//
// For two further questions rules are evaluated against a model packet: the first packet of a
// new connection, from a remote address, on an interface other than lo. Conditions this
// package understands (meta l4proto and nfproto, ip protocol, ip6 nexthdr, th dport, also
// inside a wider transport-header load, iif and iifname "lo", ct state, ct status bits a new
// direct connection lacks (expected, seen reply, assured, NAT), meta mark with a mask, lookups
// in constant sets and verdict maps, and the xt matches tcp, udp, conntrack, state, mark,
// comment) are decided; any other condition, and a lookup in a set with timeouts, may or may
// not hold. Finding.Hooked holds when a marked packet is certainly accepted before
// anything in the chain may drop it. Report.Open lists the ports (per IP version) that no
// examined chain certainly drops. Expressions google/nftables v0.3.0 cannot decode are
// skipped by that library, so a rule whose only condition is such an expression looks
// unconditional here.
//
// # Who manages the chain
//
// iptables-nft chains (table ip or ip6 "filter", chain "INPUT") are hooked with the iptables
// kind, never with native nft rules, because native rules in iptables-nft's chains make
// `iptables -S` complain. ufw (Debian's 0.36 drives iptables-nft) is recognised by its
// ufw-* chains; firewalld by its table inet firewalld. A table with the owner flag
// (NFT_TABLE_F_OWNER, firewalld's NftablesTableOwner) refuses other writers, so such a chain
// gives an error-level finding whose Fix names what the operator can do instead.
package hostfw

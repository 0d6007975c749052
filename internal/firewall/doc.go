// Package firewall opens and closes access for SPA grants. The nftables backend keeps grants as
// set elements with per-element timeouts, so the kernel closes access on time even if sesame
// dies; Fake is an in-memory Backend for callers' tests.
//
// # Ruleset
//
// The Nftables backend owns one table, `inet sesame` (Config.TableName), talked to over netlink
// (github.com/google/nftables; no nft binary at run time). Init writes, in one transaction:
//
//	table inet sesame {
//		set grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set guarded { type inet_proto . inet_service; elements = { tcp . 22, ... } }
//		chain mark {
//			type filter hook input priority mangle; policy accept;     # -150
//			ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | 0x10000000
//			ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | 0x10000000
//		}
//		chain guard {                                                  # only with GuardPorts
//			type filter hook input priority filter - 10; policy accept; # -10
//			ct state established,related accept
//			iifname "lo" accept                                         # unless GuardLoopback
//			meta mark & 0x10000000 == 0x10000000 accept
//			meta l4proto . th dport @guarded drop
//		}
//	}
//
// A grant is one set element with its own timeout: no rules change and no handles are tracked,
// and the kernel deletes the element when the timeout runs out, whether or not sesame is still
// running (Close and a SIGKILL leave grants in place until then). Init is idempotent and keeps
// the grant sets' elements, so a restarted daemon keeps live grants (fwknopd drops them).
//
// # Why a mark, and the two set-ups
//
// In nftables every base chain on a hook sees the packet; an accept ends only its own chain, and
// a drop anywhere is final. So sesame's accept cannot override a drop in the host's own ruleset.
// sesame therefore splits the work: the mark chain (priority mangle, -150: after conntrack at
// -200, before every filter chain) only marks granted packets with Config.Mark (one bit, default
// 0x10000000, OR-ed in so other mark bits survive), and whoever drops decides by that mark.
//
//  1. A host without a firewall of its own: Config.GuardPorts (SESAME_GUARD_PORTS, e.g.
//     "tcp/22, tcp/5432") adds the guard chain, which drops the guarded ports unless the packet
//     is marked, belongs to an established or related connection, or (by default) arrives on lo.
//     Its priority, filter - 10, runs it after the mark chain and, deterministically, before the
//     host's own filter chains at priority 0 (iptables-nft's INPUT included; chains of equal
//     priority run in registration order), so unauthorised packets are gone before any host
//     rule counts, logs or answers them. (A drop is final in any chain; an accept here is not,
//     which is why set-up 2 exists.) Loopback is exempt by
//     default: local clients do not knock, and guarding lo breaks local tooling and health
//     checks; set GuardLoopback to guard it too.
//  2. A host whose own ruleset drops by default (iptables `-P INPUT DROP`, the usual fwknopd
//     host, or an nft chain with policy drop): Config.HostChain adds one accept-if-marked rule at
//     the top of the host's chain. "iptables" runs, for both iptables and ip6tables (so it works
//     with -legacy and -nft alike),
//     `-I INPUT 1 -m mark --mark 0x10000000/0x10000000 -m comment --comment sesame -j ACCEPT`;
//     "nft FAMILY TABLE CHAIN" inserts `meta mark & 0x10000000 == 0x10000000 accept comment
//     "sesame"` over netlink. Init adds it once; Flush removes every copy. Close leaves it: it
//     accepts only marked packets, and only live grants mark.
//
// Both set-ups can be combined. In either, packets of a connection opened while granted keep
// flowing after the grant expires through the established rule (sesame's guard chain, or the
// host's own), as with fwknopd; new connections are refused.
//
// # Refreshing a grant
//
// Grant must restart the timeout of an existing element, but a plain re-add of an existing
// element is a no-op in the kernel. Since Linux 6.10 an add that carries
// NFTA_SET_ELEM_EXPIRATION updates the element's time left; google/nftables cannot send that
// attribute, so Grant builds that one message itself on a second netlink socket (refresh.go).
// Init probes for the behaviour with a scratch set; on older kernels Grant instead sends add,
// delete, add of the element in one transaction, which leaves a fresh timeout everywhere.
// Revoke sends add, delete, so a missing element is no error. GrantMany sends up to 1000
// grants per message. Measured here (2 cores, shared): Grant about 17,000/s (fast path; 6,000-
// 10,000/s with add, delete, add), GrantMany about 190,000-260,000/s.
//
// # Set keys
//
// The kernel pads each field of a concatenated key to 4 bytes: IPv4 keys are 12 bytes
// (addr, proto+3 zero bytes, port+2 zero bytes), IPv6 keys 24. IPv4-mapped IPv6 grants are
// stored as IPv4, since the kernel sees those clients as IPv4.
package firewall

// Package firewall opens and closes access for SPA grants. The nftables backend keeps grants as
// set elements with per-element timeouts, so the kernel closes access on time even if sesame
// dies; Fake is an in-memory Backend for callers' tests. Open picks the firewall from a Config
// and returns it as a Host (a Backend that also hooks the host's chains), so callers never name
// the nftables type.
//
// # The promise: fail closed
//
// While sesame runs, no port it guards is reachable from an address without a live grant,
// whatever else happens; when it is stopped or has crashed, its guard and live grants stay in
// the kernel (grants still expire on time) until someone flushes the ruleset, and the next
// start restores everything from the daemon's ledger. The parts of this package behind it:
//
//   - Ownership. Where the kernel supports it (NFT_TABLE_F_PERSIST, Linux 6.9), Init creates
//     the table with the flags OWNER and PERSIST: while the daemon's netlink socket is open,
//     `nft flush ruleset` leaves the table alone and `nft delete table` by anyone else fails
//     with EPERM; when the socket closes the table stays, ownerless, and the next Init takes it
//     over. An existing table without the flags (an older sesame, the fallback) is deleted and
//     re-created owned in one transaction that also re-adds its live grants with their time
//     left: no moment without the guard. A live owner elsewhere makes Init fail with ErrOwned.
//     Without PERSIST (Debian 12's 6.1, Ubuntu 24.04's 6.8) OWNER is not used at all, since an
//     owned table would vanish with the daemon; then (and with Config.NoOwner) anyone may
//     remove the table and the daemon heals it (Check, Heal; internal/keeper watches the
//     kernel's ruleset events to do so within milliseconds).
//   - One socket. Only the owning socket may change an owned table, so every write goes through
//     the one lasting netlink socket (sock.go): google/nftables encodes what it can on a
//     recording connection, table flags and element expirations are built by hand, and each
//     transaction is sent and acknowledged on that socket.
//   - Nothing removes the guard on the way out: Close leaves table, guard, hooks and grants;
//     RevokeAll removes grants only; Remove (the uninstall) is the one way to delete it all.
//   - The guard chain is always present; Config.GuardPorts (the daemon passes
//     SESAME_GUARD_PORTS and every stanza's OPEN_PORTS) fill its set, so a flush that takes
//     the administrator's own DROP with it still leaves the guarded ports closed.
//
// # Ruleset
//
// The Nftables backend owns one table, `inet sesame` (Config.TableName), talked to over netlink
// (github.com/google/nftables; no nft binary at run time). Init writes, in one transaction:
//
//	table inet sesame {
//		flags owner,persist                                            # where supported
//		set grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set grantsd4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set grantsd6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set guarded { type inet_proto . inet_service; elements = { tcp . 22, ... } }
//		chain mark {
//			type filter hook input priority mangle; policy accept;     # -150
//			ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | 0x10000000
//			ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | 0x10000000
//			ip saddr . ip daddr . meta l4proto . th dport @grantsd4 meta mark set meta mark | 0x10000000
//			ip6 saddr . ip6 daddr . meta l4proto . th dport @grantsd6 meta mark set meta mark | 0x10000000
//		}
//		chain guard {
//			type filter hook input priority filter - 10; policy accept; # -10
//			ct state established,related accept
//			iifname "lo" accept                                         # unless GuardLoopback
//			meta mark & 0x10000000 == 0x10000000 accept
//			meta l4proto . th dport @guarded drop
//		}
//	}
//
// A grant with a destination (Grant.Dst, fwknopd's ENABLE_DESTINATION_RULE) goes to grantsd4/6
// and marks only packets to that address; the two sets and their rules always exist (empty,
// they cost a failed lookup per packet), so no Config switch changes the ruleset. Check names
// them like the other sets; Heal, List, RevokeAll and the unowned-table swap cover them.
//
// A grant is one set element with its own timeout: no rules change and no handles are tracked,
// and the kernel deletes the element when the timeout runs out, whether or not sesame is still
// running (Close and a SIGKILL leave grants in place until then). Init is idempotent and keeps
// the grant sets' elements, so a restarted daemon keeps live grants (fwknopd drops them).
// GrantMany leaves each element exactly its Timeout to live; the caller (internal/keeper)
// passes the later of the old and new expiry, so a knock never shortens a live grant.
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
//     "sesame"` over netlink. Init adds it once; Remove removes every copy. Close leaves it: it
//     accepts only marked packets, and only live grants mark. The daemon also hooks every
//     chain internal/hostfw finds dropping (SetHostChains). These rules live in somebody
//     else's table and are not protected by ownership: the host firewall's own reload removes
//     them, and Check/Heal put them back.
//
// Both set-ups can be combined. In either, packets of a connection opened while granted keep
// flowing after the grant expires through the established rule (sesame's guard chain, or the
// host's own), as with fwknopd; new connections are refused.
//
// # NAT and forwarding
//
// With Config.NAT, Init also creates the objects for fwknopd's NAT message types (Grant.Kind
// Forward: types 2 and 4 with ENABLE_IPT_FORWARDING; LocalNAT: types 5 and 6 with
// ENABLE_IPT_LOCAL_NAT). Every NAT grant is one or two elements with the grant's timeout, so it
// expires in the kernel and survives the daemon like an access grant:
//
//	map dnat4    { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }
//	map fwd4     { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service : ipv4_addr; flags timeout; }
//	map fwdall4  { type ipv4_addr : ipv4_addr; flags timeout; }
//	set lnat4    { type ipv4_addr . inet_proto . inet_service . ipv4_addr . inet_service; flags timeout; }
//	set fwdguard4 { type ipv4_addr; flags interval; }                # Config.ForwardGuard
//	(and dnat6, fwd6, fwdall6, lnat6, fwdguard6 with ipv6_addr)
//	chain nat_pre {
//		type nat hook prerouting priority dstnat; policy accept;
//		dnat ip to ip saddr . meta l4proto . th dport map @dnat4
//		dnat ip6 to ip6 saddr . meta l4proto . th dport map @dnat6
//	}
//	chain forward {
//		type filter hook forward priority mangle; policy accept;
//		ip saddr . meta l4proto . ct original proto-dst . ip daddr . th dport @fwd4 meta mark set meta mark | 0x10000000
//		ip saddr @fwdall4 meta mark set meta mark | 0x10000000
//		(and ip6 likewise)
//	}
//	chain fwd_guard {
//		type filter hook forward priority filter - 10; policy accept;
//		ct state established,related accept
//		meta mark & 0x10000000 == 0x10000000 accept
//		ip daddr @fwdguard4 drop
//		ip6 daddr @fwdguard6 drop
//	}
//	chain nat_post {
//		type nat hook postrouting priority srcnat; policy accept;
//		FWDKEY map @fwd4 == 255.255.255.255 masquerade             # FWDKEY: as in chain forward
//		FWDKEY map @fwd4 != 0.0.0.0 snat ip to FWDKEY map @fwd4
//		ip saddr map @fwdall4 == 255.255.255.255 masquerade
//		ip saddr map @fwdall4 != 0.0.0.0 snat ip to ip saddr map @fwdall4
//		(and ip6 likewise)
//	}
//	chain mark { ...; ip saddr . meta l4proto . ct original proto-dst . ip daddr . th dport @lnat4 meta mark set ... }
//
// A Forward grant (src, proto, port -> natAddr:natPort) is the fwd element src . proto . port .
// natAddr . natPort, whose value is the SNAT address, 0.0.0.0 for none or 255.255.255.255 for
// masquerade, plus (unless DisableDNAT) the dnat element src . proto . port : natAddr . natPort.
// `ct original proto-dst` is the port the client asked for before the DNAT, so the forward key is
// the grant's whole identity. ForwardAll is the fwdall element src : snat. A LocalNAT grant is the
// dnat element plus the lnat element, which the input mark chain matches: the client reaches the
// local port only through the DNAT of its grant, not directly. NAT map values cannot be changed
// in place, so a NAT grant destroys and re-adds its elements (NFT_MSG_DESTROYSETELEM, Linux 6.3;
// Init fails with ErrNATUnsupported before). Check and Heal cover the NAT objects, RevokeAll
// flushes their grants, Remove and the unowned-table swap (which re-adds live NAT elements) take
// them along, and an Init without Config.NAT deletes NAT objects an earlier run left.
//
// What is guaranteed, fail closed as far as sesame's table goes:
//   - DNAT exists only for granted sources: a packet is rewritten only when its source,
//     protocol and port have a live dnat element, and the element expires in the kernel.
//   - Forwarded packets of a live grant are marked (Config.Mark) before any filter chain; they
//     are accepted by sesame, not let through over a host's drop. A host whose forward policy
//     drops must accept the mark (as set-up 2 above, in its forward chain; Config.HostChain hooks
//     INPUT only).
//   - Whether ungranted traffic reaches a NAT target by routing through this host directly
//     (without the DNAT) is the host's forwarding policy, not sesame's, unless
//     Config.ForwardGuard lists the targets' prefixes: then fwd_guard drops new forwarded
//     connections to them unless marked. Packets of connections opened while granted keep
//     flowing after expiry (established), as with fwknopd.
//   - The kernel forwards nothing while net.ipv4.ip_forward (net.ipv6.conf.all.forwarding) is
//     0; ForwardingOff reports it so the daemon can warn.
//
// One source has one DNAT target per protocol and port: a second grant for another target
// replaces the DNAT (and revoking either removes it), while the forward elements stay apart.
//
// # Refreshing a grant
//
// Grant must restart the timeout of an existing element, but a plain re-add of an existing
// element is a no-op in the kernel. Since Linux 6.10 an add that carries
// NFTA_SET_ELEM_EXPIRATION updates the element's time left; google/nftables cannot send that
// attribute, so Grant builds that one message itself (refresh.go).
// Init probes for the behaviour with a scratch set; on older kernels Grant instead sends add,
// delete, add of the element in one transaction, which leaves a fresh timeout everywhere.
// Revoke sends add, delete, so a missing element is no error. GrantMany sends up to 1000
// grants per message. Measured here (2 cores, shared): Grant about 17,000/s (fast path; 6,000-
// 10,000/s with add, delete, add), GrantMany about 190,000-260,000/s.
//
// # Set keys
//
// The kernel pads each field of a concatenated key to 4 bytes: IPv4 keys are 12 bytes
// (addr, proto+3 zero bytes, port+2 zero bytes), IPv6 keys 24; destination keys 16 and 40. IPv4-mapped IPv6 grants are
// stored as IPv4, since the kernel sees those clients as IPv4.
package firewall

// Package tcpmd5 lets Go programs listen and dial with TCP-MD5 signatures (RFC 2385) on
// Linux. On other systems it compiles, and [Listen], [FromListener], [Dial] and
// [Dialer.DialContext] return an error matching [ErrNotSupported].
//
// A listener made by [Listen] carries its keys from before bind(2), so an unsigned or
// wrongly signed SYN gets no answer at all: no SYN-ACK, no RST. To a peer without the key
// the port looks filtered. A client made by [Dial] or a [Dialer] signs its SYN with the key
// for the exact remote address.
//
// # Keys and rules
//
// A [Key] is 1 to 80 arbitrary bytes (see [ParseKey] for the text syntax). A listener holds
// one key per source prefix ([KeyRule]); the kernel picks the key of the longest prefix
// that contains the peer's address, so per-peer keys need distinct source prefixes. [Any]
// gives the rules that mean "every peer", IPv4 and IPv6.
//
// # Fail-closed listeners
//
// The kernel only demands a signature from peers that match some key, and a socket with no
// key at all is an ordinary open port. A [Listener] therefore always holds a catch-all
// key for 0.0.0.0/0 and for ::/0. When the application gives no rule for a catch-all
// prefix, the listener fills it with an unguessable random key nobody knows, so peers
// outside every configured prefix get silence, and removing the last rule never opens the
// port. On an AF_INET6 socket, IPv4 peers (dual-stack sockets see them as v4-mapped
// addresses) are matched by IPv4 rules written in v4-mapped form: a rule for ::/0 alone
// does not cover them, which is why [Any] returns both families.
//
// Keys can be set, replaced and removed on a live listener ([Listener.SetKey],
// [Listener.RemoveKey]), and [Listener.Replace] swaps the whole table for a new one
// (a reloaded key file), or leaves the previous one in force if the kernel refuses it.
// Connections already accepted keep the key they were accepted with. Replacing a prefix's key is atomic, but there is no overlap: from that moment
// the listener accepts only the new key from that prefix. The kernel cannot report the
// keys back, so [Listener.Keys] returns the listener's own copy of its table.
//
// # Limits and errors
//
// Keys are charged to the socket's option memory (net.core.optmem_max): with the default
// 128 KiB about 960 keys fit on one socket, after which setting a key fails with
// [ErrTooManyKeys]. Replace removes departed prefixes before it adds new ones, so it
// reaches any table that fits on its own. Errors from the kernel come as *[KeyError] values which match
// [ErrInvalid], [ErrTooManyKeys] or [ErrNoSuchKey] and the underlying errno with
// errors.Is.
//
// # Caveats
//
// NAT between the peers breaks the signatures. Root on either host can read the keys
// (ss -i). MD5 turns off TSO/GSO and TCP timestamps on the socket, so bulk throughput
// drops several-fold. TCP-AO (RFC 5925), the successor, is not supported yet.
package tcpmd5

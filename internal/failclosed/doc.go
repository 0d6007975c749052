// Package failclosed holds no code: its tests attack sesame's first law and prove that it holds.
//
// The law (see internal/firewall's "The promise: fail closed"): no port sesame guards is ever
// reachable from an address without a live grant, whatever happens to the daemon, the ruleset
// or the link; and no live grant ends early because of it.
//
// The tests run the real `sesame server` and Debian's `fwknop` client in network namespaces
// (internal/nstest, internal/sesametest): a server namespace with a banner service on tcp/22, a
// client that knocks once, and an outsider on its own veth that never knocks and dials the
// guarded port every 10 ms throughout each event, counting every connection that completes.
//
// TestIntegrationMatrix runs one row per host set-up (sesame's guard alone in its two forms, an
// nft ruleset with policy drop, iptables-nft with INPUT DROP and fwknopd's files unchanged, a
// ufw-like and a firewalld-like ruleset) through a sequence of events: start, the host
// firewall's reload, `nft delete table`, `nft flush ruleset`, SIGTERM, clean restart, kill -9,
// a second instance started, failing and stopped, the interface going down and up, a flush while
// sesame is stopped, `--fw-flush` and `--fw-remove`. Each event is a subtest (a cell of the
// matrix): after it the granted client connects again and the outsider never got in. With -v
// the whole matrix is printed at the end. Further tests cover an interface missing at start,
// the self-healing fallback (SESAME_TABLE_OWNER N), the files a root daemon writes (unsafe run
// directory, planted links) and a shorter knock meeting a longer grant.
package failclosed

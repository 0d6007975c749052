// Package heal benchmarks how fast sesame's firewall heals itself and restarts (issue 8), against
// the real kernel, in network namespaces it creates and removes. Run it with bench/heal.sh (it
// needs root and nft); its figures are go test benchmarks, so plain "go test" does not run them.
//
// Everything runs in-process, as the daemon wires it (internal/cmd/server): the nftables backend
// in a fresh namespace (firewall.Config.NetNSFd, guarding tcp/22), a ledger file in a temporary
// directory, a keeper, and keeper.Run reading nfevents from the namespace. N live grants (10,
// 10,000, 100,000; distinct addresses from 100.64.0.0, 60 s; 10 min in the restart benchmarks)
// are made with keeper.GrantMany.
// The removal comes from another process, because the keeper ignores transactions of its own
// process: either a helper (this test binary re-run inside the namespace) that sends one
// DELTABLE or DELRULE on a socket it opened beforehand, so the window excludes process
// start-up, or the nft CLI, which includes it.
//
// Measured from the start of the removal (the write of the helper's command, or the start of
// nft), per heal, in milliseconds (medians over the iterations):
//
//	ack-ms, nft-ms  until the removal was acknowledged to the helper, or nft exited
//	keeper-ms       the keeper's own work (keeper.Heals: Backend.Heal, plus re-sending every live
//	                grant from the ledger when the table or a grant set was lost); excludes the
//	                event's delivery and the Check before it
//	done-ms         until the keeper logged the heal complete: every write acknowledged, so the
//	                guard, hooks and all N grants are in the kernel (end to end)
//	guard-ms        until a separate read-only socket, polling every ~100 µs, sees the guard
//	                chain with its rules again (fail closed restored; grants may still be missing)
//	grants-ms       until the same poll finds the grant the keeper restores last (one
//	                GETSETELEM lookup: a dump of 100,000 elements takes seconds, see list-ms);
//	                transactions commit in order, so all N are back
//	hook-ms         until the poll sees the hook rule back in the host chain
//
// A polled state counts as restored once the poll has seen it broken, or once the removal has
// returned: with nft, a heal faster than one poll round can only be seen when nft has exited, so
// there guard-ms and hook-ms are bounded below by nft-ms; done-ms is exact either way.
//
// The benchmarks:
//
//   - BenchmarkHealFlush: the fallback path (Config.NoOwner, as on kernels without
//     NFT_TABLE_F_PERSIST). "deltable" deletes table inet sesame; "nft-flush" runs `nft flush
//     ruleset`.
//   - BenchmarkHealHook: a host chain `inet filter input` with policy drop is hooked
//     (Config.HostChain) and its "sesame" rule deleted ("delrule" from the helper, "nft-delete"
//     by handle with the CLI); sesame's own table is owned and untouched, so the grants need
//     no restoring.
//   - BenchmarkRestart: N grants in the owned, persistent table; the daemon exits (ledger and
//     socket closed) and starts again: ms/restart is ledger.Open (ledger-ms) plus NewNftables
//     and keeper.Start (start-ms), until Start returns. init-ms and list-ms time Init and List
//     alone, once.
//   - BenchmarkTakeover: the same with the table left unowned (a NoOwner run): the owned start
//     swaps it for an owned one in one transaction, re-adding the live grants.
//   - BenchmarkHealParts: where a table heal's time goes, without a keeper: ledger.Live,
//     Backend.Heal, and Backend.GrantMany of all N without and with a listener of the events.
//
// Between heals the benchmark pauses (50 ms + 3 µs per grant, not measured) so that the keeper
// has read the events of its own writes before the next removal. Benchmarks use b.Loop: choose
// the iterations with -benchtime Nx, few enough that one size's heals end within the grants'
// 60 s (the heal benchmarks check that every heal restored all N).
package heal

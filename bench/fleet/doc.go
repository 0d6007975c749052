// Package fleet benchmarks sesame's fleet (SESAME_FLEET_REDIS, internal/fleet): what Redis adds
// to each knock, how many grants per second three gateways make and fan out, and how long a
// knock on one gateway takes to open the port on another. Run it with bench/fleet.sh (root,
// redis-server, fwknop and nft); plain "go test" runs nothing.
//
// Definitions:
//
//   - replay check (BenchmarkReplayCheck): the latency of one CheckAndAdd, p50 and p99, in one
//     process: the Fleet on a redis-server on loopback (one SET NX PX, plus the copy into the
//     local memory cache), against the local caches alone (memory, and the digest file the
//     daemon uses by default), in the same run.
//   - knock to open (BenchmarkFleet): three gateways and a client in namespaces on one bridge
//     (internal/fleettest), redis-server in the bridge's namespace. The time from sending a knock
//     to gateway A to the first completed TCP connect through gateway C (fan-out), and through
//     A itself (local), a connect attempt every 200 µs, one fresh client address per knock.
//   - grants per second (BenchmarkFleet): distinct valid knocks sent to A, B and C in turn at
//     a paced rate; the rate at which grants end up applied on every gateway (each gateway's own
//     grants and the ones it applied from the other two), from the first send until the last
//     gateway holds them all.
package fleet

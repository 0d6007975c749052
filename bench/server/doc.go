// Package server benchmarks "sesame server" against Debian's fwknopd 2.6.10 in one run, inside
// network namespaces it creates and removes. Run it with bench/server.sh (it needs root,
// fwknopd, iptables and nft): it is the benchmark BenchmarkServerVsFwknopd, so plain
// "go test" does not run it.
//
// Definitions: knock-to-open is the time from sending the SPA datagram to the first completed
// TCP connect from the granted address, with a connect attempt every 100 µs (knocks one after
// the other, each from its own address; then again with 50 ms of quiet before each, when the
// server and its CPU start cold); grants per second is
// the rate at which distinct valid packets become grants under overload; garbage per second per
// core is forged (bad-HMAC) packets handled per second of server CPU time; connect latency is
// the p50 of a full TCP connect from a granted client while N other grants are live.
package server

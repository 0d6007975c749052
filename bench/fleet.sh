#!/usr/bin/env bash
# Benchmarks sesame's fleet (see bench/fleet/doc.go for the definitions): the replay check with
# Redis against the local caches, knock on A to port open on C, grants per second across three
# gateways. Needs root, redis-server, fwknop and nft; everything runs in network namespaces the
# Go benchmark creates and removes (about 30 s). Knobs (environment): BENCH_FLEET_KNOCKS (50),
# BENCH_FLEET_GRANTS (6000), BENCH_FLEET_RATE (6000/s offered).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bench/results
out="bench/results/fleet-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"
go test -count=1 -timeout 10m -run '^$' -bench '^BenchmarkReplayCheck$' -benchtime 20000x ./bench/fleet/ 2>&1 | tee -a "$out"
go test -count=1 -timeout 10m -run '^$' -bench '^BenchmarkFleet$' -benchtime 1x -v ./bench/fleet/ 2>&1 | tee -a "$out"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
echo "results saved in $out"

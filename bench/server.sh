#!/usr/bin/env bash
# Benchmarks "sesame server" against Debian's fwknopd 2.6.10 in one run and prints a table with
# ratios (see bench/server/doc.go for the definitions). Needs root, fwknopd, iptables and nft.
# Everything runs inside network namespaces the Go test creates and removes; it is bounded
# (about 2 minutes). Knobs (environment): BENCH_KNOCKS (50), BENCH_FWKNOPD_KNOCKS (30),
# BENCH_GRANTS (20000), BENCH_GRANT_RATE (40000/s offered), BENCH_FWKNOPD_GRANTS (150),
# BENCH_MAX_GRANTS (1000000: live grants for the connect-latency rows).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bench/results
out="bench/results/server-$(date -u +%Y%m%dT%H%M%SZ).txt"
go test -count=1 -timeout 15m -run '^$' -bench '^BenchmarkServerVsFwknopd$' -benchtime 1x -v ./bench/server/ 2>&1 | tee "$out"
echo "results saved in $out"

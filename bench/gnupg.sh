#!/usr/bin/env bash
# bench/gnupg.sh: GnuPG-mode SPA, sesame server against Debian's fwknopd in the same run (see
# bench/gnupg/doc.go for the definitions): GnuPG knocks granted per second, forged GnuPG
# packets handled per CPU-second with and without HMAC_KEY on the GnuPG stanza, and the valid
# knocks honoured during a flood of forged GnuPG packets. Needs root, gpg, fwknopd, iptables
# and nft; everything runs in network namespaces the Go benchmark creates and removes (about
# 2-3 minutes). Prints the table and saves the raw output in bench/results/.
#
# Knobs (environment): BENCH_SESAME_KNOCKS (1000), BENCH_FWKNOPD_KNOCKS (40),
# BENCH_FORGED_ROUNDS (4), BENCH_FLOOD_SECONDS (5), BENCH_FLOOD_SOURCES (64; 0 skips the
# spoofed-source flood).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
mkdir -p bench/results
out="bench/results/gnupg-$(date -u +%Y%m%dT%H%M%SZ).txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/gnupg.test" ./bench/gnupg || exit 1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out"
status=0
"$tmp/gnupg.test" -test.run '^$' -test.bench '^BenchmarkGnuPGVsFwknopd$' -test.benchtime 1x -test.v \
	-test.timeout 10m >>"$out" 2>&1 || status=1
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out"
grep -E '^\s+bench_test.go' "$out"
awk '/^metric \(higher/ { on = 1 } on { print } /^\(ratio =/ { on = 0 }' "$out"
grep -E '^(--- FAIL|FAIL|PASS)' "$out"
echo "results saved in $out"
exit $status

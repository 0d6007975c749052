#!/bin/sh
# bench/shield.sh: throughput and connection cost through the TCP-MD5 shield, against a
# direct TCP-MD5 connection and a plain one, in the same run, on loopback (no root
# needed). Runs the Go benchmarks of internal/shield COUNT times, interleaved, and
# prints the medians and the shield/direct-MD5 throughput ratio (target: >= 0.85).
#
#   COUNT=5 BENCHTIME=2s bench/shield.sh
#
# The machine should be otherwise idle: on 2 vCPUs the client, the shield and the
# upstream share the cores, so any other load skews the ratio.
set -eu
cd "$(dirname "$0")/.."
COUNT=${COUNT:-5}
BENCHTIME=${BENCHTIME:-2s}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/shield.test" ./internal/shield
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
i=0
while [ "$i" -lt "$COUNT" ]; do
	"$tmp/shield.test" -test.run '^$' -test.bench . -test.benchtime "$BENCHTIME" | grep '^Benchmark' >>"$tmp/out"
	i=$((i + 1))
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

awk '
function median(name,   n, i, j, t, a) {
	n = cnt[name]
	for (i = 1; i <= n; i++) a[i] = v[name, i]
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	name = $1; sub(/-[0-9]+$/, "", name)
	if ($0 ~ /MB\/s/) { val = $(NF - 1) } else { val = $3 }
	cnt[name]++; v[name, cnt[name]] = val
}
END {
	for (m in cnt) med[m] = median(m)
	printf "\nmedians of %d runs\n", cnt["BenchmarkThroughput/plain"]
	split("plain md5 shield", modes, " ")
	for (i = 1; i <= 3; i++) printf "  throughput %-7s %8.1f MB/s\n", modes[i], med["BenchmarkThroughput/" modes[i]]
	for (i = 1; i <= 3; i++) printf "  connect    %-7s %8.0f conn/s\n", modes[i], 1e9 / med["BenchmarkConnect/" modes[i]]
	r = med["BenchmarkThroughput/shield"] / med["BenchmarkThroughput/md5"]
	printf "\nshield / direct MD5 throughput: %.2f (target >= 0.85: %s)\n", r, (r >= 0.85) ? "met" : "NOT met"
	printf "shield / direct MD5 connections: %.2f\n", med["BenchmarkConnect/md5"] / med["BenchmarkConnect/shield"]
}' "$tmp/out"

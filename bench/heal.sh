#!/usr/bin/env bash
# bench/heal.sh: how fast sesame's firewall heals after `nft flush ruleset` (fallback path, an
# unowned table) and after its hook rule in a host chain is deleted, with 10, 10,000 and 100,000
# live grants (target: under 100 ms), and how long a restart and a takeover of an unowned table
# take with 10,000-100,000 live grants. See bench/heal/doc.go for what each figure measures.
# Needs root and nft; everything runs in network namespaces the Go benchmarks create and remove
# (about a minute). Prints the medians as a table and saves the raw output in bench/results/.
#
#   HEAL_ITERS=5 RESTART_ITERS=2 bench/heal.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
HEAL_ITERS=${HEAL_ITERS:-5}
RESTART_ITERS=${RESTART_ITERS:-2}
mkdir -p bench/results
out="bench/results/heal-$(date -u +%Y%m%dT%H%M%SZ).txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/heal.test" ./bench/heal || exit 1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
"$tmp/heal.test" -test.run '^$' -test.bench '^BenchmarkHeal' -test.benchtime "${HEAL_ITERS}x" \
	-test.timeout 20m 2>&1 | tee "$out" || status=1
"$tmp/heal.test" -test.run '^$' -test.bench '^Benchmark(Restart|Takeover)$' -test.benchtime "${RESTART_ITERS}x" \
	-test.timeout 20m 2>&1 | tee -a "$out" || status=1
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

awk -v hi="$HEAL_ITERS" -v ri="$RESTART_ITERS" '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	if (!(name in seen)) { seen[name] = 1; order[++n] = name }
	for (i = 3; i < NF; i += 2) v[name, $(i + 1)] = $i
}
/^--- FAIL: Benchmark/ { fname = $3; failed[fname] = 1; if (!(fname in seen)) { seen[fname] = 1; order[++n] = fname }; getline; sub(/^[ \t]+/, ""); msg[fname] = $0 }
function f(name, unit) { return ((name, unit) in v) ? sprintf("%.1f", v[name, unit]) : "-" }
END {
	printf "\nHeal: ms from the start of the removal, medians of %s. Target: healed under 100 ms\n", hi
	printf "(flush: guard and all grants back, \"done\"; hook: the hook back, its grants were never lost)\n"
	printf "%-6s %7s %-11s %8s %11s %10s %8s %8s  %s\n", "case", "N", "via", "ack/nft", "guard/hook", "grants", "done", "keeper", "target"
	for (k = 1; k <= n; k++) {
		nm = order[k]
		if (nm !~ /^BenchmarkHeal(Flush|Hook)\/N=[0-9]+\//) continue
		split(nm, p, "/"); c = (p[1] ~ /Flush/) ? "flush" : "hook"; N = substr(p[2], 3)
		if (nm in failed) { printf "%-6s %7s %-11s FAILED: %s\n", c, N, p[3], msg[nm]; continue }
		trig = ((nm, "ack-ms") in v) ? f(nm, "ack-ms") : f(nm, "nft-ms")
		gh = (c == "flush") ? f(nm, "guard-ms") : f(nm, "hook-ms")
		healed = (c == "flush") ? v[nm, "done-ms"] : v[nm, "hook-ms"]
		printf "%-6s %7s %-11s %8s %11s %10s %8s %8s  %s\n", c, N, p[3], trig, gh, f(nm, "grants-ms"), f(nm, "done-ms"), f(nm, "keeper-ms"), (healed < 100) ? "met" : "MISSED"
	}
	printf "\nHeal parts (no keeper): ms, medians of %s\n", hi
	printf "%7s %8s %12s %13s %10s %15s %15s\n", "N", "live", "heal-intact", "heal-removed", "grants", "grants-unread", "grants-events"
	for (k = 1; k <= n; k++) {
		nm = order[k]
		if (nm !~ /^BenchmarkHealParts\/N=/) continue
		split(nm, p, "/"); N = substr(p[2], 3)
		if (nm in failed) { printf "%7s FAILED: %s\n", N, msg[nm]; continue }
		printf "%7s %8s %12s %13s %10s %15s %15s\n", N, f(nm, "live-ms"), f(nm, "heal-intact-ms"), f(nm, "heal-removed-ms"), f(nm, "grants-ms"), f(nm, "grants-unread-ms"), f(nm, "grants-events-ms")
	}
	printf "\nRestart and takeover: ms, medians of %s (Init and List timed once more alone)\n", ri
	printf "(restored: grants a start re-sent, none were lost; drift: how much longer than granted the\n"
	printf "ledger lets a grant live after the last start; both should be 0)\n"
	printf "%-9s %7s %9s %11s %9s %8s %9s %9s %9s\n", "case", "N", "total", "ledger.Open", "start", "Init", "List", "restored", "drift"
	for (k = 1; k <= n; k++) {
		nm = order[k]
		if (nm !~ /^Benchmark(Restart|Takeover)\/N=/) continue
		split(nm, p, "/"); c = (p[1] ~ /Restart/) ? "restart" : "takeover"; N = substr(p[2], 3)
		if (nm in failed) { printf "%-9s %7s FAILED: %s\n", c, N, msg[nm]; continue }
		printf "%-9s %7s %9s %11s %9s %8s %9s %9s %9s\n", c, N, f(nm, "ms/" c), f(nm, "ledger-ms"), f(nm, "start-ms"), f(nm, "init-ms"), f(nm, "list-ms"), f(nm, "restored"), f(nm, "drift-ms")
	}
}' "$out"
echo
echo "results saved in $out"
exit $status

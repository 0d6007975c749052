package failclosed

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// results collects every cell's outcome (row, event -> "pass"/"FAIL"), printed by TestMain.
var results = struct {
	sync.Mutex
	rows   []string
	events []string
	cell   map[[2]string]string
}{cell: map[[2]string]string{}}

// order is the printed order of rows and events; others follow in first-seen order.
var order = []string{
	"guard", "guard-open-ports", "nft-drop", "iptables-drop", "ufw", "firewalld", "fallback",
	"start", "host-reload", "delete-table", "change-owned-table", "flush-ruleset", "host-reload-after-flush",
	"sigterm", "clean-restart", "kill-9", "start-after-kill-9",
	"second-started", "second-bad-config", "second-udp-in-use", "second-overlap", "second-stopped",
	"iface-down", "iface-up-knock", "iface-missing-at-start",
	"flush-while-stopped", "start-after-stopped-flush", "host-reload-after-stopped-flush",
	"fw-flush", "fw-remove-running", "fw-remove-stopped",
}

// record stores one cell's outcome.
func record(row, event string, pass bool) {
	results.Lock()
	defer results.Unlock()
	if !contains(results.rows, row) {
		results.rows = append(results.rows, row)
	}
	if !contains(results.events, event) {
		results.events = append(results.events, event)
	}
	v := "pass"
	if !pass {
		v = "FAIL"
	}
	results.cell[[2]string{row, event}] = v
}

// sortBy sorts ss stably by their place in order (names not in order last).
func sortBy(ss []string) {
	rank := func(s string) int {
		for i, o := range order {
			if o == s {
				return i
			}
		}
		return len(order)
	}
	sort.SliceStable(ss, func(i, j int) bool { return rank(ss[i]) < rank(ss[j]) })
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestMain prints the matrix (event rows, host columns) after the tests when run with -v.
func TestMain(m *testing.M) {
	code := m.Run()
	if testing.Verbose() && len(results.cell) > 0 {
		sortBy(results.rows)
		sortBy(results.events)
		var b strings.Builder
		fmt.Fprintf(&b, "\nfail-closed matrix (- = not applicable):\n%-32s", "event")
		for _, r := range results.rows {
			fmt.Fprintf(&b, " %-16s", r)
		}
		b.WriteString("\n")
		for _, e := range results.events {
			fmt.Fprintf(&b, "%-32s", e)
			for _, r := range results.rows {
				v := results.cell[[2]string{r, e}]
				if v == "" {
					v = "-"
				}
				fmt.Fprintf(&b, " %-16s", v)
			}
			b.WriteString("\n")
		}
		fmt.Print(b.String())
	}
	os.Exit(code)
}

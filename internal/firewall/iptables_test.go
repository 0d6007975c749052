package firewall

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakeIPTables keeps INPUT chains per binary and answers -C/-I/-D like iptables does.
type fakeIPTables struct {
	rules map[string][]string // binary -> rule specs
	calls []string
	fail  string // a binary that always fails
}

func (f *fakeIPTables) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	if name == f.fail {
		return []byte("not found"), errors.New("exit status 1")
	}
	if f.rules == nil {
		f.rules = map[string][]string{}
	}
	if args[0] != "-w" {
		return nil, errors.New("no -w")
	}
	op, chain, rest := args[1], args[2], args[3:]
	if chain != "INPUT" {
		return nil, errors.New("bad chain")
	}
	if op == "-I" {
		if rest[0] != "1" {
			return nil, errors.New("want position 1")
		}
		rest = rest[1:]
	}
	spec := strings.Join(rest, " ")
	i := slices.Index(f.rules[name], spec)
	switch op {
	case "-C":
		if i < 0 {
			return []byte("Bad rule"), errors.New("exit status 1")
		}
	case "-I":
		f.rules[name] = append([]string{spec}, f.rules[name]...)
	case "-D":
		if i < 0 {
			return []byte("Bad rule"), errors.New("exit status 1")
		}
		f.rules[name] = slices.Delete(f.rules[name], i, i+1)
	}
	return nil, nil
}

func TestIPTablesHook(t *testing.T) {
	fake := &fakeIPTables{}
	h := &iptablesHook{run: fake, mark: 0x10000000, bins: HostChain{Kind: HostIPTables}.binaries()}
	ctx := context.Background()
	for range 2 {
		if err := h.install(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := "-m mark --mark 0x10000000/0x10000000 -m comment --comment sesame -j ACCEPT"
	for _, bin := range (HostChain{Kind: HostIPTables}).binaries() {
		if got := fake.rules[bin]; len(got) != 1 || got[0] != want {
			t.Fatalf("%s INPUT after two installs = %q, want [%q]", bin, got, want)
		}
	}
	fake.rules["iptables"] = append(fake.rules["iptables"], want) // a stale duplicate
	if err := h.remove(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bin := range (HostChain{Kind: HostIPTables}).binaries() {
		if got := fake.rules[bin]; len(got) != 0 {
			t.Fatalf("%s INPUT after remove = %q", bin, got)
		}
	}
	if err := h.remove(ctx); err != nil {
		t.Fatalf("second remove: %v", err)
	}

	broken := &iptablesHook{run: &fakeIPTables{fail: "ip6tables"}, mark: 1, bins: HostChain{Kind: HostIPTables}.binaries()}
	if err := broken.install(ctx); err == nil || !strings.Contains(err.Error(), "ip6tables") {
		t.Fatalf("install with broken ip6tables = %v, want an ip6tables error", err)
	}
}

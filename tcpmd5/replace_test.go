package tcpmd5

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"syscall"
	"testing"
)

// hostRules returns n /32 rules 10.a.b.c starting at index from, all with key k.
func hostRules(from, n int, k Key) []KeyRule {
	out := make([]KeyRule, n)
	for i := range n {
		x := from + i
		out[i] = KeyRule{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(x >> 16), byte(x >> 8), byte(x)}), 32), k}
	}
	return out
}

// kernelCopy snapshots the fake socket's keys.
func kernelCopy(f *fakeSocket) map[netip.Prefix]string {
	m := map[netip.Prefix]string{}
	for p, k := range f.keys {
		m[p] = string(k)
	}
	return m
}

// mirrors checks that the table's rules are exactly the socket's keys, catch-all dummies
// aside.
func mirrors(t *testing.T, tb *table, f *fakeSocket) {
	t.Helper()
	rules := map[netip.Prefix]string{}
	for _, r := range tb.keys() {
		rules[r.Prefix] = r.Key.b
	}
	for p, k := range f.keys {
		if d, ok := tb.dummy[p]; ok && string(d) == string(k) {
			if _, rule := rules[p]; rule {
				t.Errorf("%v: rule in the table, dummy on the socket", p)
			}
			continue
		}
		if rules[p] != string(k) {
			t.Errorf("%v: socket has %q, table %q", p, k, rules[p])
		}
	}
	for p := range rules {
		if _, ok := f.keys[p]; !ok && tb.applies(p) {
			t.Errorf("%v: in the table, not on the socket", p)
		}
	}
}

// TestReplaceNearLimit is issue 15's reload: old and new table together do not fit the
// socket, but the new one alone does. Removing first makes it succeed, and no catch-all
// is ever without a key on the way.
func TestReplaceNearLimit(t *testing.T) {
	f := newFake(true)
	f.max = 100
	tb, _ := newTable(f)
	all, old, neu := mustKey(t, "all"), mustKey(t, "old"), mustKey(t, "new")
	if err := tb.install(append(Any(all), hostRules(0, 95, old)...)); err != nil {
		t.Fatal(err)
	}
	f.after = func() { checkClosed(t, f) }
	// Keep 45 of the old hosts, drop 50, add 50 new ones: 97 keys in the end.
	want := append(append([]KeyRule{{AnyIPv4, neu}}, hostRules(50, 45, old)...), hostRules(1000, 50, neu)...)
	if err := tb.replace(want); err != nil {
		t.Fatalf("replace to a table that fits: %v", err)
	}
	if len(f.keys) != 97 || len(tb.keys()) != 96 {
		t.Errorf("socket has %d keys, table %d rules; want 97 and 96", len(f.keys), len(tb.keys()))
	}
	mirrors(t, tb, f)
	if string(f.keys[AnyIPv4]) != "new" || string(f.keys[AnyIPv6]) != string(tb.dummy[AnyIPv6]) {
		t.Error("catch-alls: want the new key for 0.0.0.0/0 and the dummy back for ::/0")
	}
}

func TestReplaceRestoresOnFailure(t *testing.T) {
	f := newFake(false)
	f.max = 50
	tb, _ := newTable(f)
	old, neu := mustKey(t, "old"), mustKey(t, "new")
	if err := tb.install(append(Any(old), hostRules(0, 40, old)...)); err != nil {
		t.Fatal(err)
	}
	beforeKernel, beforeRules := kernelCopy(f), tb.keys()
	// 30 kept with a new key, 10 dropped, 30 added: 61 keys do not fit.
	want := append(append(Any(neu), hostRules(10, 30, neu)...), hostRules(100, 30, neu)...)
	err := tb.replace(want)
	var re *ReplaceError
	if !errors.As(err, &re) || !re.Restored || !errors.Is(err, ErrTooManyKeys) || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("replace beyond the limit: %v; want a restored *ReplaceError matching ErrTooManyKeys", err)
	}
	if !maps.Equal(kernelCopy(f), beforeKernel) {
		t.Error("the socket does not hold the previous keys")
	}
	if got := tb.keys(); !slices.EqualFunc(got, beforeRules, func(a, b KeyRule) bool { return a.Prefix == b.Prefix && a.Key.Equal(b.Key) }) {
		t.Errorf("table after the failed replace differs from before (%d rules, want %d)", len(got), len(beforeRules))
	}
	t.Log(err)
}

// When undoing fails too, the error lists what stays applied, and Keys tells the truth.
func TestReplaceRollbackFails(t *testing.T) {
	f := newFake(false)
	tb, _ := newTable(f)
	a, b := mustKey(t, "a"), mustKey(t, "b")
	if err := tb.install(append(Any(a), hostRules(0, 3, a)...)); err != nil {
		t.Fatal(err)
	}
	gone := hostRules(0, 1, a)[0].Prefix // removed by the replace, and cannot come back
	fresh := hostRules(500, 1, b)[0].Prefix
	undoing := false
	f.fail = func(op string, p netip.Prefix) error {
		switch {
		case op == "set" && p == fresh:
			undoing = true
			return &KeyError{Op: "set", Prefix: p, Err: syscall.ENOMEM}
		case undoing && op == "set" && p == gone:
			return &KeyError{Op: "set", Prefix: p, Err: syscall.EIO}
		}
		return nil
	}
	err := tb.replace(append(append(Any(b), hostRules(1, 2, b)...), hostRules(500, 1, b)...))
	var re *ReplaceError
	if !errors.As(err, &re) || re.Restored || !errors.Is(re.RollbackErr, syscall.EIO) {
		t.Fatalf("got %v", err)
	}
	if want := []KeyChange{{gone, "remove"}}; !slices.Equal(re.Applied, want) {
		t.Errorf("Applied = %v, want %v", re.Applied, want)
	}
	mirrors(t, tb, f)
	if string(f.keys[AnyIPv4]) != "a" {
		t.Errorf("catch-all not restored: %q", f.keys[AnyIPv4])
	}
	t.Log(err)
}

func TestReplaceValidatesFirst(t *testing.T) {
	f := newFake(true)
	tb, _ := newTable(f)
	k := mustKey(t, "k")
	if err := tb.install(Any(k)); err != nil {
		t.Fatal(err)
	}
	ops := f.ops
	for _, bad := range [][]KeyRule{
		{{netip.Prefix{}, k}},
		{{AnyIPv4, Key{}}},
		{{netip.MustParsePrefix("10.0.0.0/8"), k}, {netip.MustParsePrefix("10.1.0.0/8"), k}},
	} {
		if err := tb.replace(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if f.ops != ops {
		t.Errorf("an invalid table touched the socket (%d operations)", f.ops-ops)
	}
	// Replacing with the same table changes nothing on the socket.
	if err := tb.replace(Any(k)); err != nil || f.ops != ops {
		t.Errorf("same table: %v, %d operations", err, f.ops-ops)
	}
}

func ExampleReplaceError() {
	err := error(&ReplaceError{Err: fmt.Errorf("tcpmd5: set key for 10.0.0.1/32: too many keys"), Restored: true})
	fmt.Println(err)
	// Output: tcpmd5: set key for 10.0.0.1/32: too many keys; replace undone: the previous keys are in force
}

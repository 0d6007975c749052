package tcpmd5

import (
	"bytes"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

// fakeSocket imitates the kernel's key list: set replaces, delete of a missing key is
// ENOENT, and more than max keys is ENOMEM.
type fakeSocket struct {
	is6  bool
	max  int
	keys map[netip.Prefix][]byte
	ops  int
	// fail, if set, may refuse an operation ("set" or "del") before it happens; after,
	// if set, runs after every operation that succeeded.
	fail  func(op string, p netip.Prefix) error
	after func()
}

func newFake(is6 bool) *fakeSocket {
	return &fakeSocket{is6: is6, max: 1000, keys: map[netip.Prefix][]byte{}}
}

func (f *fakeSocket) v6() bool { return f.is6 }

func (f *fakeSocket) set(p netip.Prefix, key []byte) error {
	f.ops++
	if f.fail != nil {
		if err := f.fail("set", p); err != nil {
			return err
		}
	}
	if !f.is6 && !p.Addr().Is4() {
		return &KeyError{Op: "set", Prefix: p, Err: syscall.EINVAL}
	}
	if _, ok := f.keys[p]; !ok && len(f.keys) >= f.max {
		return &KeyError{Op: "set", Prefix: p, Err: syscall.ENOMEM}
	}
	f.keys[p] = append([]byte(nil), key...)
	if f.after != nil {
		f.after()
	}
	return nil
}

func (f *fakeSocket) del(p netip.Prefix) error {
	f.ops++
	if f.fail != nil {
		if err := f.fail("del", p); err != nil {
			return err
		}
	}
	if _, ok := f.keys[p]; !ok {
		return &KeyError{Op: "delete", Prefix: p, Err: syscall.ENOENT}
	}
	delete(f.keys, p)
	if f.after != nil {
		f.after()
	}
	return nil
}

func mustKey(t *testing.T, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkClosed asserts that every catch-all the socket can match holds a key.
func checkClosed(t *testing.T, f *fakeSocket) {
	t.Helper()
	want := []netip.Prefix{AnyIPv4}
	if f.is6 {
		want = append(want, AnyIPv6)
	}
	for _, p := range want {
		if len(f.keys[p]) == 0 {
			t.Fatalf("socket has no key for %v: keys %v", p, f.keys)
		}
	}
}

func TestTableNeverKeyless(t *testing.T) {
	for _, is6 := range []bool{false, true} {
		f := newFake(is6)
		tb, err := newTable(f)
		if err != nil {
			t.Fatal(err)
		}
		a, b := mustKey(t, "alpha"), mustKey(t, "beta")
		if err := tb.install(append(Any(a), KeyRule{netip.MustParsePrefix("2001:db8::/32"), b})); err != nil {
			t.Fatal(err)
		}
		checkClosed(t, f)
		if !bytes.Equal(f.keys[AnyIPv4], []byte("alpha")) {
			t.Errorf("v6=%v: 0.0.0.0/0 holds %q", is6, f.keys[AnyIPv4])
		}
		_, has6 := f.keys[netip.MustParsePrefix("2001:db8::/32")]
		if has6 != is6 {
			t.Errorf("v6=%v: IPv6 rule installed=%v", is6, has6)
		}
		// Remove every rule: the catch-alls must fall back to the random dummies.
		for _, r := range tb.keys() {
			if err := tb.removeKey(r.Prefix); err != nil {
				t.Fatalf("remove %v: %v", r.Prefix, err)
			}
			checkClosed(t, f)
		}
		if len(tb.keys()) != 0 {
			t.Errorf("table not empty: %v", tb.keys())
		}
		d := f.keys[AnyIPv4]
		if len(d) != MaxKeyLen || bytes.Equal(d, []byte("alpha")) {
			t.Errorf("v6=%v: catch-all after removal is %d bytes", is6, len(d))
		}
		if err := tb.removeKey(AnyIPv4); !errors.Is(err, ErrNoSuchKey) {
			t.Errorf("second remove: %v, want ErrNoSuchKey", err)
		}
	}
}

func TestTableEmptyRulesStillClosed(t *testing.T) {
	f := newFake(true)
	tb, _ := newTable(f)
	if err := tb.install(nil); err != nil {
		t.Fatal(err)
	}
	checkClosed(t, f)
	if !bytes.Equal(f.keys[AnyIPv4], tb.dummy[AnyIPv4]) || bytes.Equal(tb.dummy[AnyIPv4], tb.dummy[AnyIPv6]) {
		t.Error("dummies wrong")
	}
}

func TestTableSetKey(t *testing.T) {
	f := newFake(true)
	tb, _ := newTable(f)
	if err := tb.install(nil); err != nil {
		t.Fatal(err)
	}
	host := netip.MustParsePrefix("::ffff:192.0.2.9/128")
	if err := tb.setKey(host, mustKey(t, "grant")); err != nil {
		t.Fatal(err)
	}
	stored := netip.MustParsePrefix("192.0.2.9/32")
	if !bytes.Equal(f.keys[stored], []byte("grant")) {
		t.Errorf("mapped prefix not stored unmapped: %v", f.keys)
	}
	if err := tb.setKey(stored, mustKey(t, "grant2")); err != nil || !bytes.Equal(f.keys[stored], []byte("grant2")) {
		t.Errorf("replace: %v %q", err, f.keys[stored])
	}
	if err := tb.setKey(netip.Prefix{}, mustKey(t, "x")); !errors.Is(err, ErrBadPrefix) {
		t.Errorf("invalid prefix: %v", err)
	}
	if err := tb.setKey(stored, Key{}); !errors.Is(err, ErrKeyLength) {
		t.Errorf("zero key: %v", err)
	}
	// A kernel failure leaves the table unchanged.
	f.max = len(f.keys)
	if err := tb.setKey(netip.MustParsePrefix("198.51.100.0/24"), mustKey(t, "x")); !errors.Is(err, ErrTooManyKeys) {
		t.Errorf("full socket: %v", err)
	}
	if n := len(tb.keys()); n != 1 {
		t.Errorf("table has %d rules after failed set, want 1", n)
	}
	if err := tb.install([]KeyRule{{stored, mustKey(t, "a")}, {stored, mustKey(t, "b")}}); err == nil {
		t.Error("duplicate rules accepted")
	}
}

package tcpmd5

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// keySocket is the kernel side of a listener's key table: one socket's TCP-MD5 keys.
// The real one is *rawSocket; tests use a fake.
type keySocket interface {
	v6() bool                             // AF_INET6 socket: IPv4 prefixes are written v4-mapped
	set(p netip.Prefix, key []byte) error // add or replace the key for p
	del(p netip.Prefix) error             // delete the key for p
}

// table is a listener's key table and the logic that keeps the socket fail-closed.
type table struct {
	mu    sync.Mutex
	sock  keySocket
	rules map[netip.Prefix]Key
	dummy map[netip.Prefix][]byte // random keys for catch-alls the rules leave empty
}

func newTable(sock keySocket) (*table, error) {
	t := &table{sock: sock, rules: map[netip.Prefix]Key{}, dummy: map[netip.Prefix][]byte{}}
	for _, p := range t.catchAlls() {
		d := make([]byte, MaxKeyLen)
		if _, err := rand.Read(d); err != nil {
			return nil, fmt.Errorf("tcpmd5: random dummy key: %w", err)
		}
		t.dummy[p] = d
	}
	return t, nil
}

// catchAlls lists the catch-all prefixes the socket's family can match.
func (t *table) catchAlls() []netip.Prefix {
	if t.sock.v6() {
		return []netip.Prefix{AnyIPv4, AnyIPv6}
	}
	return []netip.Prefix{AnyIPv4}
}

// applies reports whether rules for p are installed on the socket: IPv6 prefixes are
// not installed on AF_INET sockets (no IPv6 peer can reach them).
func (t *table) applies(p netip.Prefix) bool { return p.Addr().Is4() || t.sock.v6() }

// install writes the catch-alls (the rule's key or a dummy) and then every rule. It is
// called once, before bind/listen or on an inherited socket.
func (t *table) install(rules []KeyRule) error {
	want, err := normRules(rules)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rules = want
	for _, p := range t.catchAlls() {
		if err := t.sock.set(p, t.keyFor(p)); err != nil {
			return err
		}
	}
	for p, k := range t.rules {
		if t.applies(p) && p.Bits() != 0 {
			if err := t.sock.set(p, []byte(k.b)); err != nil {
				return err
			}
		}
	}
	return nil
}

// normRules validates rules and returns them keyed by normalised prefix; a prefix may
// appear once.
func normRules(rules []KeyRule) (map[netip.Prefix]Key, error) {
	want := make(map[netip.Prefix]Key, len(rules))
	for _, r := range rules {
		p, err := normPrefix(r.Prefix)
		if err != nil {
			return nil, err
		}
		if r.Key.IsZero() {
			return nil, fmt.Errorf("tcpmd5: rule for %v: %w", p, ErrKeyLength)
		}
		if _, dup := want[p]; dup {
			return nil, fmt.Errorf("tcpmd5: two rules for %v", p)
		}
		want[p] = r.Key
	}
	return want, nil
}

// keyFor returns the bytes installed for p: the rule's key or the catch-all dummy.
func (t *table) keyFor(p netip.Prefix) []byte {
	if k, ok := t.rules[p]; ok {
		return []byte(k.b)
	}
	return t.dummy[p]
}

func (t *table) setKey(prefix netip.Prefix, key Key) error {
	p, err := normPrefix(prefix)
	if err != nil {
		return err
	}
	if key.IsZero() {
		return fmt.Errorf("tcpmd5: rule for %v: %w", p, ErrKeyLength)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.apply(p, key)
}

func (t *table) removeKey(prefix netip.Prefix) error {
	p, err := normPrefix(prefix)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.rules[p]; !ok {
		return &KeyError{Op: "delete", Prefix: p, Err: ErrNoSuchKey}
	}
	return t.apply(p, Key{})
}

func (t *table) keys() []KeyRule {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]KeyRule, 0, len(t.rules))
	for p, k := range t.rules {
		out = append(out, KeyRule{Prefix: p, Key: k})
	}
	sort.Slice(out, func(i, j int) bool { return prefixLess(out[i].Prefix, out[j].Prefix) })
	return out
}

func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

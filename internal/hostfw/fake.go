package hostfw

import (
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Fake is an in-memory Reader for tests: a ruleset built with AddTable, AddChain and AddSet.
type Fake struct {
	tables []*nftables.Table
	chains []*nftables.Chain
	rules  map[string][]*nftables.Rule
	sets   map[string]*nftables.Set
	elems  map[string][]nftables.SetElement
}

func fakeKey(t *nftables.Table, name string) string {
	return fmt.Sprintf("%d/%s/%s", t.Family, t.Name, name)
}

// AddTable adds a table with the given flags (0x2: owner) and returns it. Like
// google/nftables v0.3.0, its Flags field holds the flags in the kernel's big-endian byte order
// read as a host-order number.
func (f *Fake) AddTable(family nftables.TableFamily, name string, flags uint32) *nftables.Table {
	t := &nftables.Table{Family: family, Name: name, Flags: binary.NativeEndian.Uint32(binary.BigEndian.AppendUint32(nil, flags))}
	f.tables = append(f.tables, t)
	return t
}

// AddChain adds c (c.Table from AddTable) with one rule per expression list.
func (f *Fake) AddChain(c *nftables.Chain, rules ...[]expr.Any) *nftables.Chain {
	rs := make([]*nftables.Rule, len(rules))
	for i, exprs := range rules {
		rs[i] = &nftables.Rule{Exprs: exprs}
	}
	return f.AddChainRules(c, rs...)
}

// AddChainRules adds c with the given rules (for rules with userdata, such as a comment).
func (f *Fake) AddChainRules(c *nftables.Chain, rules ...*nftables.Rule) *nftables.Chain {
	if f.rules == nil {
		f.rules = map[string][]*nftables.Rule{}
	}
	f.chains = append(f.chains, c)
	k := fakeKey(c.Table, c.Name)
	for i, r := range rules {
		r.Table, r.Chain, r.Handle = c.Table, c, uint64(i+1)
		f.rules[k] = append(f.rules[k], r)
	}
	return c
}

// AddSet adds a set (s.Table from AddTable) with its elements.
func (f *Fake) AddSet(s *nftables.Set, elems []nftables.SetElement) {
	if f.sets == nil {
		f.sets, f.elems = map[string]*nftables.Set{}, map[string][]nftables.SetElement{}
	}
	k := fakeKey(s.Table, s.Name)
	f.sets[k], f.elems[k] = s, elems
}

// ListTables implements Reader.
func (f *Fake) ListTables() ([]*nftables.Table, error) {
	return append([]*nftables.Table(nil), f.tables...), nil
}

// ListChains implements Reader.
func (f *Fake) ListChains() ([]*nftables.Chain, error) {
	return append([]*nftables.Chain(nil), f.chains...), nil
}

// GetRules implements Reader.
func (f *Fake) GetRules(t *nftables.Table, c *nftables.Chain) ([]*nftables.Rule, error) {
	return f.rules[fakeKey(t, c.Name)], nil
}

// GetSetByName implements Reader.
func (f *Fake) GetSetByName(t *nftables.Table, name string) (*nftables.Set, error) {
	if s := f.sets[fakeKey(t, name)]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("set %s: no such file or directory", name)
}

// GetSetElements implements Reader.
func (f *Fake) GetSetElements(s *nftables.Set) ([]nftables.SetElement, error) {
	return f.elems[fakeKey(s.Table, s.Name)], nil
}

// FakeHost is an in-memory Host for tests.
type FakeHost struct {
	IPv4Tables, IPv6Tables []string // what LegacyTables returns
	// Output maps a command name to its standard output; a name not in the map is not
	// installed.
	Output map[string]string
	// Calls records every command run, as "NAME ARGS...".
	Calls []string
}

// LegacyTables implements Host.
func (h *FakeHost) LegacyTables(ipv6 bool) ([]string, error) {
	if ipv6 {
		return h.IPv6Tables, nil
	}
	return h.IPv4Tables, nil
}

// Run implements Host.
func (h *FakeHost) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	h.Calls = append(h.Calls, strings.Join(append([]string{name}, args...), " "))
	out, ok := h.Output[name]
	if !ok {
		return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
	return []byte(out), nil
}

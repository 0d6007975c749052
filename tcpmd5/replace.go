package tcpmd5

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// A KeyChange is one step of a [Listener.Replace]: Op is "remove", "replace" or "add".
type KeyChange struct {
	Prefix netip.Prefix
	Op     string
}

func (c KeyChange) String() string { return c.Op + " " + c.Prefix.String() }

// A ReplaceError reports a [Listener.Replace] that failed part-way. It matches Err with
// errors.Is and errors.As (for instance [ErrTooManyKeys]).
type ReplaceError struct {
	Err error // the kernel's refusal that stopped the replace
	// Restored reports that every change made before the failure was undone: the
	// listener holds exactly its previous table.
	Restored bool
	// When Restored is false: RollbackErr says why, and Applied lists the changes that
	// are still in force. Every other prefix holds its previous key; Keys reports the
	// whole table as it is.
	RollbackErr error
	Applied     []KeyChange
}

func (e *ReplaceError) Error() string {
	if e.Restored {
		return fmt.Sprintf("%v; replace undone: the previous keys are in force", e.Err)
	}
	ch := make([]string, len(e.Applied))
	for i, c := range e.Applied {
		ch[i] = c.String()
	}
	return fmt.Sprintf("%v; undoing the replace failed too (%v): the previous keys are in force except these changes: %s",
		e.Err, e.RollbackErr, strings.Join(ch, ", "))
}

func (e *ReplaceError) Unwrap() error { return e.Err }

// step is one change of a replace: the prefix goes from old to new (zero Key: no rule).
type step struct {
	p        netip.Prefix
	old, new Key
}

func (s step) change() KeyChange {
	op := "replace"
	switch {
	case s.new.IsZero():
		op = "remove"
	case s.old.IsZero():
		op = "add"
	}
	return KeyChange{Prefix: s.p, Op: op}
}

// replace makes rules the whole table. Departed prefixes are removed first (freeing
// option memory; their peers fall back to a shorter rule or the catch-all, which always
// holds a key), changed keys are replaced in place, and new prefixes are added last, so
// a table that fits the socket's option memory is always reached. If the kernel refuses
// a step, the steps already made are undone in reverse order, which needs no more
// memory than the previous table did.
func (t *table) replace(rules []KeyRule) error {
	want, err := normRules(rules)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var removes, changes, adds []step
	for p, k := range t.rules {
		switch nk, ok := want[p]; {
		case !ok:
			removes = append(removes, step{p, k, Key{}})
		case !nk.Equal(k):
			changes = append(changes, step{p, k, nk})
		}
	}
	for p, k := range want {
		if _, ok := t.rules[p]; !ok {
			adds = append(adds, step{p, Key{}, k})
		}
	}
	plan := append(append(sortSteps(removes), sortSteps(changes)...), sortSteps(adds)...)
	for i, s := range plan {
		err := t.apply(s.p, s.new)
		if err == nil {
			continue
		}
		re := &ReplaceError{Err: err, Restored: true}
		for j := i - 1; j >= 0; j-- {
			if rerr := t.apply(plan[j].p, plan[j].old); rerr != nil {
				re.Restored = false
				if re.RollbackErr == nil {
					re.RollbackErr = rerr
				}
				re.Applied = append(re.Applied, plan[j].change())
			}
		}
		return re
	}
	return nil
}

func sortSteps(s []step) []step {
	sort.Slice(s, func(i, j int) bool { return prefixLess(s[i].p, s[j].p) })
	return s
}

// apply puts k in force for p (zero k: remove the rule) on the socket and, if the kernel
// agrees, in the table. The caller holds t.mu.
func (t *table) apply(p netip.Prefix, k Key) error {
	if k.IsZero() {
		if t.applies(p) {
			var err error
			if d, catchAll := t.dummy[p]; catchAll {
				err = t.sock.set(p, d) // in place: never a moment without a key
			} else {
				err = t.sock.del(p)
			}
			if err != nil {
				return err
			}
		}
		delete(t.rules, p)
		return nil
	}
	if t.applies(p) {
		if err := t.sock.set(p, []byte(k.b)); err != nil {
			return err
		}
	}
	t.rules[p] = k
	return nil
}

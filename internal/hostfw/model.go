package hostfw

import "fmt"

// MaxDepth bounds how many levels of jump and goto Detect follows; a chain deeper than that
// counts as possibly dropping (and possibly accepting).
const MaxDepth = 16

// tri is a three-valued truth: whether a condition holds for the model packet.
type tri int8

const (
	never tri = iota
	maybe
	always
)

func and(a, b tri) tri { return min(a, b) }

func not(a tri) tri { return always - a }

// packet is the model packet rules are evaluated against: the first packet of a new
// connection (ct state new), from a remote address, arriving on an interface other than lo.
type packet struct {
	v6     bool   // IPv6, else IPv4
	proto  uint8  // IP protocol; 0: any
	dport  uint16 // destination port; 0: any
	marked bool   // carries sesame's mark bits
	mark   uint32 // sesame's mark bits; the packet's other mark bits are unknown
}

// cond is one condition of a rule.
type cond func(p packet) tri

// verdict is what a rule (or one branch of a verdict map) does when it matches.
type verdict int

const (
	vAccept verdict = iota + 1
	vDrop           // drop or reject
	vJump
	vGoto
	vReturn
	vUnknown // a verdict not modelled (queue, an unknown xt target): may accept, drop or continue
)

// branch is one verdict of a rule; a verdict map has one branch per element.
type branch struct {
	when    cond // nil: always
	verdict verdict
	target  string // vJump, vGoto
	what    string // for Why: "drop", "reject", "verdict map", "target TARPIT"
}

// rule is one rule in the model.
type rule struct {
	pos      int // 1-based position in its chain
	conds    []cond
	branches []branch // none: a rule without a verdict (a counter, a log)
	sesame   bool     // sesame's own hook rule (comment "sesame")
}

func (r *rule) match(p packet) tri {
	m := always
	for _, c := range r.conds {
		if m = and(m, c(p)); m == never {
			break
		}
	}
	return m
}

// chainModel is one chain, with the table it belongs to (for jumps).
type chainModel struct {
	family     string // "ip", "ip6", "inet"
	table      string
	name       string
	base       bool
	prio       int
	policyDrop bool
	rules      []rule
	siblings   map[string]*chainModel // the chains of its table, by name
}

// covers reports whether the chain sees packets of IP version fam ("ip" or "ip6").
func (c *chainModel) covers(fam string) bool { return c.family == "inet" || c.family == fam }

// mayDrop reports whether anything in c, or in a chain it jumps or goes to, may drop a packet,
// and says where. sesame's own hook rules are skipped.
func (c *chainModel) mayDrop() (bool, string) {
	return c.mayDropAt(0, map[*chainModel]bool{})
}

// mayDropAt looks depth levels below the base chain; clean holds the chains known not to drop.
func (c *chainModel) mayDropAt(depth int, clean map[*chainModel]bool) (bool, string) {
	if depth > MaxDepth {
		return true, fmt.Sprintf("jumps deeper than %d chains", MaxDepth)
	}
	if clean[c] {
		return false, ""
	}
	for _, r := range c.rules {
		if r.sesame {
			continue
		}
		for _, b := range r.branches {
			switch b.verdict {
			case vDrop, vUnknown:
				return true, fmt.Sprintf("rule %d: %s", r.pos, b.what)
			case vJump, vGoto:
				t := c.siblings[b.target]
				if t == nil {
					return true, fmt.Sprintf("rule %d: %s to missing chain %s", r.pos, b.what, b.target)
				}
				if ok, why := t.mayDropAt(depth+1, clean); ok {
					return true, fmt.Sprintf("rule %d: %s %s: %s", r.pos, b.what, b.target, why)
				}
			}
		}
	}
	if c.base && c.policyDrop {
		return true, "policy drop"
	}
	clean[c] = true
	return false, ""
}

// outcome is a set of possible ends of a chain for a packet.
type outcome uint8

const (
	outAccept outcome = 1 << iota
	outDrop
	outReturn // fell off a regular chain or returned: the caller continues
)

// evaluation evaluates chains for one packet, remembering each regular chain's outcome (so a
// chain reached by many paths is evaluated once).
type evaluation struct {
	p    packet
	memo map[*chainModel]outcome
	busy map[*chainModel]bool
}

// eval returns every way the base chain c may end for p (policy applied).
func (c *chainModel) eval(p packet) outcome {
	e := &evaluation{p: p, memo: map[*chainModel]outcome{}, busy: map[*chainModel]bool{}}
	out := e.chain(c, 0)
	if out&outReturn != 0 {
		out &^= outReturn
		if c.policyDrop {
			out |= outDrop
		} else {
			out |= outAccept
		}
	}
	return out
}

func (e *evaluation) chain(c *chainModel, depth int) outcome {
	if depth > MaxDepth || e.busy[c] {
		return outAccept | outDrop | outReturn
	}
	if o, ok := e.memo[c]; ok {
		return o
	}
	e.busy[c] = true
	out := e.rules(c, depth)
	delete(e.busy, c)
	e.memo[c] = out
	return out
}

func (e *evaluation) rules(c *chainModel, depth int) outcome {
	var out outcome
rules:
	for _, r := range c.rules {
		m := r.match(e.p)
		if m == never {
			continue
		}
		for _, b := range r.branches {
			mb := m
			if b.when != nil {
				mb = and(mb, b.when(e.p))
			}
			if mb == never {
				continue
			}
			o, cont := e.follow(c, b, depth)
			out |= o
			if mb == always {
				// Branches of one rule exclude each other: this one is taken.
				if !cont {
					return out
				}
				continue rules
			}
		}
	}
	if c.base && c.policyDrop {
		return out | outDrop
	}
	if c.base {
		return out | outAccept
	}
	return out | outReturn
}

// follow returns how taking branch b may end c, and whether c may continue after it.
func (e *evaluation) follow(c *chainModel, b branch, depth int) (outcome, bool) {
	switch b.verdict {
	case 0:
		return 0, true
	case vAccept:
		return outAccept, false
	case vDrop:
		return outDrop, false
	case vReturn:
		return outReturn, false
	case vJump, vGoto:
		t := c.siblings[b.target]
		if t == nil {
			return outAccept | outDrop, true
		}
		sub := e.chain(t, depth+1)
		if b.verdict == vGoto {
			return sub, false // the target's return is c's return
		}
		return sub &^ outReturn, sub&outReturn != 0
	}
	return outAccept | outDrop, true
}

// hooked reports whether a marked packet is certainly accepted by c, for every IP version c
// sees, before anything may drop it.
func (c *chainModel) hooked(mark uint32) bool {
	for _, fam := range []string{"ip", "ip6"} {
		if c.covers(fam) && c.eval(packet{v6: fam == "ip6", marked: true, mark: mark}) != outAccept {
			return false
		}
	}
	return true
}

// hasSesameRule reports whether c holds sesame's hook rule.
func (c *chainModel) hasSesameRule() bool {
	for _, r := range c.rules {
		if r.sesame {
			return true
		}
	}
	return false
}

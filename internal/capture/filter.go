package capture

import (
	"errors"
	"fmt"
	"strings"
)

// ErrFilter is wrapped by every CompileFilter error.
var ErrFilter = errors.New("invalid PCAP_FILTER")

// FilterSyntax summarises the PCAP_FILTER language CompileFilter accepts; error messages quote
// it.
const FilterSyntax = `pcap-filter(7) on IP packets: and, or, not, parentheses; [ip|ip6|tcp|udp|sctp] ` +
	`[src|dst|src or dst|src and dst] host|net|port|portrange VALUE (values after and/or inherit ` +
	`the qualifiers); ip, ip6, tcp, udp, sctp, icmp, icmp6, igmp, igrp, pim, vrrp, carp, ah, esp; ` +
	`[ip|ip6] proto|protochain N; ip|ip6 multicast, ip broadcast; less N, greater N; ` +
	`comparisons of ip[], ip6[], tcp[], udp[], sctp[], icmp[], icmp6[], igmp[] and len arithmetic. ` +
	`Nothing about the link layer (ether, arp, vlan, inbound ...)`

// FilterError reports an expression CompileFilter cannot compile. It wraps ErrFilter.
type FilterError struct {
	Expr string // the whole expression
	Pos  int    // byte offset of the offending word in Expr; -1 when the expression ends early
	Msg  string
}

func (e *FilterError) Error() string {
	where := ""
	switch {
	case e.Pos < 0:
		where = " at the end"
	case e.Pos < len(e.Expr):
		w := e.Expr[e.Pos:]
		if i := strings.IndexAny(w, " \t\r\n"); i > 0 {
			w = w[:i]
		}
		where = fmt.Sprintf(" at %q (byte %d)", w, e.Pos+1)
	}
	return fmt.Sprintf("capture: PCAP_FILTER %q%s: %s; supported: %s", e.Expr, where, e.Msg, FilterSyntax)
}

func (e *FilterError) Unwrap() error { return ErrFilter }

// Filter is a compiled PCAP_FILTER. The zero Filter matches nothing.
//
// A Filter is evaluated on whole IP datagrams: IPv6 protocol tests ("udp", "proto 17", ports,
// tcp[]...) apply to the upper-layer header after the extension headers (so "udp port 62201"
// matches a UDP datagram behind a hop-by-hop header, where libpcap would not), "proto N" and
// "protochain N" also match an extension header N in the chain, and fragments are matched once
// reassembled. "len" (and less, greater) is the IP datagram's length from its header.
type Filter struct {
	Expr string // the expression as given
	root *node
	// res holds the expression folded for each context (see ctxIndex): IPv4 and IPv6, whole
	// datagrams and fragments.
	res [4]*node
}

// String is the canonical form of the filter: qualifiers written out, e.g. "udp port 62201 or
// udp port 62202" for "udp port 62201 or 62202". It compiles to the same filter.
func (f Filter) String() string {
	if f.root == nil {
		return ""
	}
	return f.root.String()
}

// Match reports whether the IP datagram b (starting at the IP header; not a fragment) passes
// the filter. It is the userspace twin of the kernel program, which Read uses to re-check what
// the kernel let through, and what FileSource filters with. A packet that cannot be parsed, or
// for which an expression reads past its end or divides by zero, does not match.
func (f Filter) Match(b []byte) bool {
	v, err := parseView(b)
	if err != nil || v.frag {
		return false
	}
	return f.match(&v)
}

// match evaluates the filter on a parsed, whole datagram.
func (f Filter) match(v *ipView) bool {
	n := f.res[ctxIndex(v.v6, false)]
	if n == nil {
		return false
	}
	ok, fine := n.eval(v)
	return ok && fine
}

// CompileFilter parses a pcap-filter(7) expression (see FilterSyntax) and prepares it for the
// kernel (Filter.Program) and for userspace (Filter.Match). Keywords are case-insensitive.
// Host names are resolved once, here, as libpcap does; port and protocol names come from
// /etc/services and /etc/protocols. Every error is a *FilterError wrapping ErrFilter that
// names the expression and the offending word: a syntax error, a value out of range, network
// bits past the mask, a qualifier that does not apply, a link-layer primitive (sesame sniffs
// from the IP header on), or an expression no packet can match.
func CompileFilter(expr string) (Filter, error) {
	toks, err := lex(expr)
	if err != nil {
		return Filter{}, err
	}
	p := &parser{expr: expr, toks: toks}
	if p.peek().kind == tEOF {
		return Filter{}, p.failAt(p.peek(), "empty expression")
	}
	root, _, err := p.parseExpr(qual{none: true})
	if err != nil {
		return Filter{}, err
	}
	if t := p.peek(); t.kind != tEOF {
		return Filter{}, p.failAt(t, fmt.Sprintf("unexpected %q", t.text))
	}
	f := Filter{Expr: expr, root: root}
	for i := range f.res {
		f.res[i] = fold(root, ctxFromIndex(i), false)
	}
	if f.res[ctxIndex(false, false)].kind == nFalse && f.res[ctxIndex(true, false)].kind == nFalse {
		return Filter{}, &FilterError{Expr: expr, Pos: 0, Msg: "expression rejects all packets"}
	}
	// The program must fit the kernel whatever the options add (a few instructions).
	prog, err := f.program(ProgramOptions{})
	if err == nil && len(prog) > maxInstructions-optionsSlack {
		err = fmt.Errorf("program has %d instructions, more than %d", len(prog), maxInstructions-optionsSlack)
	}
	if err != nil {
		return Filter{}, &FilterError{Expr: expr, Pos: 0, Msg: "too complex for the kernel: " + err.Error()}
	}
	return f, nil
}

// maxDepth bounds the nesting of parentheses, negations and arithmetic, so parsing, evaluation
// and code generation recurse boundedly (and/or chains are flat).
const maxDepth = 100

package capture

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrFilter is wrapped by every CompileFilter error.
var ErrFilter = errors.New("unsupported PCAP_FILTER")

// FilterSyntax describes the PCAP_FILTER subset CompileFilter accepts; error messages quote it.
const FilterSyntax = `terms "[udp|tcp] [src|dst] port N", "udp", "tcp", "icmp", "icmp6", ` +
	`joined with "or" (or "||"), parentheses allowed`

// maxTerms bounds a filter so the generated program's jumps stay within classic BPF's 8-bit
// conditional offsets.
const maxTerms = 24

// FilterError reports an expression CompileFilter cannot handle. It wraps ErrFilter.
type FilterError struct {
	Expr string // the whole expression
	Word int    // 1-based index of the offending word, 0 if not about one word
	Msg  string
}

func (e *FilterError) Error() string {
	where := ""
	if e.Word > 0 {
		where = fmt.Sprintf(" at word %d", e.Word)
	}
	return fmt.Sprintf("capture: PCAP_FILTER %q%s: %s; supported: %s", e.Expr, where, e.Msg, FilterSyntax)
}

func (e *FilterError) Unwrap() error { return ErrFilter }

// Direction says which port of a term must match.
type Direction uint8

// Port directions, as in pcap's "port", "src port" and "dst port".
const (
	SrcOrDst Direction = iota
	Dst
	Src
)

// Term is one alternative of a filter.
type Term struct {
	// Proto is ProtoUDP, ProtoTCP, ProtoICMP (IPv4 only, as in pcap), ProtoICMPv6 (IPv6 only),
	// or 0 for "UDP or TCP" (a bare "port N").
	Proto uint8
	// HasPort is false for a bare protocol ("udp", "icmp").
	HasPort bool
	Port    uint16
	Dir     Direction
}

// Match reports whether p (as ParseIP returns it) satisfies the term.
func (t Term) Match(p Packet) bool {
	switch t.Proto {
	case 0:
		if p.Proto != ProtoUDP && p.Proto != ProtoTCP {
			return false
		}
	case ProtoICMP:
		return p.Proto == ProtoICMP && p.Src.Addr().Is4()
	case ProtoICMPv6:
		return p.Proto == ProtoICMPv6 && p.Src.Addr().Is6()
	default:
		if p.Proto != t.Proto {
			return false
		}
	}
	if !t.HasPort {
		return true
	}
	switch t.Dir {
	case Dst:
		return p.Dst.Port() == t.Port
	case Src:
		return p.Src.Port() == t.Port
	default:
		return p.Dst.Port() == t.Port || p.Src.Port() == t.Port
	}
}

func (t Term) String() string {
	var parts []string
	switch t.Proto {
	case ProtoUDP:
		parts = append(parts, "udp")
	case ProtoTCP:
		parts = append(parts, "tcp")
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmp6"
	}
	if !t.HasPort {
		return strings.Join(parts, " ")
	}
	switch t.Dir {
	case Dst:
		parts = append(parts, "dst")
	case Src:
		parts = append(parts, "src")
	}
	return strings.Join(append(parts, "port", strconv.Itoa(int(t.Port))), " ")
}

// Filter is a compiled PCAP_FILTER: a disjunction of terms. The zero Filter matches nothing.
type Filter struct {
	Expr  string // the expression as given
	Terms []Term
}

// Match reports whether some term matches p. It is the userspace twin of the BPF program.
func (f Filter) Match(p Packet) bool {
	for _, t := range f.Terms {
		if t.Match(p) {
			return true
		}
	}
	return false
}

// String is the canonical form of the filter, e.g. "udp port 62201 or icmp".
func (f Filter) String() string {
	s := make([]string, len(f.Terms))
	for i, t := range f.Terms {
		s[i] = t.String()
	}
	return strings.Join(s, " or ")
}

// CompileFilter parses the PCAP_FILTER subset fwknopd configurations use (see FilterSyntax).
// Keywords are case-insensitive; ports are decimal 0..65535. Anything else ("and", "not",
// "host", port names, ranges) is an error wrapping ErrFilter that names the expression. Use
// Filter.Program to get the kernel BPF program.
func CompileFilter(expr string) (Filter, error) {
	p := filterParser{expr: expr, words: tokenize(expr)}
	if len(p.words) == 0 {
		return Filter{}, p.fail(0, "empty expression")
	}
	terms, err := p.parseOr(0)
	if err != nil {
		return Filter{}, err
	}
	if p.pos < len(p.words) {
		return Filter{}, p.fail(p.pos+1, fmt.Sprintf("unexpected %q", p.words[p.pos]))
	}
	if len(terms) > maxTerms {
		return Filter{}, p.fail(0, fmt.Sprintf("more than %d terms", maxTerms))
	}
	return Filter{Expr: expr, Terms: terms}, nil
}

// tokenize splits on white space and makes each parenthesis a word of its own.
func tokenize(s string) []string {
	s = strings.ReplaceAll(s, "(", " ( ")
	s = strings.ReplaceAll(s, ")", " ) ")
	return strings.Fields(strings.ToLower(s))
}

type filterParser struct {
	expr  string
	words []string
	pos   int
}

func (p *filterParser) fail(word int, msg string) error {
	return &FilterError{Expr: p.expr, Word: word, Msg: msg}
}

// failHere reports msg at the current word, or at no word when the expression has ended.
func (p *filterParser) failHere(msg string) error {
	if p.pos < len(p.words) {
		return p.fail(p.pos+1, msg)
	}
	return p.fail(0, msg+" (expression ends early)")
}

func (p *filterParser) peek() string {
	if p.pos < len(p.words) {
		return p.words[p.pos]
	}
	return ""
}

// parseOr parses alternatives separated by "or"; depth counts open parentheses.
func (p *filterParser) parseOr(depth int) ([]Term, error) {
	var terms []Term
	for {
		alt, err := p.parseAlt(depth)
		if err != nil {
			return nil, err
		}
		terms = append(terms, alt...)
		if w := p.peek(); w != "or" && w != "||" {
			return terms, nil
		}
		p.pos++
	}
}

func (p *filterParser) parseAlt(depth int) ([]Term, error) {
	switch w := p.peek(); w {
	case "":
		return nil, p.fail(0, "expression ends early")
	case "(":
		if depth > 8 {
			return nil, p.fail(p.pos+1, "parentheses nested too deep")
		}
		p.pos++
		terms, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, p.failHere("missing )")
		}
		p.pos++
		return terms, nil
	default:
		t, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		return []Term{t}, nil
	}
}

func (p *filterParser) parseTerm() (Term, error) {
	var t Term
	start := p.pos
	switch p.peek() {
	case "icmp":
		p.pos++
		return Term{Proto: ProtoICMP}, nil
	case "icmp6":
		p.pos++
		return Term{Proto: ProtoICMPv6}, nil
	case "udp":
		t.Proto = ProtoUDP
		p.pos++
	case "tcp":
		t.Proto = ProtoTCP
		p.pos++
	}
	switch p.peek() {
	case "dst":
		t.Dir = Dst
		p.pos++
	case "src":
		t.Dir = Src
		p.pos++
	}
	if p.peek() != "port" {
		if t.Proto != 0 && p.pos == start+1 {
			return t, nil // bare "udp" or "tcp"
		}
		if w := p.peek(); w != "" {
			return Term{}, p.fail(p.pos+1, fmt.Sprintf("unsupported word %q", w))
		}
		return Term{}, p.fail(0, "expression ends early")
	}
	p.pos++
	w := p.peek()
	n, err := strconv.ParseUint(w, 10, 16)
	if err != nil {
		return Term{}, p.failHere(fmt.Sprintf("want a port number 0..65535, got %q", w))
	}
	p.pos++
	t.HasPort, t.Port = true, uint16(n)
	return t, nil
}

package capture

import (
	"bufio"
	"context"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The grammar is libpcap's (pcap-filter(7), gencode.c's grammar.y), parsed by recursive
// descent over the tokens lex makes:
//
//	expr  = term { ("and"|"&&"|"or"|"||") (term | id) }   left-associative, equal precedence
//	term  = ("not"|"!") term | "(" expr ")" | head id | pname | arith relop arith | other
//	head  = [pname] [dir] (host|net|port|portrange) | [pname] dir | [ip|ip6] (proto|protochain)
//	id    = value | ("not"|"!") id | "(" id { ("and"|"or") id } ")"
//
// A bare id after and/or, or inside parentheses after a head, takes the qualifiers of the
// primitive before it: "udp port 62201 or 62202" is "udp port 62201 or udp port 62202".

type tokKind uint8

const (
	tEOF tokKind = iota
	tWord
	tLParen
	tRParen
	tLBrack
	tRBrack
	tColon
	tOp
)

type token struct {
	kind tokKind
	text string // a word as written (without a leading backslash), or the operator
	pos  int
	esc  bool // the word was written with a backslash: never a keyword ("proto \udp")
}

// lex splits expr into tokens. Words run over letters, digits and "_.-", and ':' outside
// brackets (IPv6 addresses); a '-' starting a token is the minus operator.
func lex(expr string) ([]token, error) {
	var toks []token
	brackets := 0
	isWordByte := func(c byte, first bool) bool {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			return true
		case c == ':':
			return brackets == 0
		case c == '.' || c == '-':
			return !first
		}
		return false
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c == '\\' || isWordByte(c, true):
			start, esc := i, c == '\\'
			if esc {
				i++
			}
			j := i
			for j < len(expr) && isWordByte(expr[j], j == i) {
				j++
			}
			if j == i {
				return nil, &FilterError{Expr: expr, Pos: start, Msg: "a backslash must precede a name"}
			}
			toks = append(toks, token{kind: tWord, text: expr[i:j], pos: start, esc: esc})
			i = j
			continue
		}
		t := token{pos: i, text: string(c)}
		switch c {
		case '(':
			t.kind = tLParen
		case ')':
			t.kind = tRParen
		case '[':
			t.kind, brackets = tLBrack, brackets+1
		case ']':
			t.kind, brackets = tRBrack, max(0, brackets-1)
		case ':':
			t.kind = tColon
		case '+', '-', '*', '/', '%', '^':
			t.kind = tOp
		case '&', '|', '=', '!', '<', '>':
			t.kind = tOp
			if i+1 < len(expr) {
				two := expr[i : i+2]
				switch two {
				case "&&", "||", "==", "!=", "<=", ">=", "<<", ">>":
					t.text = two
				}
			}
		default:
			return nil, &FilterError{Expr: expr, Pos: i, Msg: fmt.Sprintf("unexpected character %q", c)}
		}
		toks = append(toks, t)
		i += len(t.text)
	}
	return append(toks, token{kind: tEOF, pos: -1}), nil
}

// Words that are never values. linkWords need a link-layer header, which a cooked capture
// does not have.
var (
	pnames = map[string]bool{"ip": true, "ip6": true, "tcp": true, "udp": true, "sctp": true,
		"icmp": true, "icmp6": true, "igmp": true, "igrp": true, "pim": true, "vrrp": true,
		"carp": true, "ah": true, "esp": true}
	otherKeywords = map[string]bool{"and": true, "or": true, "not": true, "host": true, "net": true,
		"port": true, "portrange": true, "proto": true, "protochain": true, "src": true, "dst": true,
		"less": true, "greater": true, "len": true, "multicast": true, "broadcast": true,
		"mask": true, "gateway": true}
	linkWords = map[string]bool{"ether": true, "fddi": true, "tr": true, "wlan": true, "link": true,
		"ppp": true, "slip": true, "arp": true, "rarp": true, "atalk": true, "aarp": true,
		"decnet": true, "lat": true, "sca": true, "moprc": true, "mopdl": true, "iso": true,
		"esis": true, "es-is": true, "isis": true, "is-is": true, "clnp": true, "stp": true,
		"ipx": true, "netbeui": true, "vlan": true, "mpls": true, "pppoed": true, "pppoes": true,
		"geneve": true, "vxlan": true, "llc": true, "radio": true, "type": true, "subtype": true,
		"addr1": true, "addr2": true, "addr3": true, "addr4": true, "ra": true, "ta": true,
		"inbound": true, "outbound": true, "ifindex": true, "pflog": true, "l1": true, "l2": true,
		"iih": true, "lsp": true, "snp": true, "csnp": true, "psnp": true, "on": true,
		"rnr": true, "rulenum": true, "reason": true, "rset": true, "ruleset": true,
		"srnr": true, "subrulenum": true, "action": true, "atm": true, "lane": true,
		"oamf4": true, "oamf4ec": true, "oamf4sc": true, "oam": true, "metac": true,
		"bcc": true, "sc": true, "ilmic": true, "connectmsg": true, "metaconnect": true,
		"vpi": true, "vci": true, "fisu": true, "lssu": true, "msu": true, "sio": true,
		"opc": true, "dpc": true, "sls": true, "hsls": true, "hfisu": true, "hlssu": true,
		"hmsu": true, "hsio": true, "hopc": true, "hdpc": true}
)

// namedNumbers are libpcap's named constants, usable wherever a number is.
var namedNumbers = map[string]uint32{
	"tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
	"icmptype": 0, "icmpcode": 1, "icmp-echoreply": 0, "icmp-unreach": 3,
	"icmp-sourcequench": 4, "icmp-redirect": 5, "icmp-echo": 8, "icmp-routeradvert": 9,
	"icmp-routersolicit": 10, "icmp-timxceed": 11, "icmp-paramprob": 12, "icmp-tstamp": 13,
	"icmp-tstampreply": 14, "icmp-ireq": 15, "icmp-ireqreply": 16, "icmp-maskreq": 17,
	"icmp-maskreply": 18, "icmp6type": 0, "icmp6code": 1, "icmp6-destinationunreach": 1,
	"icmp6-packettoobig": 2, "icmp6-timeexceeded": 3, "icmp6-parameterproblem": 4,
	"icmp6-echo": 128, "icmp6-echoreply": 129, "icmp6-multicastlistenerquery": 130,
	"icmp6-multicastlistenerreportv1": 131, "icmp6-multicastlistenerdone": 132,
	"icmp6-routersolicit": 133, "icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135,
	"icmp6-neighboradvert": 136, "icmp6-redirect": 137, "icmp6-routerrenum": 138,
	"icmp6-nodeinformationquery": 139, "icmp6-nodeinformationresponse": 140,
	"icmp6-ineighbordiscoverysolicit": 141, "icmp6-ineighbordiscoveryadvert": 142,
	"icmp6-multicastlistenerreportv2": 143, "icmp6-homeagentdiscoveryrequest": 144,
	"icmp6-homeagentdiscoveryreply": 145, "icmp6-mobileprefixsolicit": 146,
	"icmp6-mobileprefixadvert": 147, "icmp6-certpathsolicit": 148,
	"icmp6-certpathadvert": 149, "icmp6-multicastrouteradvert": 151,
	"icmp6-multicastroutersolicit": 152, "icmp6-multicastrouterterm": 153,
}

// qual is a primitive's qualifiers, which a following bare value inherits.
type qual struct {
	proto string  // a pname, or ""
	dir   dirQual // dirSrcOrDst when none was given
	addr  string  // host, net, port, portrange, proto, protochain, or "" (host)
	none  bool    // the primitive had no qualifiers (or the expression just began): nothing to inherit
}

type parser struct {
	expr  string
	toks  []token
	pos   int
	depth int
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) peekN(n int) token {
	return p.toks[min(p.pos+n, len(p.toks)-1)]
}
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tEOF {
		p.pos++
	}
	return t
}

func (p *parser) failAt(t token, msg string) error {
	return &FilterError{Expr: p.expr, Pos: t.pos, Msg: msg}
}

// kw returns the keyword t is ("" for a value, an operator or a backslashed word).
func kw(t token) string {
	if t.kind != tWord || t.esc {
		return ""
	}
	w := strings.ToLower(t.text)
	if pnames[w] || otherKeywords[w] || linkWords[w] {
		return w
	}
	return ""
}

func isOp(t token, ops ...string) bool {
	if t.kind != tOp {
		return false
	}
	for _, o := range ops {
		if t.text == o {
			return true
		}
	}
	return false
}

func (p *parser) isAnd(t token) bool { return kw(t) == "and" || isOp(t, "&&") }
func (p *parser) isOr(t token) bool  { return kw(t) == "or" || isOp(t, "||") }
func (p *parser) isNot(t token) bool { return kw(t) == "not" || isOp(t, "!") }

func (p *parser) enter() error {
	if p.depth++; p.depth > maxDepth {
		return p.failAt(p.peek(), fmt.Sprintf("nested more than %d deep", maxDepth))
	}
	return nil
}

// expr parses and/or chains. outer is the qualifier context before it (for "(expr)").
func (p *parser) parseExpr(outer qual) (*node, qual, error) {
	n, q, err := p.term(outer)
	if err != nil {
		return nil, q, err
	}
	for {
		t := p.peek()
		var kind nodeKind
		switch {
		case p.isAnd(t):
			kind = nAnd
		case p.isOr(t):
			kind = nOr
		default:
			return n, q, nil
		}
		p.next()
		var m *node
		if p.idStarts() {
			if q.none {
				return nil, q, p.failAt(p.peek(), "a value must follow a qualifier such as host, net or port "+
					"(the primitive before the and/or has none to inherit)")
			}
			m, err = p.id(q)
		} else {
			m, q, err = p.term(q)
		}
		if err != nil {
			return nil, q, err
		}
		n = join(kind, n, m)
	}
}

// idStarts reports whether a bare value (possibly negated or parenthesised) comes next.
func (p *parser) idStarts() bool {
	for i := 0; ; i++ {
		t := p.peekN(i)
		switch {
		case p.isNot(t) || t.kind == tLParen:
			continue
		case t.kind != tWord || kw(t) != "":
			return false
		}
		// A number followed by an operator is arithmetic ("1 + 2 = 3").
		_, num := parseNumber(t.text)
		return !num || t.esc || !p.arithFollows(i+1)
	}
}

func (p *parser) arithFollows(i int) bool {
	t := p.peekN(i)
	return t.kind == tOp && !isOp(t, "&&", "||", "!")
}

// term parses one primitive, negation or parenthesised expression.
func (p *parser) term(outer qual) (*node, qual, error) {
	if err := p.enter(); err != nil {
		return nil, outer, err
	}
	defer func() { p.depth-- }()
	t := p.peek()
	none := qual{none: true}
	switch {
	case t.kind == tEOF:
		return nil, outer, p.failAt(t, "the expression ends early")
	case p.isNot(t):
		p.next()
		n, q, err := p.term(outer)
		if err != nil {
			return nil, q, err
		}
		return notNode(n), q, nil
	case t.kind == tLParen:
		save := p.pos
		if n, err := p.relation(); err == nil {
			return n, none, nil
		}
		p.pos = save
		p.next()
		n, _, err := p.parseExpr(outer)
		if err != nil {
			return nil, outer, err
		}
		if c := p.peek(); c.kind != tRParen {
			return nil, outer, p.failAt(c, "missing )")
		}
		p.next()
		return n, outer, nil
	case isOp(t, "-"):
		n, err := p.relation()
		return n, none, err
	case t.kind != tWord:
		return nil, outer, p.failAt(t, fmt.Sprintf("unexpected %q", t.text))
	}
	w := kw(t)
	switch {
	case w == "":
		if _, num := parseNumber(t.text); (num || t.esc) && p.arithFollows(1) {
			n, err := p.relation()
			return n, none, err
		}
		return nil, outer, p.failAt(t, fmt.Sprintf("%q needs a qualifier before it, such as host, net or port", t.text))
	case w == "len":
		n, err := p.relation()
		return n, none, err
	case w == "less" || w == "greater":
		p.next()
		v, err := p.number()
		if err != nil {
			return nil, outer, err
		}
		rel := relLe
		if w == "greater" {
			rel = relGe
		}
		return &node{kind: nRel, rel: rel, l: &arith{kind: aLen}, r: &arith{kind: aConst, val: v}}, none, nil
	case linkWords[w]:
		return nil, outer, p.linkError(t, w)
	case w == "multicast" || w == "broadcast":
		return nil, outer, p.failAt(t, fmt.Sprintf("a link-layer %s needs a link-layer header; write \"ip %s\"%s",
			w, w, map[bool]string{true: " or \"ip6 multicast\"", false: ""}[w == "multicast"]))
	case pnames[w]:
		next := p.peekN(1)
		if next.kind == tLBrack {
			n, err := p.relation()
			return n, none, err
		}
		switch nw := kw(next); nw {
		case "multicast", "broadcast":
			p.next()
			p.next()
			return p.castNode(t, w, nw)
		case "src", "dst", "host", "net", "port", "portrange", "proto", "protochain", "gateway":
			p.next()
			return p.head(t, w)
		}
		p.next()
		if w == "ip" || w == "ip6" {
			f := fam4
			if w == "ip6" {
				f = fam6
			}
			return &node{kind: nFamily, fam: f}, none, nil
		}
		for _, pn := range protoNames {
			if pn.name == w || (w == "carp" && pn.name == "vrrp") {
				return &node{kind: nProto, fam: pn.fam, proto: pn.proto}, none, nil
			}
		}
		return nil, outer, p.failAt(t, fmt.Sprintf("unknown protocol %q", w))
	case w == "src" || w == "dst" || w == "host" || w == "net" || w == "port" || w == "portrange" ||
		w == "proto" || w == "protochain" || w == "gateway":
		return p.head(t, "")
	}
	return nil, outer, p.failAt(t, fmt.Sprintf("unexpected %q", t.text))
}

func (p *parser) linkError(t token, w string) error {
	switch w {
	case "inbound", "outbound":
		return p.failAt(t, fmt.Sprintf("%q is not supported: the direction is ENABLE_PCAP_ANY_DIRECTION's", w))
	}
	return p.failAt(t, fmt.Sprintf("%q needs a link-layer header, and sesame's filter starts at the IP header", t.text))
}

func (p *parser) castNode(t token, pname, cast string) (*node, qual, error) {
	none := qual{none: true}
	switch {
	case cast == "multicast" && pname == "ip":
		return &node{kind: nMulticast, fam: fam4}, none, nil
	case cast == "multicast" && pname == "ip6":
		return &node{kind: nMulticast, fam: fam6}, none, nil
	case cast == "broadcast" && pname == "ip":
		return &node{kind: nBroadcast}, none, nil
	}
	return nil, none, p.failAt(t, fmt.Sprintf("%q does not apply to %q", cast, pname))
}

// head parses [dir] [host|net|port|portrange|proto|protochain] after an optional pname (at
// t), then the value.
func (p *parser) head(t token, pname string) (*node, qual, error) {
	q := qual{proto: pname}
	switch kw(p.peek()) {
	case "src", "dst":
		first := kw(p.next())
		q.dir = dirSrc
		if first == "dst" {
			q.dir = dirDst
		}
		c, other := p.peek(), kw(p.peekN(1))
		if (p.isOr(c) || p.isAnd(c)) && (other == "src" || other == "dst") && other != first {
			p.next()
			p.next()
			q.dir = dirSrcOrDst
			if p.isAnd(c) {
				q.dir = dirSrcAndDst
			}
		}
	}
	switch a := kw(p.peek()); a {
	case "host", "net", "port", "portrange":
		p.next()
		q.addr = a
	case "proto", "protochain":
		if q.dir != dirSrcOrDst || (q.proto != "" && q.proto != "ip" && q.proto != "ip6") {
			return nil, q, p.failAt(p.peek(), fmt.Sprintf("%q takes no direction and only ip or ip6 before it", a))
		}
		p.next()
		q.addr = a
	case "gateway":
		return nil, q, p.failAt(p.peek(), `"gateway" needs a link-layer header, and sesame's filter starts at the IP header`)
	}
	n, err := p.id(q)
	return n, q, err
}

// id parses a value with its qualifiers q, or a negated or parenthesised group of values.
func (p *parser) id(q qual) (*node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	t := p.peek()
	switch {
	case p.isNot(t):
		p.next()
		n, err := p.id(q)
		if err != nil {
			return nil, err
		}
		return notNode(n), nil
	case t.kind == tLParen:
		p.next()
		n, err := p.id(q)
		if err != nil {
			return nil, err
		}
		for {
			c := p.peek()
			var kind nodeKind
			switch {
			case p.isAnd(c):
				kind = nAnd
			case p.isOr(c):
				kind = nOr
			case c.kind == tRParen:
				p.next()
				return n, nil
			default:
				return nil, p.failAt(c, "missing )")
			}
			p.next()
			m, err := p.id(q)
			if err != nil {
				return nil, err
			}
			n = join(kind, n, m)
		}
	case t.kind != tWord || kw(t) != "":
		what := "a value"
		switch q.addr {
		case "port":
			what = "a port number or name"
		case "portrange":
			what = "a port range such as 1000-2000"
		case "proto", "protochain":
			what = "a protocol number or name"
		case "host", "":
			what = "an address"
		case "net":
			what = "a network"
		}
		if t.kind == tEOF {
			return nil, p.failAt(t, "expected "+what)
		}
		return nil, p.failAt(t, fmt.Sprintf("expected %s, got %q", what, t.text))
	}
	p.next()
	switch q.addr {
	case "port", "portrange":
		return p.portValue(t, q)
	case "proto", "protochain":
		return p.protoValue(t, q)
	case "net":
		return p.netValue(t, q)
	default:
		return p.hostValue(t, q)
	}
}

// famOf checks the pname before a host or net and returns the families it allows.
func (p *parser) famOf(t token, q qual, what string) (famSet, error) {
	switch q.proto {
	case "":
		return famAny, nil
	case "ip":
		return fam4, nil
	case "ip6":
		return fam6, nil
	}
	return 0, p.failAt(t, fmt.Sprintf("'%s' modifier applied to %s", q.proto, what))
}

func (p *parser) hostValue(t token, q qual) (*node, error) {
	fams, err := p.famOf(t, q, "host")
	if err != nil {
		return nil, err
	}
	if c := p.peek(); isOp(c, "/") || kw(c) == "mask" {
		return nil, p.failAt(c, "mask syntax is for networks only: write net")
	}
	var pfxs []netip.Prefix
	switch a, parts, ok := parseAddr(t.text); {
	case ok && a.Is6():
		pfxs = append(pfxs, netip.PrefixFrom(a, 128))
	case ok:
		// libpcap reads "host 10.1" as the network 10.1.0.0/16, and "host 10" as 0.0.0.10.
		bits := 32
		if parts > 1 {
			bits = 8 * parts
		}
		pfxs = append(pfxs, netip.PrefixFrom(a, bits))
	default:
		addrs, err := lookupHost(t.text)
		if err != nil || len(addrs) == 0 {
			return nil, p.failAt(t, fmt.Sprintf("unknown host %q", t.text))
		}
		for _, a := range addrs {
			if fams.has(a.Is6()) {
				pfxs = append(pfxs, netip.PrefixFrom(a, a.BitLen()))
			}
		}
		if len(pfxs) == 0 {
			return nil, p.failAt(t, fmt.Sprintf("host %q has no %saddress", t.text, famPrefix(fams)))
		}
	}
	var n *node
	for _, pfx := range pfxs {
		if !fams.has(pfx.Addr().Is6()) {
			other := "ip"
			if pfx.Addr().Is6() {
				other = "ip6"
			}
			return nil, p.failAt(t, fmt.Sprintf("'%s' modifier applied to %s host", q.proto, other))
		}
		h := &node{kind: nHost, dir: q.dir, pfx: pfx}
		if n == nil {
			n = h
		} else {
			n = join(nOr, n, h)
		}
	}
	return n, nil
}

func (p *parser) netValue(t token, q qual) (*node, error) {
	fams, err := p.famOf(t, q, "net")
	if err != nil {
		return nil, err
	}
	a, parts, ok := parseAddr(t.text)
	if !ok {
		return nil, p.failAt(t, fmt.Sprintf("%q is not a network address (network names are not looked up)", t.text))
	}
	bits := a.BitLen()
	written := t.text
	switch c := p.peek(); {
	case isOp(c, "/"):
		p.next()
		nt := p.next()
		v, ok := parseNumber(nt.text)
		if nt.kind != tWord || !ok || v > uint32(a.BitLen()) {
			return nil, p.failAt(nt, fmt.Sprintf("want a prefix length 0..%d", a.BitLen()))
		}
		bits, written = int(v), written+"/"+nt.text
	case kw(c) == "mask":
		p.next()
		mt := p.next()
		m, mparts, ok := parseAddr(mt.text)
		if mt.kind != tWord || !ok || !a.Is4() || !m.Is4() || mparts != 4 {
			return nil, p.failAt(mt, "want an IPv4 mask a.b.c.d after mask, for an IPv4 network")
		}
		mv := binary32(m)
		if ones := bits32(mv); mv != ^uint32(0)<<(32-ones) || ones == 0 && mv != 0 {
			return nil, p.failAt(mt, fmt.Sprintf("mask %s is not contiguous", mt.text))
		}
		bits, written = bits32(mv), written+" mask "+mt.text
	case a.Is4() && parts < 4:
		if parts == 0 { // a number: shift it up to the first octet, as libpcap does
			v := binary32(a)
			bits = 32
			for v != 0 && v&0xff000000 == 0 {
				v <<= 8
				bits -= 8
			}
			a = addrFrom32(v)
		} else {
			bits = 8 * parts
		}
	}
	pfx := netip.PrefixFrom(a, bits)
	if pfx.Masked().Addr() != a {
		return nil, p.failAt(t, fmt.Sprintf("non-network bits set in %q", written))
	}
	if !fams.has(a.Is6()) {
		return nil, p.failAt(t, fmt.Sprintf("'%s' modifier applied to a network of the other family", q.proto))
	}
	return &node{kind: nHost, dir: q.dir, pfx: pfx}, nil
}

func bits32(v uint32) int { return bits.OnesCount32(v) }

func binary32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrFrom32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// parseAddr reads an IPv6 address, a dotted IPv4 address of 1 to 4 parts ("10.1" is 10.1.0.0;
// parts is 2), or a number (an IPv4 address in host order, parts 0).
func parseAddr(s string) (a netip.Addr, parts int, ok bool) {
	if strings.Contains(s, ":") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, 0, false
		}
		return a, 4, true
	}
	if !strings.Contains(s, ".") {
		v, ok := parseNumber(s)
		if !ok || !isDigits(s) {
			return netip.Addr{}, 0, false
		}
		return addrFrom32(v), 0, true
	}
	fields := strings.Split(s, ".")
	if len(fields) > 4 {
		return netip.Addr{}, 0, false
	}
	var b [4]byte
	for i, f := range fields {
		v, err := strconv.ParseUint(f, 10, 8)
		if err != nil || f == "" {
			return netip.Addr{}, 0, false
		}
		b[i] = byte(v)
	}
	return netip.AddrFrom4(b), len(fields), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == 'x' || c == 'X') {
			return false
		}
	}
	return s != ""
}

// parseNumber reads a decimal, 0x-hexadecimal or 0-octal number of up to 32 bits, or one of
// libpcap's named constants (tcp-syn, icmp-echo ...).
func parseNumber(s string) (uint32, bool) {
	if v, ok := namedNumbers[strings.ToLower(s)]; ok {
		return v, true
	}
	base, digits := 10, s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; c == '_' || c == '+' || c == '-' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

func (p *parser) number() (uint32, error) {
	t := p.next()
	v, ok := parseNumber(t.text)
	if t.kind != tWord || t.esc || !ok {
		return 0, p.failAt(t, fmt.Sprintf("want a number, got %q", t.text))
	}
	return v, nil
}

func (p *parser) portValue(t token, q qual) (*node, error) {
	ports := portAny
	switch q.proto {
	case "", "ip", "ip6":
	case "tcp", "udp", "sctp":
		ports = portProtoBit(map[string]uint8{"tcp": ProtoTCP, "udp": ProtoUDP, "sctp": protoSCTP}[q.proto])
	default:
		return nil, p.failAt(t, fmt.Sprintf("illegal qualifier of '%s': '%s'", q.addr, q.proto))
	}
	var lo, hi uint16
	if q.addr == "port" {
		v, got, err := p.port(t, t.text, ports)
		if err != nil {
			return nil, err
		}
		lo, hi, ports = v, v, got
	} else {
		ok := false
		for i := 1; i < len(t.text)-1 && !ok; i++ {
			if t.text[i] != '-' {
				continue
			}
			a, pa, err1 := p.port(t, t.text[:i], ports)
			b, pb, err2 := p.port(t, t.text[i+1:], ports)
			if err1 == nil && err2 == nil {
				lo, hi, ports, ok = min(a, b), max(a, b), pa&pb, true
			}
		}
		if !ok || ports == 0 {
			return nil, p.failAt(t, fmt.Sprintf("bad port range %q: want N-M with ports 0..65535 or names", t.text))
		}
	}
	n := &node{kind: nPort, dir: q.dir, lo: lo, hi: hi, ports: ports}
	switch q.proto {
	case "ip":
		return join(nAnd, &node{kind: nFamily, fam: fam4}, n), nil
	case "ip6":
		return join(nAnd, &node{kind: nFamily, fam: fam6}, n), nil
	}
	return n, nil
}

// port reads a port number or a service name; for a name it returns the protocols it is
// defined for (all three if it is defined for both tcp and udp, as libpcap does).
func (p *parser) port(t token, s string, want uint8) (uint16, uint8, error) {
	if v, ok := parseNumber(s); ok {
		if v > 65535 {
			return 0, 0, p.failAt(t, fmt.Sprintf("illegal port number %d > 65535", v))
		}
		return uint16(v), want, nil
	}
	e, ok := serviceTable()[strings.ToLower(s)]
	if !ok {
		return 0, 0, p.failAt(t, fmt.Sprintf("unknown port %q (not a number, not in %s)", s, servicesFile))
	}
	switch want {
	case portTCP, portUDP, portSCTP:
		v := map[uint8]int{portTCP: e.tcp, portUDP: e.udp, portSCTP: e.sctp}[want]
		if v < 0 {
			return 0, 0, p.failAt(t, fmt.Sprintf("port %q is not defined for that protocol in %s", s, servicesFile))
		}
		return uint16(v), want, nil
	}
	switch {
	case e.tcp >= 0 && e.udp >= 0 && e.tcp != e.udp:
		return 0, 0, p.failAt(t, fmt.Sprintf("port %q is %d/tcp and %d/udp: write tcp or udp before port", s, e.tcp, e.udp))
	case e.tcp >= 0 && e.udp >= 0:
		return uint16(e.tcp), portAny, nil
	case e.tcp >= 0:
		return uint16(e.tcp), portTCP, nil
	case e.udp >= 0:
		return uint16(e.udp), portUDP, nil
	}
	return uint16(e.sctp), portSCTP, nil
}

func (p *parser) protoValue(t token, q qual) (*node, error) {
	fams, err := p.famOf(t, q, q.addr)
	if err != nil {
		return nil, err
	}
	var v uint32
	if n, ok := parseNumber(t.text); ok && !t.esc {
		v = n
	} else if n, ok := protocolNumber(t.text); ok {
		v = uint32(n)
	} else {
		return nil, p.failAt(t, fmt.Sprintf("unknown protocol %q", t.text))
	}
	if v > 255 {
		return nil, p.failAt(t, fmt.Sprintf("protocol %d out of range 0..255", v))
	}
	return &node{kind: nProto, fam: fams, proto: uint8(v)}, nil
}

// relation parses "arith relop arith".
func (p *parser) relation() (*node, error) {
	l, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	t := p.next()
	var rel relOp
	switch {
	case isOp(t, "=", "=="):
		rel = relEq
	case isOp(t, "!="):
		rel = relNe
	case isOp(t, ">"):
		rel = relGt
	case isOp(t, ">="):
		rel = relGe
	case isOp(t, "<"):
		rel = relLt
	case isOp(t, "<="):
		rel = relLe
	default:
		return nil, p.failAt(t, "want a comparison (=, !=, <, <=, >, >=)")
	}
	r, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	return &node{kind: nRel, rel: rel, l: l, r: r}, nil
}

// arithLevels lists the binary operators from the loosest binding to the tightest, as in
// libpcap's grammar.
var arithLevels = [][]string{{"|", "^"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "/", "%"}}

var binOps = map[string]binOp{"+": opAdd, "-": opSub, "*": opMul, "/": opDiv, "%": opMod,
	"&": opAnd, "|": opOr, "^": opXor, "<<": opShl, ">>": opShr}

func (p *parser) arith(level int) (*arith, error) {
	if level == len(arithLevels) {
		return p.unary()
	}
	x, err := p.arith(level + 1)
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !isOp(t, arithLevels[level]...) {
			return x, nil
		}
		p.next()
		y, err := p.arith(level + 1)
		if err != nil {
			return nil, err
		}
		op := binOps[t.text]
		if y.kind == aConst && y.val == 0 && (op == opDiv || op == opMod) {
			return nil, p.failAt(t, "division by zero")
		}
		if x.kind == aConst && y.kind == aConst {
			v, _ := op.apply(x.val, y.val)
			x = &arith{kind: aConst, val: v}
			continue
		}
		x = &arith{kind: aBin, op: op, x: x, y: y}
	}
}

func (p *parser) unary() (*arith, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	t := p.next()
	switch {
	case isOp(t, "-"):
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if x.kind == aConst {
			return &arith{kind: aConst, val: -x.val}, nil
		}
		return &arith{kind: aNeg, x: x}, nil
	case t.kind == tLParen:
		x, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, p.failAt(c, "missing )")
		}
		return x, nil
	case t.kind != tWord:
		return nil, p.failAt(t, "want a number, len or a header index such as udp[8:2]")
	}
	w := kw(t)
	switch {
	case w == "":
		v, ok := parseNumber(t.text)
		if !ok || t.esc {
			return nil, p.failAt(t, fmt.Sprintf("want a number, got %q", t.text))
		}
		return &arith{kind: aConst, val: v}, nil
	case w == "len":
		return &arith{kind: aLen}, nil
	case linkWords[w]:
		return nil, p.linkError(t, w)
	}
	base := -1
	for i, n := range baseNames {
		if n == w {
			base = i
		}
	}
	if base < 0 {
		return nil, p.failAt(t, fmt.Sprintf("want a number, len or a header index such as udp[8:2], got %q", t.text))
	}
	if c := p.next(); c.kind != tLBrack {
		return nil, p.failAt(c, fmt.Sprintf("want [ after %s in an arithmetic expression", w))
	}
	off, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	size := uint8(1)
	if p.peek().kind == tColon {
		p.next()
		st := p.peek()
		v, err := p.number()
		if err != nil {
			return nil, err
		}
		if v != 1 && v != 2 && v != 4 {
			return nil, p.failAt(st, "data size must be 1, 2, or 4")
		}
		size = uint8(v)
	}
	if c := p.next(); c.kind != tRBrack {
		return nil, p.failAt(c, "missing ]")
	}
	return &arith{kind: aLoad, base: loadBase(base), size: size, x: off}, nil
}

// Name resolution, done once at compile time as libpcap does. Tests replace these.
var (
	servicesFile  = "/etc/services"
	protocolsFile = "/etc/protocols"
	lookupHost    = func(name string) ([]netip.Addr, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
		for i := range addrs {
			addrs[i] = addrs[i].Unmap().WithZone("")
		}
		return addrs, err
	}
)

type service struct{ tcp, udp, sctp int }

var (
	servicesOnce sync.Once
	services     map[string]service
)

// serviceTable reads servicesFile ("name port/proto aliases..." lines) once.
func serviceTable() map[string]service {
	servicesOnce.Do(func() {
		services = map[string]service{}
		readTable(servicesFile, func(names []string, num string) {
			port, proto, ok := strings.Cut(num, "/")
			n, err := strconv.Atoi(port)
			if !ok || err != nil || n < 0 || n > 65535 {
				return
			}
			for _, name := range names {
				name = strings.ToLower(name)
				e, seen := services[name]
				if !seen {
					e = service{-1, -1, -1}
				}
				switch proto {
				case "tcp":
					e.tcp = n
				case "udp":
					e.udp = n
				case "sctp":
					e.sctp = n
				}
				services[name] = e
			}
		})
	})
	return services
}

// protocolNumber looks a protocol name up: libpcap's own names first, then protocolsFile.
func protocolNumber(name string) (uint8, bool) {
	name = strings.ToLower(name)
	for _, p := range protoNames {
		if p.name == name {
			return p.proto, true
		}
	}
	if name == "ip" {
		return 4, true
	}
	if name == "ip6" {
		return 41, true
	}
	var v uint8
	found := false
	readTable(protocolsFile, func(names []string, num string) {
		n, err := strconv.Atoi(num)
		if found || err != nil || n < 0 || n > 255 {
			return
		}
		for _, nm := range names {
			if strings.ToLower(nm) == name {
				v, found = uint8(n), true
			}
		}
	})
	return v, found
}

// readTable calls fn for each line "name number aliases... # comment" of the file at path.
func readTable(path string, fn func(names []string, num string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		fn(append([]string{fs[0]}, fs[2:]...), fs[1])
	}
}

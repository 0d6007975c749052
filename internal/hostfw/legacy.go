package hostfw

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// parseSave parses the output of `iptables -S` (or ip6tables) for one whole table, as
// iptables 1.8 prints it (lines "-P CHAIN POLICY", "-N CHAIN", "-A CHAIN MATCHES... -j TARGET";
// arguments with characters other than letters, digits, '-' and '_' are double-quoted with
// '"', '\” and '\\' escaped by a backslash), into chains of the model. Built-in chains
// (those with a -P line) are base chains. family is "ip" or "ip6"; table names the table.
func parseSave(out, family, table string) (map[string]*chainModel, error) {
	chains := map[string]*chainModel{}
	get := func(name string) *chainModel {
		c := chains[name]
		if c == nil {
			c = &chainModel{family: family, table: table, name: name, siblings: chains}
			chains[name] = c
		}
		return c
	}
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f, err := splitSave(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: %q: no chain", n+1, line)
		}
		switch f[0] {
		case "-P":
			if len(f) != 3 {
				return nil, fmt.Errorf("line %d: %q: want -P CHAIN POLICY", n+1, line)
			}
			c := get(f[1])
			c.base = true
			c.policyDrop = f[2] == "DROP"
		case "-N":
			get(f[1])
		case "-A":
			c := get(f[1])
			c.rules = append(c.rules, parseSaveRule(len(c.rules)+1, f[2:], chains))
		default:
			return nil, fmt.Errorf("line %d: %q: not -P, -N or -A", n+1, line)
		}
	}
	return chains, nil
}

// splitSave splits one line of iptables -S output into arguments, undoing its quoting.
func splitSave(line string) ([]string, error) {
	var f []string
	for i := 0; i < len(line); {
		if line[i] == ' ' || line[i] == '\t' {
			i++
			continue
		}
		if line[i] != '"' {
			j := strings.IndexAny(line[i:], " \t")
			if j < 0 {
				j = len(line) - i
			}
			f = append(f, line[i:i+j])
			i += j
			continue
		}
		var b strings.Builder
		i++
		for {
			if i >= len(line) {
				return nil, errors.New("unterminated quote")
			}
			c := line[i]
			if c == '"' {
				i++
				break
			}
			if c == '\\' && i+1 < len(line) {
				i++
				c = line[i]
			}
			b.WriteByte(c)
			i++
		}
		f = append(f, b.String())
	}
	return f, nil
}

// parseSaveRule turns the arguments of one -A line (after the chain name) into a rule.
func parseSaveRule(pos int, args []string, chains map[string]*chainModel) rule {
	r := rule{pos: pos}
	neg := false
	add := func(c cond) {
		if neg {
			c = notCond(c)
		}
		r.conds = append(r.conds, c)
		neg = false
	}
	next := func(i int) (string, bool) {
		if i+1 < len(args) {
			return args[i+1], true
		}
		return "", false
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		v, ok := next(i)
		switch a {
		case "!":
			neg = !neg
			continue
		case "-j", "--jump", "-g", "--goto":
			if !ok {
				r.conds = append(r.conds, anyCond)
				return r
			}
			switch {
			case a == "-g" || a == "--goto":
				r.branches = []branch{{verdict: vGoto, target: v, what: "goto"}}
			case chains[v] != nil || isUserChain(v):
				r.branches = []branch{{verdict: vJump, target: v, what: "jump"}}
			default:
				if b, ok := xtTarget(v); ok {
					r.branches = []branch{b}
				}
			}
			return r // what follows are the target's options
		case "-m", "--match":
			i++ // the module's options follow as their own arguments
			neg = false
			continue
		case "-p", "--protocol":
			i++
			add(protoNameCond(v))
		case "-i", "--in-interface":
			i++
			if v == "lo" {
				add(loCond)
			} else {
				add(anyCond)
			}
		case "--dport", "--destination-port", "--dports", "--destination-ports":
			i++
			add(portListCond(v))
		case "--ctstate", "--state":
			i++
			add(stateNamesCond(v))
		case "--mark":
			i++
			add(markArgCond(v))
		case "--comment":
			i++
			if v == hookComment {
				r.sesame = true
			}
			neg = false
		default:
			// Anything else (-s, -d, -o, --sport, --icmp-type, -m set ...) is left undecided;
			// skip its values.
			add(anyCond)
			for i+1 < len(args) && args[i+1] != "!" && !strings.HasPrefix(args[i+1], "-") {
				i++
			}
		}
	}
	return r
}

// isUserChain reports whether a -j target names a chain rather than a target extension:
// iptables' target extensions are upper case, chains (ufw-before-input) usually are not.
func isUserChain(name string) bool { return strings.ToUpper(name) != name }

var protoNumbers = map[string]uint8{
	"tcp": protoTCP, "udp": protoUDP, "icmp": protoICMP, "ipv6-icmp": protoICMPv6, "icmpv6": protoICMPv6,
	"sctp": 132, "udplite": 136, "esp": 50, "ah": 51, "gre": 47, "dccp": 33, "all": 0,
}

func protoNameCond(s string) cond {
	if n, ok := protoNumbers[strings.ToLower(s)]; ok {
		return protoCond(n)
	}
	if n, err := strconv.ParseUint(s, 10, 8); err == nil {
		return protoCond(uint8(n))
	}
	return anyCond
}

// portListCond: "22", "1000:2000" or a multiport list "22,80:90".
func portListCond(s string) cond {
	var cs []cond
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		if !isRange {
			hi = lo
		}
		l, err1 := parsePort(lo, 0)
		h, err2 := parsePort(hi, 0xffff)
		if err1 != nil || err2 != nil {
			return anyCond
		}
		cs = append(cs, dportCond(l, h))
	}
	return func(p packet) tri {
		r := never
		for _, c := range cs {
			r = max(r, c(p))
		}
		return r
	}
}

// parsePort parses a port number; empty gives def (":2000" and "1000:" are open ranges).
func parsePort(s string, def uint16) (uint16, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

var stateBits = map[string]uint32{
	"INVALID": 1, "ESTABLISHED": 2, "RELATED": 4, "NEW": ctStateNew, "UNTRACKED": 64,
}

// stateNamesCond: "RELATED,ESTABLISHED"; unknown names (SNAT, DNAT) do not hold for a new
// connection's first packet, which has not been NATed back.
func stateNamesCond(s string) cond {
	var mask uint32
	for _, n := range strings.Split(s, ",") {
		mask |= stateBits[strings.ToUpper(n)]
	}
	return stateCond(mask)
}

// markArgCond: "0x10000000/0x10000000" or "0x1" (mask 0xffffffff).
func markArgCond(s string) cond {
	vs, ms, hasMask := strings.Cut(s, "/")
	v, err := strconv.ParseUint(vs, 0, 32)
	if err != nil {
		return anyCond
	}
	m := uint64(0xffffffff)
	if hasMask {
		if m, err = strconv.ParseUint(ms, 0, 32); err != nil {
			return anyCond
		}
	}
	return markCond(uint32(v), uint32(m))
}

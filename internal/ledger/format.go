package ledger

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// header is the first line of a ledger file.
const header = "# sesame grant ledger v1"

// errNotLedger is wrapped when a file's first line is not header.
var errNotLedger = errors.New("not a sesame grant ledger v1")

// LoadStats describe what Open found in the file.
type LoadStats struct {
	Lines     int  // record lines after the header (not counting comments, empty lines or a torn tail)
	Loaded    int  // live entries after replaying the lines
	Expired   int  // entries the replay ended with that had expired
	Malformed int  // lines skipped because they did not parse
	Torn      bool // the file ended in a line without its newline (a write cut short), ignored
}

// rec is an entry's value in memory: expiry in Unix milliseconds, stanza and NAT values.
type rec struct {
	exp    int64
	stanza int
	snat   netip.Addr
	masq   bool
	nodnat bool
}

// recOf is e's value for the normalised key k (no NAT values on other than forward keys).
func recOf(k Key, e Entry) rec {
	r := rec{exp: ceilMilli(e.Expires), stanza: e.Stanza}
	if k.Kind == Forward {
		r.masq, r.nodnat = e.Masquerade, e.DisableDNAT && !k.ForwardAll
		if !r.masq && e.SNAT.IsValid() {
			r.snat = e.SNAT.Unmap().WithZone("")
		}
	}
	return r
}

// entry is the Entry of k with value r.
func (r rec) entry(k Key) Entry {
	return Entry{Key: k, Expires: time.UnixMilli(r.exp), Stanza: r.stanza, SNAT: r.snat, Masquerade: r.masq, DisableDNAT: r.nodnat}
}

// parse replays a ledger file into a map of the entries live at nowMs.
func parse(data []byte, nowMs int64) (map[Key]rec, LoadStats, error) {
	var st LoadStats
	m := make(map[Key]rec, len(data)/48)
	if len(data) == 0 {
		return m, st, nil
	}
	s := string(data) // one copy; every field below is a substring of it
	first, rest, ok := strings.Cut(s, "\n")
	if !ok {
		if strings.HasPrefix(header, first) { // the header itself was cut short
			st.Torn = true
			return m, st, nil
		}
		rest = ""
	}
	if first != header {
		return nil, st, fmt.Errorf("%w (first line %.40q)", errNotLedger, first)
	}
	for len(rest) > 0 {
		line, next, ok := strings.Cut(rest, "\n")
		if !ok {
			st.Torn = true
			break
		}
		rest = next
		if line == "" || line[0] == '#' {
			continue
		}
		st.Lines++
		if !apply(m, line) {
			st.Malformed++
		}
	}
	for k, r := range m {
		if r.exp <= nowMs {
			delete(m, k)
			st.Expired++
		}
	}
	st.Loaded = len(m)
	return m, st, nil
}

// apply replays one record line into m; false if it does not parse.
func apply(m map[Key]rec, line string) bool {
	var f [11]string // one more than the longest line, so a longer line is malformed
	n := 0
	for n < len(f) {
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			f[n] = line
			n++
			break
		}
		f[n], line = line[:i], line[i+1:]
		n++
	}
	switch {
	case n == 1 && f[0] == "*":
		clear(m)
		return true
	case (n == 6 || n == 8 || n == 10) && f[0] == "+":
		exp, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return false
		}
		k, ok := parseKey(f[2], f[3], f[4])
		if !ok {
			return false
		}
		stanza, err := strconv.Atoi(f[5])
		if err != nil {
			return false
		}
		r := rec{exp: exp, stanza: stanza}
		if n == 8 {
			if k, ok = parseDst(k, f[6], f[7]); !ok {
				return false
			}
		}
		if n == 10 {
			if k, ok = parseNAT(k, f[6], f[7]); !ok {
				return false
			}
			if r, ok = parseValues(k, r, f[8], f[9]); !ok {
				return false
			}
		}
		m[k] = r
		return true
	case (n == 4 || n == 6) && f[0] == "-":
		k, ok := parseKey(f[1], f[2], f[3])
		if ok && n == 6 && f[4] == "to" {
			k, ok = parseDst(k, f[4], f[5])
		} else if ok && n == 6 {
			k, ok = parseNAT(k, f[4], f[5])
		}
		if !ok {
			return false
		}
		delete(m, k)
		return true
	}
	return false
}

// parseDst reads an access line's "to <dst>" into k: an address of the source's family,
// unmapped, without zone.
func parseDst(k Key, to, dst string) (Key, bool) {
	if to != "to" {
		return Key{}, false
	}
	a, err := netip.ParseAddr(dst)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.Is4() != k.Src.Is4() {
		return Key{}, false
	}
	k.Dst = a
	return k, true
}

// parseNAT adds the kind and target fields to k.
func parseNAT(k Key, kind, nat string) (Key, bool) {
	switch kind {
	case kindNames[Forward]:
		k.Kind = Forward
	case kindNames[LocalNAT]:
		k.Kind = LocalNAT
	default:
		return Key{}, false
	}
	if nat == "-" {
		if k.Kind != Forward {
			return Key{}, false
		}
		k.ForwardAll = true
		return k, true
	}
	ap, err := netip.ParseAddrPort(nat)
	if err != nil || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
		return Key{}, false
	}
	k.NATAddr, k.NATPort = ap.Addr(), ap.Port()
	return k, true
}

// parseValues reads a NAT line's snat and opts fields into r.
func parseValues(k Key, r rec, snat, opts string) (rec, bool) {
	switch snat {
	case "-":
	case "masq":
		r.masq = true
	default:
		a, err := netip.ParseAddr(snat)
		if err != nil || a.Zone() != "" || a.Is4In6() {
			return rec{}, false
		}
		r.snat = a
	}
	switch opts {
	case "-":
	case "nodnat":
		r.nodnat = true
	default:
		return rec{}, false
	}
	if k.Kind != Forward && (r.masq || r.snat.IsValid() || r.nodnat) || k.ForwardAll && r.nodnat {
		return rec{}, false
	}
	return r, true
}

func parseKey(src, proto, port string) (Key, bool) {
	a, err := netip.ParseAddr(src)
	if err != nil {
		return Key{}, false
	}
	pr, err := strconv.ParseUint(proto, 10, 8)
	if err != nil {
		return Key{}, false
	}
	po, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Key{}, false
	}
	return Key{Src: a, Proto: uint8(pr), Port: uint16(po)}.norm(), true
}

// appendAdd formats a "+" line.
func appendAdd(b []byte, k Key, r rec) []byte {
	b = append(b, "+ "...)
	b = strconv.AppendInt(b, r.exp, 10)
	b = append(b, ' ')
	b = appendKey(b, k)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(r.stanza), 10)
	if k.Dst.IsValid() {
		b = appendDst(b, k)
	}
	if k.Kind != Access {
		b = appendNAT(b, k)
		b = append(b, ' ')
		switch {
		case r.masq:
			b = append(b, "masq"...)
		case r.snat.IsValid():
			b = r.snat.AppendTo(b)
		default:
			b = append(b, '-')
		}
		if r.nodnat {
			b = append(b, " nodnat"...)
		} else {
			b = append(b, " -"...)
		}
	}
	return append(b, '\n')
}

// appendNAT formats " <kind> <nat>".
func appendNAT(b []byte, k Key) []byte {
	b = append(b, ' ')
	b = append(b, kindNames[k.Kind]...)
	b = append(b, ' ')
	if k.ForwardAll {
		return append(b, '-')
	}
	return netip.AddrPortFrom(k.NATAddr, k.NATPort).AppendTo(b)
}

// appendRemove formats a "-" line.
func appendRemove(b []byte, k Key) []byte {
	b = append(b, "- "...)
	b = appendKey(b, k)
	if k.Dst.IsValid() {
		b = appendDst(b, k)
	}
	if k.Kind != Access {
		b = appendNAT(b, k)
	}
	return append(b, '\n')
}

// appendDst formats " to <dst>".
func appendDst(b []byte, k Key) []byte {
	b = append(b, " to "...)
	return k.Dst.AppendTo(b)
}

func appendKey(b []byte, k Key) []byte {
	b = k.Src.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(k.Proto), 10)
	b = append(b, ' ')
	return strconv.AppendUint(b, uint64(k.Port), 10)
}

// snapshot formats a whole file holding m.
func snapshot(m map[Key]rec) []byte {
	es := sorted(m)
	b := make([]byte, 0, len(header)+1+len(es)*48)
	b = append(b, header...)
	b = append(b, '\n')
	for _, e := range es {
		b = appendAdd(b, e.k, e.r)
	}
	return b
}

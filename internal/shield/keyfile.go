package shield

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// ErrInsecureKeyFile is returned when a key file can be read or written by group or
// others.
var ErrInsecureKeyFile = errors.New("key file is accessible by group or others (chmod 600 it)")

// LoadKeyFile reads a key file (see ParseKeyFile) after checking that it is a regular
// file whose mode grants nothing to group or others. Unlike fwknop, which only warns,
// sesame refuses such files, for servers and clients alike.
func LoadKeyFile(path string) ([]tcpmd5.KeyRule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s (mode %04o): %w", path, perm, ErrInsecureKeyFile)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	rules, err := ParseKeyFile(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return rules, nil
}

// ParseKeyFile reads the two key file formats.
//
// Single key: the first line is the key, in tcpmd5.ParseKey syntax (raw bytes, "hex:",
// "base64:" or "raw:"), and stands for every peer (tcpmd5.Any). A trailing "\r\n" or
// "\n" is not part of the key. Any further lines must be empty.
//
// Table: one rule per line, "PREFIX KEY", where PREFIX is a CIDR prefix, a single
// address (/32 or /128), or "any" (0.0.0.0/0 and ::/0 together), and KEY is the rest of
// the line, surrounding blanks removed, in ParseKey syntax. Blank lines and lines whose
// first non-blank character is '#' are ignored; there are no comments at the end of a
// line, since '#' may be part of a key. A prefix may appear only once.
//
// The file is a table when its first line is blank, starts with '#', or starts with a
// word that is a prefix, an address or "any" followed by a blank and a key. To use a
// single raw key that looks like that, write it with "raw:" or "hex:".
func ParseKeyFile(data []byte) ([]tcpmd5.KeyRule, error) {
	text := string(data)
	first, rest, _ := strings.Cut(text, "\n")
	first = strings.TrimSuffix(first, "\r")
	if !looksLikeTable(first) {
		if strings.TrimSpace(rest) != "" {
			return nil, errors.New("single-key file has more than one line (for a table, start lines with PREFIX or any)")
		}
		k, err := tcpmd5.ParseKey(first)
		if err != nil {
			return nil, fmt.Errorf("line 1: %w", err)
		}
		return tcpmd5.Any(k), nil
	}
	var rules []tcpmd5.KeyRule
	seen := map[netip.Prefix]int{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		word, keyText, ok := strings.Cut(line, " ")
		if w2, k2, ok2 := strings.Cut(line, "\t"); ok2 && (!ok || len(w2) < len(word)) {
			word, keyText, ok = w2, k2, true
		}
		if !ok {
			return nil, fmt.Errorf("line %d: want PREFIX KEY", n)
		}
		prefixes, err := parseWho(word)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		k, err := tcpmd5.ParseKey(strings.TrimSpace(keyText))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		for _, p := range prefixes {
			if prev, dup := seen[p]; dup {
				return nil, fmt.Errorf("line %d: %v already has a key on line %d", n, p, prev)
			}
			seen[p] = n
			rules = append(rules, tcpmd5.KeyRule{Prefix: p, Key: k})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, errors.New("key table has no rules")
	}
	return rules, nil
}

func looksLikeTable(first string) bool {
	t := strings.TrimSpace(first)
	if t == "" || t[0] == '#' {
		return true
	}
	word, rest, ok := strings.Cut(strings.ReplaceAll(t, "\t", " "), " ")
	if !ok || strings.TrimSpace(rest) == "" {
		return false
	}
	_, err := parseWho(word)
	return err == nil
}

// parseWho reads the PREFIX column: "any", a prefix or an address.
func parseWho(s string) ([]netip.Prefix, error) {
	if strings.EqualFold(s, "any") {
		return []netip.Prefix{tcpmd5.AnyIPv4, tcpmd5.AnyIPv6}, nil
	}
	p, err := tcpmd5.ParsePrefix(s)
	if err != nil {
		return nil, err
	}
	return []netip.Prefix{p}, nil
}

// KeyFor returns the key of the longest prefix in rules that contains addr, for clients
// that share the server's key table. ok is false when no rule matches.
func KeyFor(rules []tcpmd5.KeyRule, addr netip.Addr) (k tcpmd5.Key, ok bool) {
	addr = addr.Unmap().WithZone("")
	best := -1
	for _, r := range rules {
		if r.Prefix.Contains(addr) && r.Prefix.Bits() > best {
			k, best = r.Key, r.Prefix.Bits()
		}
	}
	return k, best >= 0
}

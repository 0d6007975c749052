package shield

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strings"
	"syscall"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// ErrInsecureKeyFile is returned when a key file can be read or written by group or
// others.
var ErrInsecureKeyFile = errors.New("key file is accessible by group or others (chmod 600 it)")

// MaxKeyFileSize is the largest key file LoadKeyFile reads: room for a few thousand table
// lines, far more than one listener's ~960 keys.
const MaxKeyFileSize = 1 << 20

// LoadKeyFile reads a key file (see ParseKeyFile) after checking that it is a regular
// file (a symlink to one is fine) whose mode grants nothing to group or others. A FIFO,
// device, socket or directory is refused before it is opened for reading, so a key file
// path that names a pipe never blocks. Unlike fwknop, which only warns about the mode,
// sesame refuses such files, for servers and clients alike. Files over MaxKeyFileSize
// are refused.
func LoadKeyFile(path string) ([]tcpmd5.KeyRule, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: is a %s, not a regular file", path, fileKind(st.Mode()))
	}
	// O_NONBLOCK: if the path was swapped for a FIFO since the Stat, the open returns at
	// once instead of waiting for a writer, and the check below refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	if st, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s: is a %s, not a regular file", path, fileKind(st.Mode()))
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s (mode %04o): %w", path, perm, ErrInsecureKeyFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(data) > MaxKeyFileSize {
		return nil, fmt.Errorf("key file %s: larger than %d bytes", path, MaxKeyFileSize)
	}
	rules, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return rules, nil
}

func fileKind(m fs.FileMode) string {
	switch m.Type() {
	case fs.ModeNamedPipe:
		return "named pipe (FIFO)"
	case fs.ModeDir:
		return "directory"
	case fs.ModeSocket:
		return "socket"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "device"
	}
	return "special file (" + m.Type().String() + ")"
}

// bom is the UTF-8 byte-order mark some editors put at the start of a file.
const bom = "\uFEFF"

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
// word that is a prefix, an address or "any" followed by a blank and a key.
//
// Ambiguous files are refused, with the line number, rather than guessed: a first line
// that is only a prefix, address or "any" (a table line whose key was forgotten), or
// whose first word looks like an address or prefix but is not a valid one
// ("10.0.0.0/33 key", "300.1.2.3"), would otherwise become one raw key for everyone. A
// single key that really reads like that is written with "raw:", "hex:" or "base64:". A
// file starting with a UTF-8 byte-order mark, and a raw key containing one (U+FEFF), are
// refused too: the mark is invisible in an editor and would silently be part of the key.
func ParseKeyFile(data []byte) ([]tcpmd5.KeyRule, error) {
	text := string(data)
	if strings.HasPrefix(text, bom) {
		return nil, errors.New("line 1: the file starts with a UTF-8 byte-order mark (EF BB BF), which would become part of the key: save it without one (or write a key that really starts with those bytes as hex:)")
	}
	first, rest, _ := strings.Cut(text, "\n")
	first = strings.TrimSuffix(first, "\r")
	if !looksLikeTable(first) {
		if err := checkSingleKey(first); err != nil {
			return nil, fmt.Errorf("line 1: %w", err)
		}
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
	sc.Buffer(make([]byte, 0, 4096), MaxKeyFileSize+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		word, keyText, ok := splitWord(line)
		if !ok {
			return nil, fmt.Errorf("line %d: want PREFIX KEY", n)
		}
		prefixes, err := parseWho(word)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keyText = strings.TrimSpace(keyText)
		if !explicitKey(keyText) && strings.Contains(keyText, bom) {
			return nil, fmt.Errorf("line %d: the key contains a UTF-8 byte-order mark (U+FEFF): remove it, or write the key in hex: form", n)
		}
		k, err := tcpmd5.ParseKey(keyText)
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

// checkSingleKey refuses a single-key line that reads like a broken table line, unless
// the key is written in an explicit form.
func checkSingleKey(line string) error {
	if explicitKey(line) {
		return nil
	}
	const hint = `a table line is "PREFIX KEY"; a single key that really reads like this must be written as raw:..., hex:... or base64:...`
	t := strings.TrimSpace(line)
	if _, err := parseWho(t); err == nil {
		return fmt.Errorf("%q is a prefix with no key: %s", t, hint)
	}
	word, _, _ := splitWord(t)
	if prefixLike(word) {
		if _, err := parseWho(word); err != nil {
			return fmt.Errorf("%q is not a valid address or prefix: %s", word, hint)
		}
	}
	if strings.Contains(line, bom) {
		return errors.New("the key contains a UTF-8 byte-order mark (U+FEFF): remove it, or write the key in hex: form")
	}
	return nil
}

// explicitKey reports whether s names its encoding (tcpmd5.ParseKey's prefixes).
func explicitKey(s string) bool {
	for _, p := range []string{"raw:", "hex:", "base64:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// splitWord splits a trimmed line at its first blank (space or tab).
func splitWord(line string) (word, rest string, ok bool) {
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return line, "", false
	}
	return line[:i], line[i+1:], true
}

// prefixLike reports whether w looks like an attempt at an address or prefix: hex
// digits with dots or colons, optionally "%zone", optionally "/bits" in digits.
func prefixLike(w string) bool {
	addr, bits, hasBits := strings.Cut(w, "/")
	if hasBits && (bits == "" || strings.Trim(bits, "0123456789") != "") {
		return false
	}
	addr, _, _ = strings.Cut(addr, "%")
	if !strings.ContainsAny(addr, ".:") || !strings.ContainsAny(addr, "0123456789") {
		return false
	}
	return strings.Trim(addr, "0123456789abcdefABCDEF.:") == ""
}

func looksLikeTable(first string) bool {
	t := strings.TrimSpace(first)
	if t == "" || t[0] == '#' {
		return true
	}
	word, rest, ok := splitWord(t)
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

package fwconf

import "strings"

// entry is one "NAME value" line.
type entry struct {
	Name   string
	Value  string
	Line   int
	Syntax string // not "": the line is not "NAME value" (lexLine's message); Value is ""
}

// lexLine splits one line the way fwknopd 2.6.11 does (sscanf "%s %[^;\n\r]" then trailing
// whitespace chopped): the name is the first word, the value runs from the next non-blank
// character to the first ';', CR or LF, and trailing whitespace is trimmed. Lines that are
// empty, blank, or start with '#' or ';' (after optional blanks) are not entries (ok false).
// A name without a value is a syntax error (err non-empty).
func lexLine(line string) (name, value string, ok bool, err string) {
	s := strings.TrimLeft(line, " \t\v\f")
	if s == "" || s[0] == '#' || s[0] == ';' || s[0] == '\r' || s[0] == '\n' {
		return "", "", false, ""
	}
	i := strings.IndexAny(s, " \t\v\f\r\n")
	if i < 0 {
		return s, "", false, "no value after the name"
	}
	name, rest := s[:i], strings.TrimLeft(s[i:], " \t\v\f\r\n")
	if j := strings.IndexAny(rest, ";\r\n"); j >= 0 {
		rest = rest[:j]
	}
	value = strings.TrimRight(rest, " \t\v\f")
	if value == "" {
		return name, "", false, "no value after the name"
	}
	return name, value, true, ""
}

// bom is the UTF-8 byte-order mark some editors put at the start of a file.
const bom = "\xef\xbb\xbf"

// lines calls fn for every entry of data, with 1-based line numbers, and returns every error fn
// returned (errList.err): a file's mistakes are reported in one run. A leading UTF-8
// byte-order mark is skipped and CRLF line ends read as LF (fwknopd 2.6.10 reads CRLF too, but
// takes a mark for part of the first name). A line with a name but no value reaches fn with
// Syntax set.
func lines(data []byte, fn func(e entry) error) error {
	var errs errList
	n := 0
	for s := strings.TrimPrefix(string(data), bom); s != ""; {
		var l string
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			l, s = s[:i], s[i+1:]
		} else {
			l, s = s, ""
		}
		n++
		name, value, ok, msg := lexLine(l)
		if !ok && msg == "" {
			continue
		}
		errs.add(fn(entry{Name: name, Value: value, Line: n, Syntax: msg}))
	}
	return errs.err()
}

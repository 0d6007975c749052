// Package rcfile reads and writes fwknop's client files: the configuration file
// ~/.fwknoprc, key files (-G, --get-hmac-key) and the saved command line ~/.fwknop.run.
//
// The rc file format is fwknop 2.6's: sections "[default]" and "[name]", each followed by
// lines "VAR value". As fwknop 2.6.10 reads them, the name ends at the first blank and one
// colon after it is dropped ("KEY_BASE64: x", what fwknop --key-gen prints), and the value
// ends at the first blank, tab, ';' or '#', so "ACCESS tcp/22  # ssh" and "ALLOW_IP 10.0.0.2;"
// carry comments. Text cut off that is not such a comment is kept in [Var].Dropped, so callers
// can warn rather than silently send a shortened key. Beyond fwknop, sesame also takes '=' as
// a delimiter ("VAR=value", "VAR = value"), names in any case, and indented comments.
//
// As in fwknop, a line that is not "VAR value" is an error only when its stanza is used
// ([File.Resolve]); lines before the first section are ignored (with a warning in
// [File.Warnings]).
//
// Writing (SaveStanza) keeps every other line of the file as it was and renders the saved
// stanza the way fwknop does ("%-28s%s" per variable). Files are created with mode 0600, and
// Load refuses a file that group or others can read or write (ErrPermissions), naming the fix;
// Read does not look at the mode.
package rcfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultStanza is the name of the section whose settings apply to all stanzas.
const DefaultStanza = "default"

// Errors callers branch on.
var (
	// ErrPermissions: the file is accessible by group or others.
	ErrPermissions = errors.New("rc file is readable or writable by others")
	// ErrNoStanza: the named stanza is not in the file.
	ErrNoStanza = errors.New("stanza not found")
	// ErrSyntax: a line is neither a section, a comment nor "VAR value".
	ErrSyntax = errors.New("rc file syntax error")
	// ErrStanzaExists: SaveStanza without force would change existing values.
	ErrStanzaExists = errors.New("stanza exists")
)

// Var is one "VAR value" line. Name is upper-cased, without the colon of "NAME: value".
type Var struct {
	Name  string
	Value string
	Line  int // 1-based line number in the file, 0 for variables not read from a file
	// Dropped is text after the value that fwknop ignores and that is not a comment, for
	// example "def" in "KEY abc def": the value is "abc", as fwknop reads it.
	Dropped string
}

// Stanza is one section of the file.
type Stanza struct {
	Name string
	Vars []Var

	first, last int     // line indexes (0-based) of the header and of the last line that belongs to it
	bad         []error // lines of the stanza that are not "VAR value" (reported by Resolve)
}

// Err reports the first line of the stanza that is not "VAR value" (wrapping ErrSyntax), or nil.
func (s *Stanza) Err() error {
	if len(s.bad) > 0 {
		return s.bad[0]
	}
	return nil
}

// Get returns the value of the last setting of name (case-insensitive).
func (s *Stanza) Get(name string) (string, bool) {
	name = strings.ToUpper(name)
	for i := len(s.Vars) - 1; i >= 0; i-- {
		if s.Vars[i].Name == name {
			return s.Vars[i].Value, true
		}
	}
	return "", false
}

// Set replaces the value of name, or appends it.
func (s *Stanza) Set(name, value string) {
	name = strings.ToUpper(name)
	for i := range s.Vars {
		if s.Vars[i].Name == name {
			s.Vars[i].Value = value
			return
		}
	}
	s.Vars = append(s.Vars, Var{Name: name, Value: value})
}

// File is a parsed rc file. It keeps the original lines so that a rewrite changes only the
// stanza being saved.
type File struct {
	Path    string
	Stanzas []*Stanza
	// Warnings name lines that are ignored: variables before the first section and text
	// after a section header.
	Warnings []string
	lines    []string
	hasFinal bool // the text ended with a newline
}

// Parse reads an rc file's text. path is used in messages only. It fails only when r fails:
// bad lines are reported by Resolve for the stanzas used, or in Warnings.
func Parse(r io.Reader, path string) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	f := &File{Path: path}
	if len(data) > 0 {
		text := string(data)
		f.hasFinal = strings.HasSuffix(text, "\n")
		f.lines = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	}
	var cur *Stanza
	bad := func(i int, format string, a ...any) {
		err := fmt.Errorf("%s:%d: %s: %w", path, i+1, fmt.Sprintf(format, a...), ErrSyntax)
		if cur == nil {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: ignored: %s", path, i+1, fmt.Sprintf(format, a...)))
			return
		}
		cur.bad = append(cur.bad, err)
		cur.last = i
	}
	for i, raw := range f.lines {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			name := ""
			if end > 0 {
				name = strings.TrimSpace(line[1:end])
			}
			if end < 0 || name == "" {
				bad(i, "bad section header %q (want [name])", line)
				continue
			}
			if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: text %q after [%s] is ignored", path, i+1, rest, name))
			}
			cur = &Stanza{Name: name, first: i, last: i}
			f.Stanzas = append(f.Stanzas, cur)
			continue
		}
		v, ok := splitVar(line)
		if !ok {
			bad(i, "%q is not \"VARIABLE value\"", line)
			continue
		}
		if cur == nil {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: %s is outside any [stanza] and ignored (as fwknop does); put it under [default]",
				path, i+1, v.Name))
			continue
		}
		v.Line = i + 1
		cur.Vars = append(cur.Vars, v)
		cur.last = i
	}
	return f, nil
}

// splitVar splits a "VAR value" line as fwknop 2.6.10 does (see the package doc); '=' also
// separates, and a lone ':' between name and value is skipped ("VAR : value"; also right before
// a comment, so "VAR :#" has no value, as its rendering "VAR :" has none).
func splitVar(line string) (Var, bool) {
	isDelim := func(r rune) bool { return unicode.IsSpace(r) || r == '=' }
	i := strings.IndexFunc(line, isDelim)
	if i <= 0 {
		return Var{}, false
	}
	name := strings.TrimSuffix(line[:i], ":")
	rest := strings.TrimLeftFunc(line[i:], isDelim)
	if c, ok := strings.CutPrefix(rest, ":"); ok && (c == "" || startsSpace(c) || c[0] == '#' || c[0] == ';') {
		rest = strings.TrimLeftFunc(c, isDelim)
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || r == ';' || r == '#' })
	if end < 0 {
		end = len(rest)
	}
	if name == "" || end == 0 {
		return Var{}, false
	}
	return Var{Name: strings.ToUpper(name), Value: rest[:end], Dropped: dropped(rest[end:])}, true
}

func startsSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

// dropped returns the part of rest (the text from where fwknop cuts the value) that is not a
// comment. Comments are: blanks then '#' or ';' ("tcp/22  # ssh"), and a ';' right after the
// value, alone or followed by blanks and a comment ("10.0.0.2;", "10.0.0.2; # office").
func dropped(rest string) string {
	r := strings.TrimSpace(rest)
	if r == "" {
		return ""
	}
	switch rest[0] {
	case ';':
		after := rest[1:]
		c := strings.TrimSpace(after)
		if c == "" || startsSpace(after) && (c[0] == '#' || c[0] == ';') {
			return ""
		}
	case '#':
		// "abc#def": a '#' right after the value may belong to it, so it is reported.
	default: // a blank
		if r[0] == '#' || r[0] == ';' {
			return ""
		}
	}
	return r
}

// Load reads and parses the rc file at path. It fails with ErrPermissions if the file is
// accessible by group or others, and with an error wrapping fs.ErrNotExist if it is missing.
func Load(path string) (*File, error) {
	return load(path, true)
}

// Read is Load without the mode check, for callers that only warn about it (CheckMode).
func Read(path string) (*File, error) {
	return load(path, false)
}

func load(path string, strict bool) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rc file: %w", err)
	}
	defer fh.Close()
	if strict {
		st, err := fh.Stat()
		if err != nil {
			return nil, fmt.Errorf("rc file: %w", err)
		}
		if err := checkMode(path, st); err != nil {
			return nil, err
		}
	}
	return Parse(fh, path)
}

// CheckMode returns an error wrapping ErrPermissions, naming the fix, if the file at path is
// accessible by group or others (nil if it is not, or cannot be checked).
func CheckMode(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil
	}
	return checkMode(path, st)
}

func checkMode(path string, st fs.FileInfo) error {
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o, others can read or change your keys; fix it with: chmod 600 %s: %w",
			path, perm, path, ErrPermissions)
	}
	return nil
}

// Stanza returns the named stanza (exact name, as fwknop matches it).
func (f *File) Stanza(name string) (*Stanza, bool) {
	for _, s := range f.Stanzas {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Names lists the stanzas in file order, [default] excluded.
func (f *File) Names() []string {
	var names []string
	for _, s := range f.Stanzas {
		if s.Name != DefaultStanza {
			names = append(names, s.Name)
		}
	}
	return names
}

// Resolve returns the settings of stanza name merged over [default]: the default stanza's
// variables first, then the named one's, so Get returns the named value when both set it. An
// empty name returns [default] alone (or an empty stanza). A missing named stanza is
// ErrNoStanza with the list of stanzas that exist; a line of either stanza that is not
// "VAR value" is ErrSyntax naming the line (fwknop stops there too).
func (f *File) Resolve(name string) (*Stanza, error) {
	out := &Stanza{Name: DefaultStanza}
	if d, ok := f.Stanza(DefaultStanza); ok {
		if err := d.Err(); err != nil {
			return nil, err
		}
		out.Vars = append(out.Vars, d.Vars...)
	}
	if name == "" || name == DefaultStanza {
		return out, nil
	}
	s, ok := f.Stanza(name)
	if !ok {
		have := "none"
		if n := f.Names(); len(n) > 0 {
			have = strings.Join(n, ", ")
		}
		return nil, fmt.Errorf("stanza [%s] not found in %s (stanzas: %s); check -n or add it with --save-rc-stanza: %w",
			name, f.Path, have, ErrNoStanza)
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	out.Name = name
	out.Vars = append(out.Vars, s.Vars...)
	return out, nil
}

// FindByServer returns the first named stanza whose SPA_SERVER is host.
func (f *File) FindByServer(host string) (*Stanza, bool) {
	for _, s := range f.Stanzas {
		if v, ok := s.Get("SPA_SERVER"); ok && s.Name != DefaultStanza && strings.EqualFold(v, host) {
			return s, true
		}
	}
	return nil, false
}

// Format renders a stanza as fwknop writes it: the header, then "%-28s%s" per variable.
func Format(s *Stanza) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", s.Name)
	for _, v := range s.Vars {
		// fwknop pads to 28 columns; a longer name still needs one blank before the value.
		// A value that is a lone ':' gets the optional ':' separator before it, as the parser
		// skips a lone ':' between name and value.
		// A name ending in ':' gets one more, as the parser drops one ("NAME: value").
		sep, name := " ", v.Name
		if v.Value == ":" {
			sep = " : "
		}
		if strings.HasSuffix(name, ":") {
			name += ":"
		}
		fmt.Fprintf(&b, "%-27s%s%s\n", name, sep, v.Value)
	}
	return b.String()
}

// Bytes renders the whole file: the original lines, with stanzas changed by Put rendered anew.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for i, l := range f.lines {
		b.WriteString(l)
		if i < len(f.lines)-1 || f.hasFinal {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// Confirm is asked, for each variable a save would change in an existing stanza, whether to
// overwrite it (fwknop asks "Overwrite [N/y]?" on the terminal). name is the variable as the
// stanza has it. An error aborts the save.
type Confirm func(stanza, name string) (bool, error)

// keyForms are variables that say the same thing in different forms: saving one replaces the
// others.
var keyForms = [][]string{{"KEY", "KEY_BASE64", "KEY_FILE"}, {"HMAC_KEY", "HMAC_KEY_BASE64", "HMAC_KEY_FILE"}}

// alternatives returns the other forms of name.
func alternatives(name string) []string {
	for _, g := range keyForms {
		for i, n := range g {
			if n == name {
				return append(append([]string{}, g[:i]...), g[i+1:]...)
			}
		}
	}
	return nil
}

// Put stores s in f: a new stanza is appended (after a blank line); an existing one is
// replaced when force is set, or else merged: variables s sets that the stanza has with
// another value (or in another key form, KEY vs KEY_BASE64) are overwritten only where ask
// says so. With ask nil such a change fails with ErrStanzaExists naming the variable and the
// fix (--force-stanza).
func (f *File) Put(s *Stanza, force bool, ask Confirm) error {
	old, exists := f.Stanza(s.Name)
	if !exists {
		if len(f.lines) > 0 && !f.hasFinal {
			f.hasFinal = true
		}
		if n := len(f.lines); n > 0 && strings.TrimSpace(f.lines[n-1]) != "" {
			f.lines = append(f.lines, "")
		}
		ns := &Stanza{Name: s.Name, Vars: append([]Var(nil), s.Vars...), first: len(f.lines)}
		f.lines = append(f.lines, strings.Split(strings.TrimSuffix(Format(ns), "\n"), "\n")...)
		ns.last = len(f.lines) - 1
		f.hasFinal = true
		f.Stanzas = append(f.Stanzas, ns)
		return nil
	}
	merged := &Stanza{Name: s.Name}
	if !force {
		var err error
		if merged.Vars, err = mergeVars(f.Path, old, s, ask); err != nil {
			return err
		}
	} else {
		merged.Vars = append(merged.Vars, s.Vars...)
	}
	// Replace the header and variable lines of the old stanza; comments after its last
	// variable stay where they are.
	repl := strings.Split(strings.TrimSuffix(Format(merged), "\n"), "\n")
	lines := append([]string{}, f.lines[:old.first]...)
	lines = append(lines, repl...)
	lines = append(lines, f.lines[old.last+1:]...)
	text := strings.Join(lines, "\n")
	if f.hasFinal {
		text += "\n"
	}
	nf, err := Parse(strings.NewReader(text), f.Path)
	if err != nil {
		return err
	}
	*f = *nf
	return nil
}

// mergeVars merges the variables of s into those of old (see Put).
func mergeVars(path string, old, s *Stanza, ask Confirm) ([]Var, error) {
	vars := append([]Var(nil), old.Vars...)
	drop := map[string]bool{} // old variables to remove
	allow := func(name string) (bool, error) {
		if ask == nil {
			return false, fmt.Errorf("stanza [%s] in %s already sets %s; add --force-stanza to overwrite it: %w",
				s.Name, path, name, ErrStanzaExists)
		}
		return ask(s.Name, name)
	}
	for _, v := range s.Vars {
		cur, have := old.Get(v.Name)
		if have && cur == v.Value {
			continue
		}
		overwrite := true
		var err error
		if have {
			overwrite, err = allow(v.Name)
		}
		for _, alt := range alternatives(v.Name) {
			if _, ok := old.Get(alt); ok && err == nil && overwrite {
				if overwrite, err = allow(alt); overwrite {
					drop[alt] = true
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if !overwrite {
			continue
		}
		if have {
			for i := range vars {
				if vars[i].Name == v.Name {
					vars[i].Value, vars[i].Dropped = v.Value, ""
				}
			}
		} else {
			vars = append(vars, Var{Name: v.Name, Value: v.Value})
		}
	}
	out := vars[:0]
	for _, v := range vars {
		if !drop[v.Name] {
			out = append(out, v)
		}
	}
	return out, nil
}

// Template is the text of a new rc file.
const Template = "# .fwknoprc: fwknop client settings, written by sesame knock.\n" +
	"# [default] applies to every stanza; use a stanza with -n NAME. See fwknop(8).\n" +
	"\n[default]\n"

// SaveStanza writes s into the rc file at path (see File.Put for force and ask). A missing
// file is created from Template with mode 0600. The file is replaced atomically, keeping mode
// 0600.
func SaveStanza(path string, s *Stanza, force bool, ask Confirm) error {
	f, err := Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err = Parse(strings.NewReader(Template), path)
		if err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if err := f.Put(s, force, ask); err != nil {
		return err
	}
	return WriteFile(path, f.Bytes())
}

// Create writes Template to path with mode 0600 if no file exists there (as fwknop creates
// ~/.fwknoprc, or the --rc-file, on first use). It reports whether it created the file.
func Create(path string) (bool, error) {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create rc file: %w", err)
	}
	if _, err := fh.WriteString(Template); err != nil {
		fh.Close()
		return false, fmt.Errorf("create rc file %s: %w", path, err)
	}
	return true, fh.Close()
}

// WriteFile atomically replaces path with data, mode 0600.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	w := bufio.NewWriter(tmp)
	w.Write(data)
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

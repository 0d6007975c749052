// Package rcfile reads and writes fwknop's client configuration file, ~/.fwknoprc.
//
// The format is fwknop 2.6's: sections "[default]" and "[name]", each followed by lines
// "VAR value" where the delimiter between name and value is any run of spaces, tabs or '='.
// Blank lines and lines starting with '#' or ';' are comments. Settings in [default] apply to
// every named stanza; a named stanza's settings override them (Resolve).
//
// Writing (SaveStanza) keeps every other line of the file as it was and renders the saved
// stanza the way fwknop does ("%-28s%s" per variable). Files are created with mode 0600, and
// Load refuses a file that group or others can read or write (ErrPermissions), naming the fix.
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

// Var is one "VAR value" line. Name is upper-cased.
type Var struct {
	Name  string
	Value string
	Line  int // 1-based line number in the file, 0 for variables not read from a file
}

// Stanza is one section of the file.
type Stanza struct {
	Name string
	Vars []Var

	first, last int // line indexes (0-based) of the header and of the last line that belongs to it
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
	Path     string
	Stanzas  []*Stanza
	lines    []string
	hasFinal bool // the text ended with a newline
}

// Parse reads an rc file's text. path is used in error messages only.
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
			if end < 0 || name == "" || strings.TrimSpace(line[end+1:]) != "" {
				return nil, fmt.Errorf("%s:%d: bad section header %q (want [name]): %w", path, i+1, line, ErrSyntax)
			}
			cur = &Stanza{Name: name, first: i, last: i}
			f.Stanzas = append(f.Stanzas, cur)
			continue
		}
		name, value, ok := splitVar(line)
		if !ok {
			return nil, fmt.Errorf("%s:%d: %q is not \"VARIABLE value\": %w", path, i+1, line, ErrSyntax)
		}
		if cur == nil {
			return nil, fmt.Errorf("%s:%d: %s outside any [stanza]; add a [default] line above it: %w", path, i+1, name, ErrSyntax)
		}
		cur.Vars = append(cur.Vars, Var{Name: strings.ToUpper(name), Value: value, Line: i + 1})
		cur.last = i
	}
	return f, nil
}

// splitVar splits "VAR value", "VAR\tvalue", "VAR=value" or "VAR = value".
func splitVar(line string) (name, value string, ok bool) {
	isDelim := func(r rune) bool { return r == ' ' || r == '\t' || r == '=' }
	i := strings.IndexFunc(line, isDelim)
	if i <= 0 {
		return "", "", false
	}
	name = line[:i]
	value = strings.TrimSpace(strings.TrimLeftFunc(line[i:], isDelim))
	if value == "" {
		return "", "", false
	}
	return name, value, true
}

// Load reads and parses the rc file at path. It fails with ErrPermissions if the file is
// accessible by group or others, and with an error wrapping fs.ErrNotExist if it is missing.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rc file: %w", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("rc file: %w", err)
	}
	if err := checkMode(path, st); err != nil {
		return nil, err
	}
	return Parse(fh, path)
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
// ErrNoStanza with the list of stanzas that exist.
func (f *File) Resolve(name string) (*Stanza, error) {
	out := &Stanza{Name: DefaultStanza}
	if d, ok := f.Stanza(DefaultStanza); ok {
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
		fmt.Fprintf(&b, "%-27s %s\n", v.Name, v.Value)
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

// Put stores s in f: a new stanza is appended (after a blank line); an existing one is
// replaced when force is set, or else merged, which fails with ErrStanzaExists if it would
// change a value the stanza already has.
func (f *File) Put(s *Stanza, force bool) error {
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
		merged.Vars = append(merged.Vars, old.Vars...)
		for _, v := range s.Vars {
			if cur, ok := old.Get(v.Name); ok && cur != v.Value {
				return fmt.Errorf("stanza [%s] in %s already sets %s to %q; add --force-stanza to overwrite it: %w",
					s.Name, f.Path, v.Name, cur, ErrStanzaExists)
			}
			if _, ok := old.Get(v.Name); !ok {
				merged.Vars = append(merged.Vars, v)
			}
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

// Template is the text of a new rc file.
const Template = "# .fwknoprc: fwknop client settings, written by sesame knock.\n" +
	"# [default] applies to every stanza; use a stanza with -n NAME. See fwknop(8).\n" +
	"\n[default]\n"

// SaveStanza writes s into the rc file at path (see File.Put for force). A missing file is
// created from Template with mode 0600. The file is replaced atomically, keeping mode 0600.
func SaveStanza(path string, s *Stanza, force bool) error {
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
	if err := f.Put(s, force); err != nil {
		return err
	}
	return WriteFile(path, f.Bytes())
}

// WriteFile atomically replaces path with data, mode 0600.
func WriteFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fwknoprc-*")
	if err != nil {
		return fmt.Errorf("write rc file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write rc file: %w", err)
	}
	w := bufio.NewWriter(tmp)
	w.Write(data)
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("write rc file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write rc file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write rc file: %w", err)
	}
	return nil
}

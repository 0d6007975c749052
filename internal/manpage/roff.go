package manpage

import (
	"strings"
)

// wrapWidth is the longest source line escaped text is wrapped to (mandoc's style limit is 80).
const wrapWidth = 78

// escape makes s safe as roff text: backslashes become \e, and the hyphens of a word that
// starts with one (an option such as --fw-list or -v) become \- so it prints as typed and is
// found by searches. Other hyphens (TCP-MD5) stay hyphens. Control characters other than tab
// are dropped.
func escape(s string) string {
	var b strings.Builder
	prev, option := byte(' '), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(" \t([{|,\"'/", c) >= 0 {
			option = false
		}
		switch {
		case c == '\\':
			b.WriteString(`\e`)
		case c == '-' && (option || strings.IndexByte(" \t([{|=,\"'/", prev) >= 0):
			b.WriteString(`\-`)
			option = true
		case c < ' ' && c != '\t' || c == 0x7f:
			continue
		default:
			b.WriteByte(c)
		}
		prev = c
	}
	return b.String()
}

// textLines escapes s and breaks it into source lines: a new line after each sentence, and
// lines wrapped at wrapWidth where there is a blank. A line that would start with a roff control
// character (a dot or an apostrophe) is protected with \&.
func textLines(s string) []string {
	var out []string
	for _, sentence := range sentences(strings.Join(strings.Fields(s), " ")) {
		line := ""
		for _, w := range strings.Fields(escape(sentence)) {
			if line != "" && len(line)+1+len(w) > wrapWidth {
				out = append(out, line)
				line = ""
			}
			if line == "" && (w[0] == '.' || w[0] == '\'') {
				w = `\&` + w // a line starting so would be a roff request; counted in its width
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		if line != "" {
			out = append(out, line)
		}
	}
	return out
}

// sentences splits s after each ". " that is followed by an upper-case letter or an apostrophe.
func sentences(s string) []string {
	var out []string
	for {
		i := -1
		for j := 0; j+2 < len(s); j++ {
			if s[j] == '.' && s[j+1] == ' ' && (s[j+2] >= 'A' && s[j+2] <= 'Z' || s[j+2] == '\'') {
				i = j
				break
			}
		}
		if i < 0 {
			if s != "" {
				out = append(out, s)
			}
			return out
		}
		out = append(out, s[:i+1])
		s = s[i+2:]
	}
}

// page accumulates roff source.
type page struct{ b strings.Builder }

// macro writes one request line: ".NAME ARGS", each argument escaped and quoted when it has
// blanks.
func (p *page) macro(name string, args ...string) {
	p.b.WriteString("." + name)
	for _, a := range args {
		a = escape(a)
		if strings.ContainsAny(a, " \t\"") || a == "" {
			a = `"` + strings.ReplaceAll(a, `"`, `\(dq`) + `"`
		}
		p.b.WriteString(" " + a)
	}
	p.b.WriteByte('\n')
}

// raw writes lines of roff source as they are.
func (p *page) raw(lines ...string) {
	for _, l := range lines {
		p.b.WriteString(l + "\n")
	}
}

// text writes s as filled text.
func (p *page) text(s string) { p.raw(textLines(s)...) }

// para starts a new paragraph and writes s.
func (p *page) para(s string) {
	p.macro("PP")
	p.text(s)
}

// verbatim writes lines unfilled and indented (examples), escaped.
func (p *page) verbatim(lines []string) {
	p.raw(".RS 4", ".nf")
	for _, l := range lines {
		l = escape(l)
		if l != "" && (l[0] == '.' || l[0] == '\'') {
			l = `\&` + l
		}
		p.raw(l)
	}
	p.raw(".fi", ".RE")
}

// item writes a tagged paragraph: tag is roff source (already escaped), body plain text.
func (p *page) item(tag, body string) {
	p.raw(".TP", tag)
	p.text(body)
}

// bold and italic return s escaped in that font.
func bold(s string) string   { return `\fB` + escape(s) + `\fR` }
func italic(s string) string { return `\fI` + escape(s) + `\fR` }

func (p *page) String() string { return p.b.String() }

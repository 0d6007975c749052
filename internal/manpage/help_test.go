package manpage

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHelp(t *testing.T) {
	out := "usage: sesame x [flags] HOST   (x compatible)\n\nDo x to HOST. Twice\nif needed.\n\n  x --y 1\n  x --z\nor not.\n\nflags:\n  -y, --y int   y\n"
	h, ok := ParseHelp(out)
	want := Help{Synopsis: "sesame x [flags] HOST", Remark: "x compatible", Paras: []HelpPara{
		{Text: "Do x to HOST. Twice if needed."}, {Example: []string{"x --y 1", "x --z"}}, {Text: "or not."}}}
	if !ok || !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v %v\nwant %+v", h, ok, want)
	}
	// A flag list right after the usage line ends the prose too.
	h, ok = ParseHelp("usage: sesame y [options]\n\n  -a, --all   everything\n")
	if !ok || h.Synopsis != "sesame y [options]" || len(h.Paras) != 0 {
		t.Errorf("got %+v %v", h, ok)
	}
	if _, ok := ParseHelp("no usage here\n"); ok {
		t.Error("ParseHelp accepted help without a usage line")
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"--fw-list and -v":      `\-\-fw\-list and \-v`,
		"TCP-MD5 read-only":     `TCP-MD5 read-only`,
		`C:\path`:               `C:\epath`,
		"(-a IP | -s)":          `(\-a IP | \-s)`,
		"x=-1":                  `x=\-1`,
		"bell\a and\x7f delete": `bell and delete`,
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
	got := textLines(".dot first. And 'q. 'Quote")
	if want := []string{`\&.dot first.`, `And 'q.`, `\&'Quote`}; !reflect.DeepEqual(got, want) {
		t.Errorf("textLines = %q, want %q", got, want)
	}
}

// FuzzTextLines: whatever the input, no output line is a roff request, holds a newline or
// exceeds the wrap width unless it is one word, and every backslash starts an escape this
// package writes.
func FuzzTextLines(f *testing.F) {
	f.Add("a. B -c --d \\ 'e .f")
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range textLines(s) {
			if l == "" || l[0] == '.' || l[0] == '\'' || strings.ContainsAny(l, "\n\r") {
				t.Fatalf("bad line %q from %q", l, s)
			}
			if len(l) > wrapWidth && strings.Contains(l, " ") {
				t.Fatalf("line of %d bytes %q", len(l), l)
			}
			for i := 0; i < len(l); i++ {
				if l[i] == '\\' {
					if i+1 >= len(l) || !strings.ContainsRune("e-&", rune(l[i+1])) {
						t.Fatalf("stray backslash in %q", l)
					}
					i++
				}
			}
		}
	})
}

// FuzzParseHelp: ParseHelp never panics, and what it returns is one-line synopsis text and
// non-empty paragraphs.
func FuzzParseHelp(f *testing.F) {
	f.Add("usage: sesame x [f]   (r)\n\nText.\n  ex\nflags:\n")
	f.Add("junk\nusage: \n\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := ParseHelp(s)
		if !ok {
			return
		}
		if strings.ContainsAny(h.Synopsis+h.Remark, "\n") {
			t.Fatalf("multi-line synopsis %q", h.Synopsis)
		}
		for _, p := range h.Paras {
			if (p.Text == "") == (len(p.Example) == 0) {
				t.Fatalf("paragraph %+v", p)
			}
		}
	})
}

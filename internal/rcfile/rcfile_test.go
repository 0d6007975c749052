package rcfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

const sample = `# my settings
[default]
ACCESS tcp/99
KEY=defkey
SPA_SERVER_PORT	 777

; a comment
[x]
SPA_SERVER	10.1.1.1
ALLOW_IP = 1.2.3.4
access tcp/22
# trailing comment of x

[y]
SPA_SERVER fd99::1
`

func parse(t *testing.T, text string) *File {
	t.Helper()
	f, err := Parse(strings.NewReader(text), "rc")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestParseAndResolve(t *testing.T) {
	f := parse(t, sample)
	if got := strings.Join(f.Names(), ","); got != "x,y" {
		t.Fatalf("Names = %q", got)
	}
	s, err := f.Resolve("x")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ACCESS": "tcp/22", "KEY": "defkey", "SPA_SERVER_PORT": "777",
		"SPA_SERVER": "10.1.1.1", "ALLOW_IP": "1.2.3.4", "allow_ip": "1.2.3.4"} {
		if got, ok := s.Get(name); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", name, got, ok, want)
		}
	}
	if _, ok := s.Get("NAT_ACCESS"); ok {
		t.Error("NAT_ACCESS set")
	}
	if st, ok := f.FindByServer("FD99::1"); !ok || st.Name != "y" {
		t.Errorf("FindByServer = %v %v", st, ok)
	}
	_, err = f.Resolve("nope")
	if !errors.Is(err, ErrNoStanza) || !strings.Contains(err.Error(), "stanzas: x, y") {
		t.Errorf("Resolve(nope) = %v", err)
	}
}

// TestParseErrors: as in fwknop 2.6.10, a line that is not "VAR value" stops a knock only
// when its stanza is used; before the first section it is ignored with a warning.
func TestParseErrors(t *testing.T) {
	for _, text := range []string{"[a]\n[default\n", "[a]\n[]\n", "[a]\nKEY\n", "[a]\n=x\n", "[a]\nKEY ;x\n", "[a]\nKEY #x\n", "[a]\nKEY: \n"} {
		f := parse(t, text)
		if _, err := f.Resolve("a"); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "rc:2:") {
			t.Errorf("Resolve of %q = %v, want ErrSyntax naming line 2", text, err)
		}
		if _, err := parse(t, text+"[b]\nKEY x\n").Resolve("b"); err != nil {
			t.Errorf("a bad line of [a] stopped [b]: %v", err)
		}
	}
	f := parse(t, "KEY x\n[default\n[a] b\nACCESS tcp/1\n")
	if len(f.Warnings) != 3 || !strings.Contains(f.Warnings[0], "rc:1: KEY is outside any [stanza]") ||
		!strings.Contains(f.Warnings[2], "rc:3: text \"b\" after [a]") {
		t.Errorf("warnings %q", f.Warnings)
	}
	if s, err := f.Resolve("a"); err != nil || len(s.Vars) != 1 {
		t.Errorf("[a] b: %v %+v", err, s)
	}
}

// TestSplitVar checks how a line's value is cut, against what fwknop 2.6.10 reads from the
// same line (observed with fwknop -T -v -v and by decoding its packets): the value ends at a
// blank, tab, ';' or '#', and one colon after the name is dropped.
func TestSplitVar(t *testing.T) {
	for _, c := range []struct{ line, name, value, dropped string }{
		{"ACCESS tcp/22  # ssh", "ACCESS", "tcp/22", ""},
		{"FW_TIMEOUT 45 # seconds", "FW_TIMEOUT", "45", ""},
		{"ALLOW_IP 10.0.0.2;", "ALLOW_IP", "10.0.0.2", ""},
		{"ALLOW_IP 10.0.0.2; # office", "ALLOW_IP", "10.0.0.2", ""},
		{"SPA_SERVER: host.example", "SPA_SERVER", "host.example", ""},
		{"HMAC_KEY_BASE64: aG1hYw==", "HMAC_KEY_BASE64", "aG1hYw==", ""},
		{"SPA_SERVER\t10.0.0.1;x", "SPA_SERVER", "10.0.0.1", ";x"},
		{"SPA_SERVER 10.0.0.1#x", "SPA_SERVER", "10.0.0.1", "#x"},
		{"SPA_SERVER 10.0.0.1:", "SPA_SERVER", "10.0.0.1:", ""},
		{"KEY abc def", "KEY", "abc", "def"},
		{"KEY abc;def", "KEY", "abc", ";def"},
		{"SPA_SERVER fd99::1", "SPA_SERVER", "fd99::1", ""},
		{"SPA_SERVER:: x", "SPA_SERVER:", "x", ""}, // fwknop: unknown variable "SPA_SERVER:"
		// sesame only: '=' and a lone ':' also separate (fwknop reads "=" or ":" as the value).
		{"KEY=abc", "KEY", "abc", ""},
		{"KEY = abc", "KEY", "abc", ""},
		{"KEY : abc", "KEY", "abc", ""},
		{"key abc", "KEY", "abc", ""},
	} {
		v, ok := splitVar(c.line)
		if !ok || v.Name != c.name || v.Value != c.value || v.Dropped != c.dropped {
			t.Errorf("splitVar(%q) = %+v, %v; want %s %q dropped %q", c.line, v, ok, c.name, c.value, c.dropped)
		}
	}
	for _, line := range []string{"KEY", "KEY ;abc", "KEY #abc", "KEY:abc", ":x"} {
		if v, ok := splitVar(line); ok {
			t.Errorf("splitVar(%q) = %+v, want not a variable", line, v)
		}
	}
}

func TestPutKeepsOtherLines(t *testing.T) {
	f := parse(t, sample)
	s := &Stanza{Name: "x", Vars: []Var{{Name: "SPA_SERVER", Value: "10.1.1.1"}, {Name: "FW_TIMEOUT", Value: "30"}}}
	if err := f.Put(s, false, nil); err != nil {
		t.Fatal(err)
	}
	out := string(f.Bytes())
	if !strings.Contains(out, "FW_TIMEOUT                  30\n") || !strings.Contains(out, "ACCESS                      tcp/22\n") {
		t.Errorf("merge lost or misformatted variables:\n%s", out)
	}
	for _, keep := range []string{"# my settings\n", "KEY=defkey\n", "; a comment\n", "# trailing comment of x\n", "[y]\nSPA_SERVER fd99::1\n"} {
		if !strings.Contains(out, keep) {
			t.Errorf("lost %q:\n%s", keep, out)
		}
	}
	// A conflicting value needs force.
	s2 := &Stanza{Name: "x", Vars: []Var{{Name: "SPA_SERVER", Value: "10.9.9.9"}}}
	if err := f.Put(s2, false, nil); !errors.Is(err, ErrStanzaExists) || !strings.Contains(err.Error(), "--force-stanza") {
		t.Fatalf("conflicting Put = %v", err)
	}
	if err := f.Put(s2, true, nil); err != nil {
		t.Fatal(err)
	}
	x, _ := f.Stanza("x")
	if len(x.Vars) != 1 || x.Vars[0].Value != "10.9.9.9" {
		t.Errorf("forced stanza = %+v", x.Vars)
	}
	if !strings.Contains(string(f.Bytes()), "# trailing comment of x\n") {
		t.Error("forced Put lost the comment after the stanza")
	}
	// New stanza goes to the end, after a blank line.
	if err := f.Put(&Stanza{Name: "z", Vars: []Var{{Name: "KEY", Value: "k"}}}, false, nil); err != nil {
		t.Fatal(err)
	}
	if out := string(f.Bytes()); !strings.HasSuffix(out, "SPA_SERVER fd99::1\n\n[z]\nKEY                         k\n") {
		t.Errorf("appended stanza:\n%s", out)
	}
	g := parse(t, string(f.Bytes()))
	if z, ok := g.Stanza("z"); !ok || z.Vars[0].Value != "k" {
		t.Error("round trip lost [z]")
	}
}

func TestSaveStanzaModeAndLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".fwknoprc")
	s := &Stanza{Name: "srv", Vars: []Var{{Name: "SPA_SERVER", Value: "10.99.0.1"}, {Name: "KEY_BASE64", Value: "a2V5"}}}
	if err := SaveStanza(path, s, false, nil); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", st.Mode().Perm())
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Resolve("srv")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := r.Get("KEY_BASE64"); v != "a2V5" {
		t.Errorf("KEY_BASE64 = %q", v)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.Is(err, ErrPermissions) || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("Load of a 0644 file = %v", err)
	}
	if err := SaveStanza(path, s, true, nil); !errors.Is(err, ErrPermissions) {
		t.Errorf("SaveStanza into a 0644 file = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestLookupKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(path, []byte("# keys\n10.0.0.1: abc\nfd99::1: k:with:colons \nhost.example:xyz\n"), 0o600)
	for server, want := range map[string]string{"10.0.0.1": "abc", "fd99::1": "k:with:colons", "host.example": "xyz"} {
		if got, err := LookupKey(path, server); err != nil || got != want {
			t.Errorf("LookupKey(%s) = %q, %v", server, got, err)
		}
	}
	// The last line for a server counts, the value keeps inner blanks, and the mode is not
	// checked (fwknop 2.6.10 reads a 0644 key file).
	os.WriteFile(path, []byte("10.0.0.1: first\n10.0.0.1:\tsecond key\n"), 0o644)
	os.Chmod(path, 0o644)
	if got, err := LookupKey(path, "10.0.0.1"); err != nil || got != "second key" {
		t.Errorf("LookupKey with two lines = %q, %v", got, err)
	}
	if _, err := LookupKey(path, "10.0.0.2"); !errors.Is(err, ErrNoKey) {
		t.Errorf("missing server: %v", err)
	}
	if _, err := LookupKey(path, "10.0.0."); !errors.Is(err, ErrNoKey) {
		t.Errorf("prefix of a server matched: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("[default]\nKEY x\n")
	f.Add("[a]\r\nKEY\t=\tb\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		rc, err := Parse(strings.NewReader(text), "rc")
		if err != nil {
			t.Fatalf("Parse failed without an I/O error: %v", err)
		}
		// Re-rendering the parsed file reproduces the input, and re-parsing finds the same stanzas.
		if got := string(rc.Bytes()); got != text {
			t.Fatalf("Bytes() = %q, want %q", got, text)
		}
		for _, s := range rc.Stanzas {
			if s.Name == "" || strings.ContainsAny(s.Name, "]\n") {
				continue
			}
			g := &File{}
			g2, err := Parse(strings.NewReader(Format(s)), "rc")
			if err != nil {
				t.Fatalf("Format(%+v) does not parse: %v", s, err)
			}
			*g = *g2
			back, _ := g.Stanza(s.Name)
			if back == nil || len(back.Vars) != len(s.Vars) {
				t.Fatalf("Format round trip of %q lost variables", s.Name)
			}
			for i, v := range s.Vars {
				if back.Vars[i].Name != v.Name || back.Vars[i].Value != v.Value {
					t.Fatalf("Format round trip of %+v gave %+v", v, back.Vars[i])
				}
				if strings.ContainsAny(v.Value, ";#") || strings.IndexFunc(v.Value, unicode.IsSpace) >= 0 || v.Value == "" {
					t.Fatalf("value %q holds a character that ends values", v.Value)
				}
			}
		}
	})
}

package rcfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

func TestParseErrors(t *testing.T) {
	for _, text := range []string{"[default\n", "[]\n", "[a] b\n", "[a]\nKEY\n", "KEY x\n", "[a]\n=x\n"} {
		if _, err := Parse(strings.NewReader(text), "rc"); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", text, err)
		}
	}
}

func TestPutKeepsOtherLines(t *testing.T) {
	f := parse(t, sample)
	s := &Stanza{Name: "x", Vars: []Var{{Name: "SPA_SERVER", Value: "10.1.1.1"}, {Name: "FW_TIMEOUT", Value: "30"}}}
	if err := f.Put(s, false); err != nil {
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
	if err := f.Put(s2, false); !errors.Is(err, ErrStanzaExists) || !strings.Contains(err.Error(), "--force-stanza") {
		t.Fatalf("conflicting Put = %v", err)
	}
	if err := f.Put(s2, true); err != nil {
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
	if err := f.Put(&Stanza{Name: "z", Vars: []Var{{Name: "KEY", Value: "k"}}}, false); err != nil {
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
	if err := SaveStanza(path, s, false); err != nil {
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
	if err := SaveStanza(path, s, true); !errors.Is(err, ErrPermissions) {
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
			return
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
		}
	})
}

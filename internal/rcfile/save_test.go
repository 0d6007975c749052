package rcfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPutAsks: without force, each changed variable (and a key given in another form) is
// asked about; "no" keeps the stanza's value, and with no one to ask the save fails naming
// the variable and the fix.
func TestPutAsks(t *testing.T) {
	const text = "[x]\nSPA_SERVER 10.0.0.9\nACCESS tcp/22\nKEY abc\n# note\nSPA_SERVER_PORT 1234\n"
	s := &Stanza{Name: "x", Vars: []Var{{Name: "ACCESS", Value: "tcp/23"}, {Name: "KEY_BASE64", Value: "eHl6"},
		{Name: "SPA_SERVER", Value: "10.0.0.9"}, {Name: "FW_TIMEOUT", Value: "30"}}}
	for _, c := range []struct {
		answer bool
		want   []string
	}{
		{true, []string{"SPA_SERVER=10.0.0.9", "ACCESS=tcp/23", "SPA_SERVER_PORT=1234", "KEY_BASE64=eHl6", "FW_TIMEOUT=30"}},
		{false, []string{"SPA_SERVER=10.0.0.9", "ACCESS=tcp/22", "KEY=abc", "SPA_SERVER_PORT=1234", "FW_TIMEOUT=30"}},
	} {
		f := parse(t, text)
		var asked []string
		err := f.Put(s, false, func(stanza, name string) (bool, error) {
			asked = append(asked, stanza+"."+name)
			return c.answer, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"x.ACCESS", "x.KEY"}; !slices.Equal(asked, want) {
			t.Errorf("asked %q, want %q", asked, want)
		}
		x, _ := f.Stanza("x")
		var got []string
		for _, v := range x.Vars {
			got = append(got, v.Name+"="+v.Value)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("answer %v: stanza %q, want %q", c.answer, got, c.want)
		}
	}
	f := parse(t, text)
	err := f.Put(&Stanza{Name: "x", Vars: []Var{{Name: "KEY_BASE64", Value: "eHl6"}}}, false, nil)
	if !errors.Is(err, ErrStanzaExists) || !strings.Contains(err.Error(), "already sets KEY;") || !strings.Contains(err.Error(), "--force-stanza") {
		t.Errorf("Put without ask = %v", err)
	}
	wantErr := errors.New("no terminal")
	if err := f.Put(s, false, func(string, string) (bool, error) { return false, wantErr }); !errors.Is(err, wantErr) {
		t.Errorf("a failing prompt = %v", err)
	}
}

func TestCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rc")
	if created, err := Create(path); err != nil || !created {
		t.Fatalf("Create = %v, %v", created, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("created file: %v %v", st, err)
	}
	os.WriteFile(path, []byte("[default]\nKEY k\n"), 0o600)
	if created, err := Create(path); err != nil || created {
		t.Errorf("Create over an existing file = %v, %v", created, err)
	}
	if b, _ := os.ReadFile(path); string(b) != "[default]\nKEY k\n" {
		t.Errorf("Create changed an existing file: %q", b)
	}
	if _, err := Create(filepath.Join(path+"-missing", "rc")); err == nil {
		t.Error("Create in a missing directory succeeded")
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Resolve(""); err != nil {
		t.Errorf("template: %v", err)
	}
}

func TestRunFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), RunFileName)
	args := []string{"-T", "-D", "10.0.0.9", "-A", "tcp/22", "--key-rijndael", "abc"}
	if err := WriteRun(path, args); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	// The text fwknop 2.6.10 writes for the same command line.
	if string(b) != "fwknop -T -D 10.0.0.9 -A tcp/22 --key-rijndael abc \n" {
		t.Errorf("run file %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", st.Mode().Perm())
	}
	got, line, err := ReadRun(path)
	if err != nil || !slices.Equal(got, args) || line != "fwknop -T -D 10.0.0.9 -A tcp/22 --key-rijndael abc " {
		t.Errorf("ReadRun = %q, %q, %v", got, line, err)
	}
	if err := WriteRun(path, []string{"-U", "a b"}); !errors.Is(err, ErrUnsavable) {
		t.Errorf("an argument with a blank: %v", err)
	}
}

func FuzzRunFile(f *testing.F) {
	f.Add("fwknop -T -D 10.0.0.9 \n")
	f.Add("")
	f.Add("x\ty  z\r\nsecond line")
	f.Fuzz(func(t *testing.T, text string) {
		args := ParseRun(text)
		out, err := FormatRun(args)
		if err != nil {
			t.Fatalf("FormatRun(%q) of parsed args: %v", args, err)
		}
		if back := ParseRun(out); !slices.Equal(back, args) {
			t.Fatalf("round trip %q -> %q", args, back)
		}
	})
}

package deb

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/keygen"
)

// TestExamplesLoad: the example configurations load once their placeholder keys are replaced,
// and are refused while they are not.
func TestExamplesLoad(t *testing.T) {
	dir := t.TempDir()
	conf, err := os.ReadFile("examples/fwknopd.conf")
	if err != nil {
		t.Fatal(err)
	}
	access, err := os.ReadFile("examples/access.conf")
	if err != nil {
		t.Fatal(err)
	}
	confPath, accessPath := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	write := func(path string, b []byte) {
		t.Helper()
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(confPath, conf)
	write(accessPath, access)
	opts := fwconf.Options{Overrides: map[string]string{"ACCESS_FILE": accessPath}}
	if _, _, _, err := fwconf.Load(confPath, opts); err == nil || !strings.Contains(err.Error(), "CHANGEME") {
		t.Errorf("the example with __CHANGEME__ keys loaded, or failed otherwise: %v", err)
	}

	p, err := keygen.Generate(rand.Reader, keygen.DefaultKeyLen, 64)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, l := range strings.Split(p.String(), "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok {
			keys[k] = v
		}
	}
	text := string(access)
	for _, k := range []string{"KEY_BASE64", "HMAC_KEY_BASE64"} {
		if keys[k] == "" {
			t.Fatalf("keygen printed no %s: %q", k, p.String())
		}
		text = regexp.MustCompile(`(?m)^`+k+`(\s+)__CHANGEME__$`).ReplaceAllString(text, k+"${1}"+keys[k])
	}
	if regexp.MustCompile(`(?m)^[A-Z_]+\s+__CHANGEME__`).MatchString(text) {
		t.Fatalf("placeholders left:\n%s", text)
	}
	write(accessPath, []byte(text))
	srv, stanzas, warns, err := fwconf.Load(confPath, opts)
	if err != nil {
		t.Fatalf("the examples with keys: %v", err)
	}
	if len(stanzas) != 1 || srv == nil {
		t.Fatalf("%d stanzas", len(stanzas))
	}
	for _, w := range warns {
		t.Errorf("warning: %v", w)
	}
}

// TestMaintainerScriptsParse: the maintainer scripts are POSIX sh that dash parses.
func TestMaintainerScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		sh = "sh"
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if out, err := exec.Command(sh, "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, s, err, out)
		}
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), "#!/bin/sh\n") || !strings.Contains(string(b), "\nset -e\n") {
			t.Errorf("%s: want #!/bin/sh and set -e", s)
		}
	}
}

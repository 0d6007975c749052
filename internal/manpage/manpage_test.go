package manpage

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/cmd/connect"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/nstest"
)

var meta = Meta{Version: "1.2.3", Date: "2026-11-30"}

func pages(t *testing.T) map[string]string {
	t.Helper()
	ps, err := Pages(meta)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, p := range ps {
		m[p.File] = p.Text
	}
	if len(m) != 3 {
		t.Fatalf("pages: %v", m)
	}
	return m
}

// section returns the part of text from the line start to the next line starting with one of
// the ends.
func section(t *testing.T, text, start string, ends ...string) string {
	t.Helper()
	i := strings.Index(text, "\n"+start+"\n")
	if i < 0 {
		t.Fatalf("no %q in the page", start)
	}
	rest := text[i+len(start)+2:]
	for _, e := range ends {
		if j := strings.Index(rest, "\n"+e); j >= 0 {
			rest = rest[:j]
		}
	}
	return rest
}

// tagsOf returns the flag tags the flag set should produce: every visible flag's
// "\fB\-\-name\fR" (and "\fB\-x\fR, " before it with a shorthand), and the hidden ones.
func tagsOf(fs *pflag.FlagSet) (visible, hidden []string) {
	fs.VisitAll(func(f *pflag.Flag) {
		tag := `\fB\-\-` + strings.ReplaceAll(f.Name, "-", `\-`) + `\fR`
		if f.Shorthand != "" {
			tag = `\fB\-` + f.Shorthand + `\fR, ` + tag
		}
		if f.Hidden {
			hidden = append(hidden, tag)
		} else {
			visible = append(visible, tag)
		}
	})
	return visible, hidden
}

// TestEveryFlagInItsSection: each command's section of sesame(1), and the OPTIONS of
// sesame-server(8), have a tagged paragraph for every visible flag of the command's real flag
// set, and none for a hidden one.
func TestEveryFlagInItsSection(t *testing.T) {
	p := pages(t)
	cmds, err := Commands()
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != len(sources) || len(cmds) < 8 {
		t.Fatalf("%d commands", len(cmds))
	}
	total := 0
	for _, c := range cmds {
		sec := section(t, p["sesame.1"], `.SS "sesame `+escape(c.Name)+`"`, ".SS", ".SH")
		visible, hidden := tagsOf(c.Flags)
		if len(visible) == 0 {
			t.Errorf("%s: no flags", c.Name)
		}
		for _, tag := range visible {
			total++
			if !strings.Contains(sec, ".TP\n"+tag+"\n") && !strings.Contains(sec, ".TP\n"+tag+" ") && !strings.Contains(sec, ".TP\n"+tag+"[") {
				t.Errorf("sesame(1), %s: no paragraph for %s", c.Name, tag)
			}
		}
		for _, tag := range hidden {
			if strings.Contains(sec, ".TP\n"+tag) {
				t.Errorf("sesame(1), %s: hidden flag %s documented", c.Name, tag)
			}
		}
		if !strings.Contains(p["sesame.1"], escape(strings.TrimPrefix(c.Help.Synopsis, "sesame "+c.Name))) {
			t.Errorf("sesame(1): no synopsis %q", c.Help.Synopsis)
		}
		if c.Name == "server" {
			opts := section(t, p["sesame-server.8"], ".SH OPTIONS", ".SH")
			for _, tag := range visible {
				if !strings.Contains(opts, ".TP\n"+tag) {
					t.Errorf("sesame-server(8): no paragraph for %s", tag)
				}
			}
		}
	}
	t.Logf("%d flags of %d commands", total, len(cmds))
}

// TestFlagAddedAppears: a flag defined on a command's set shows up in the page (the page is
// generated, not written).
func TestFlagAddedAppears(t *testing.T) {
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.StringP("brand-new", "Z", "/etc/x", "a `FILE` to read")
	fs.Int("count-it", 0, "how many")
	page := Sesame([]Command{{Name: "x", Summary: "do x", Flags: fs, Help: Help{Synopsis: "sesame x [flags]"}}}, meta).Text
	for _, want := range []string{
		".TP\n\\fB\\-Z\\fR, \\fB\\-\\-brand\\-new\\fR \\fIFILE\\fR\na FILE to read (default \"/etc/x\")\n",
		".TP\n\\fB\\-\\-count\\-it\\fR \\fIint\\fR\nhow many\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}

// TestConfListsEveryVariable: sesame.conf(5) has a paragraph for every variable of
// fwconf.Variables, in the right section, saying what sesame does with it.
func TestConfListsEveryVariable(t *testing.T) {
	conf := pages(t)["sesame.conf.5"]
	server := section(t, conf, `.SH "FWKNOPD.CONF VARIABLES"`, ".SH")
	access := section(t, conf, `.SH "ACCESS.CONF VARIABLES"`, ".SH")
	own := section(t, conf, `.SH "SESAME VARIABLES"`, ".SH")
	want := map[fwconf.Support]string{fwconf.Supported: "\nSupported", fwconf.NoEffect: "\nAccepted without effect",
		fwconf.DefaultOnly: "\nOnly the default", fwconf.Unsupported: "\nRefused"}
	for name, v := range fwconf.Variables {
		tag := ".TP\n" + bold(name)
		var in []string
		switch {
		case strings.HasPrefix(name, "SESAME_"):
			in = []string{own}
		default:
			if v.Scope&fwconf.InServer != 0 {
				in = append(in, server)
			}
			if v.Scope&fwconf.InAccess != 0 {
				in = append(in, access)
			}
		}
		for _, sec := range in {
			i := strings.Index(sec, tag+" ")
			if i < 0 {
				i = strings.Index(sec, tag+"\n")
			}
			if i < 0 {
				t.Errorf("%s: no paragraph", name)
				continue
			}
			body := strings.SplitN(sec[i+len(tag):], ".TP", 2)[0]
			if !strings.HasPrefix(name, "SESAME_") && !strings.Contains(body, want[v.Support]) {
				t.Errorf("%s: %q does not say %q", name, body, want[v.Support])
			}
		}
	}
}

// TestEnvironmentNamesConnectKey: the ENVIRONMENT section names the variable connect reads.
func TestEnvironmentNamesConnectKey(t *testing.T) {
	env := section(t, pages(t)["sesame.1"], ".SH ENVIRONMENT", ".SH")
	if !strings.Contains(env, escape(connect.EnvKey)) {
		t.Errorf("ENVIRONMENT lacks %s:\n%s", connect.EnvKey, env)
	}
}

func TestPagesReproducible(t *testing.T) {
	a, b := pages(t), pages(t)
	for f := range a {
		if a[f] != b[f] {
			t.Errorf("%s differs between two renderings", f)
		}
		if strings.Contains(a[f], "\t") || !regexp.MustCompile(`^[\x20-\x7e\n]*$`).MatchString(a[f]) {
			t.Errorf("%s: not plain printable ASCII", f)
		}
	}
}

// TestRenderClean renders every page with groff (as man --warnings does, all warnings on) and
// with mandoc -Tlint, and fails on any message; the rendered text has every flag as typed.
func TestRenderClean(t *testing.T) {
	for _, bin := range []string{"groff", "mandoc"} {
		if _, err := exec.LookPath(bin); err != nil {
			if nstest.InCI() {
				t.Fatalf("%s missing under CI (install groff-base and mandoc)", bin)
			}
			t.Skipf("needs %s", bin)
		}
	}
	dir := t.TempDir()
	cmds, err := Commands()
	if err != nil {
		t.Fatal(err)
	}
	for file, text := range pages(t) {
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		groff := exec.Command("groff", "-man", "-Tutf8", "-ww", "-rLL=80n", path)
		groff.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		var stderr strings.Builder
		groff.Stderr = &stderr
		out, err := groff.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("groff %s: %v\n%s", file, err, stderr.String())
		}
		lint, err := exec.Command("mandoc", "-Tlint", "-W", "warning", path).CombinedOutput()
		if err != nil || len(lint) > 0 {
			t.Errorf("mandoc -Tlint %s: %v\n%s", file, err, lint)
		}
		if file != "sesame.1" {
			continue
		}
		plain := regexp.MustCompile(".\b").ReplaceAllString(string(out), "")
		plain = strings.ReplaceAll(plain, "\u2212", "-")
		for _, c := range cmds {
			c.Flags.VisitAll(func(f *pflag.Flag) {
				if !f.Hidden && !strings.Contains(plain, "--"+f.Name) {
					t.Errorf("rendered sesame(1) lacks --%s", f.Name)
				}
			})
		}
	}
}

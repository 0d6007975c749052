package knock

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

var knockArgs = []string{"-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22", "--key-rijndael", "fwknoptest"}

// TestRunFile: a knock saves its command line to ~/.fwknop.run in fwknop's format, --show-last
// prints it, and -l runs it again ignoring the rest of the command line.
func TestRunFile(t *testing.T) {
	home := t.TempDir()
	run := filepath.Join(home, ".fwknop.run")
	r := runCLI(t, home, "", knockArgs...)
	b, err := os.ReadFile(run)
	if r.code != 0 || err != nil || string(b) != "fwknop "+strings.Join(knockArgs, " ")+" \n" {
		t.Fatalf("exit %d, run file %q (%v): %s", r.code, b, err, r.stderr)
	}
	if st, _ := os.Stat(run); st.Mode().Perm() != 0o600 {
		t.Errorf("run file mode %04o", st.Mode().Perm())
	}
	r = runCLI(t, home, "", "--show-last", "-A", "udp/53")
	if r.code != 0 || r.stdout != "Last fwknop client command line: fwknop "+strings.Join(knockArgs, " ")+" \n" || len(r.sent.wires) != 0 {
		t.Errorf("--show-last: %d %q", r.code, r.stdout)
	}
	r = runCLI(t, home, "", "-l", "-A", "udp/53")
	if r.code != 0 || len(r.sent.wires) != 1 {
		t.Fatalf("-l: %d %s", r.code, r.stderr)
	}
	if m, err := spa.Decode([]byte(r.sent.wires[0]), spa.Keys{Key: []byte("fwknoptest")}); err != nil || m.Message != "10.99.0.2,tcp/22" {
		t.Errorf("-l sent %+v, %v", m, err)
	}
	// Not saved: --no-save-args, NO_SAVE_ARGS Y, -k, an argument with a blank (with a warning).
	os.Remove(run)
	for _, c := range []struct {
		rc   string
		args []string
	}{
		{"", append([]string{"--no-save-args"}, knockArgs...)},
		{"[default]\nNO_SAVE_ARGS Y\n", knockArgs},
		{"", []string{"-k"}},
		{"", append([]string{"-U", "a b"}, knockArgs...)},
	} {
		writeRC(t, home, c.rc, 0o600)
		r := runCLI(t, home, "", c.args...)
		if _, err := os.Stat(run); err == nil || r.code != 0 {
			t.Errorf("%q saved the command line (exit %d)", c.args, r.code)
		}
	}
	r = runCLI(t, home, "", append([]string{"-U", "a b"}, knockArgs...)...)
	if !strings.Contains(r.stderr, "warning: not saving the command line for -l: argument \"a b\"") {
		t.Errorf("no warning for an unsavable argument: %q", r.stderr)
	}
	r = runCLI(t, home, "", "-l")
	if r.code == 0 || !strings.Contains(r.stderr, "no saved command line in "+run) {
		t.Errorf("-l without a run file: %d %q", r.code, r.stderr)
	}
	// -E names another file, for saving and for -l.
	other := filepath.Join(home, "args")
	if r := runCLI(t, home, "", append([]string{"-E", other}, knockArgs...)...); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if r := runCLI(t, home, "", "-E", other, "-l"); r.code != 0 || len(r.sent.wires) != 1 {
		t.Errorf("-E FILE -l: %d %s", r.code, r.stderr)
	}
}

// TestNoHomeDir: --no-home-dir never touches $HOME and needs the paths it would take from it.
func TestNoHomeDir(t *testing.T) {
	home := t.TempDir()
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"--no-home-dir"}, knockArgs...), "--no-home-dir: give --rc-file PATH or --no-rc-file"},
		{append([]string{"--no-home-dir", "--no-rc-file"}, knockArgs...), "--no-home-dir: give -E FILE to save the command line, or --no-save-args"},
		{[]string{"--no-home-dir", "--show-last"}, "--no-home-dir: give -E FILE"},
	} {
		if r := runCLI(t, home, "", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: %d %q", c.args, r.code, r.stderr)
		}
	}
	rc := filepath.Join(dir, "rc")
	args := append([]string{"--no-home-dir", "--rc-file", rc, "-E", filepath.Join(dir, "run")}, knockArgs...)
	if r := runCLI(t, home, "", args...); r.code != 0 || len(r.sent.wires) != 1 {
		t.Fatalf("%q: %d %s", args, r.code, r.stderr)
	}
	if r := runCLI(t, home, "", append([]string{"--no-home-dir", "--no-rc-file", "--no-save-args"}, knockArgs...)...); r.code != 0 {
		t.Errorf("--no-home-dir --no-rc-file --no-save-args: %s", r.stderr)
	}
	if ents, _ := os.ReadDir(home); len(ents) != 0 {
		t.Errorf("--no-home-dir wrote to HOME: %v", ents)
	}
	for _, f := range []string{"rc", "run"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// TestIntegrationRunFileWithRealFwknop: each client re-runs the command line the other saved.
func TestIntegrationRunFileWithRealFwknop(t *testing.T) {
	nstest.Require(t, "fwknop")
	home := t.TempDir()
	fwknop := func(args ...string) string {
		cmd := exec.Command("fwknop", args...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("fwknop %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	pkt := filepath.Join(home, "pkt")
	fwknop(append([]string{"-T", "-B", pkt, "-f", "45"}, knockArgs...)...)
	r := runCLI(t, home, "", "-l")
	if r.code != 0 || len(r.sent.wires) != 0 || !strings.Contains(r.stdout, "Client Timeout: 45") {
		t.Fatalf("sesame -l of fwknop's run file: %d %s%s", r.code, r.stdout, r.stderr)
	}
	runCLI(t, home, "", append([]string{"-T", "-B", pkt, "-f", "46"}, knockArgs...)...)
	out := fwknop("--show-last")
	if !strings.Contains(out, strings.Join(append([]string{"-T", "-B", pkt, "-f", "46"}, knockArgs...), " ")) {
		t.Errorf("fwknop --show-last of sesame's run file: %s", out)
	}
	os.Remove(pkt)
	if out := fwknop("-l"); !strings.Contains(out, "Client Timeout: 46") {
		t.Errorf("fwknop -l of sesame's run file:\n%s", out)
	}
}

// TestSaveStanzaAsks: an existing stanza is changed only with --force-stanza or, on a
// terminal, after a "y" per variable; without a terminal the error names the fix.
func TestSaveStanzaAsks(t *testing.T) {
	home := t.TempDir()
	path := writeRC(t, home, "[x]\nSPA_SERVER 10.99.0.1\nACCESS tcp/22\nKEY fwknoptest\n", 0o600)
	save := func(terminal bool, stdin string) (int, string, string) {
		var out, errb bytes.Buffer
		c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, sender: &fakeSender{},
			home: func() (string, error) { return home, nil }, terminal: func() bool { return terminal }}
		code := c.run(context.Background(), []string{"--no-save-args", "-n", "x", "--save-rc-stanza", "-T", "-a", "10.99.0.2",
			"-A", "tcp/23", "--stdin"})
		text, _ := os.ReadFile(path)
		return code, out.String() + errb.String(), string(text)
	}
	code, out, text := save(false, "")
	if code == 0 || !strings.Contains(out, "already sets ACCESS; add --force-stanza") || !strings.Contains(text, "ACCESS tcp/22\n") {
		t.Errorf("no terminal: %d %s\n%s", code, out, text)
	}
	// "n" keeps tcp/22; the key for --stdin is read after the answer, from the same stdin.
	code, out, text = save(true, "n\nfwknoptest\n")
	if code != 0 || !strings.Contains(out, "Stanza [x] already sets ACCESS. Overwrite it [N/y]? ") ||
		!strings.Contains(text, "ACCESS                      tcp/22\n") || !strings.Contains(text, "ALLOW_IP                    10.99.0.2\n") {
		t.Errorf("answer n: %d %s\n%s", code, out, text)
	}
	code, out, text = save(true, "y\nfwknoptest\n")
	if code != 0 || !strings.Contains(text, "ACCESS                      tcp/23\n") {
		t.Errorf("answer y: %d %s\n%s", code, out, text)
	}
}

// TestHMACDigestTypeSaved: --hmac-digest-type alone turns HMAC on, so the saved stanza says
// USE_HMAC Y (what fwknop 2.6.10 writes), and the knock needs an HMAC key.
func TestHMACDigestTypeSaved(t *testing.T) {
	home := t.TempDir()
	r := runCLI(t, home, "", "--no-save-args", "-n", "x", "--save-rc-stanza", "-T", "-D", "10.99.0.1", "-a", "10.99.0.2",
		"-A", "tcp/22", "--key-rijndael", "abc", "--hmac-digest-type", "sha512")
	text, _ := os.ReadFile(filepath.Join(home, ".fwknoprc"))
	if r.code == 0 || !strings.Contains(string(text), "HMAC_DIGEST_TYPE            SHA512\n") ||
		!strings.Contains(string(text), "USE_HMAC                    Y\n") {
		t.Errorf("exit %d (want 1: no HMAC key), stanza:\n%s", r.code, text)
	}
}

// TestRCFileCreated: a missing ~/.fwknoprc (or --rc-file) is created with mode 0600, as fwknop
// does on first use.
func TestRCFileCreated(t *testing.T) {
	home := t.TempDir()
	r := runCLI(t, home, "", append([]string{"--no-save-args", "-T"}, knockArgs...)...)
	st, err := os.Stat(filepath.Join(home, ".fwknoprc"))
	if r.code != 0 || err != nil || st.Mode().Perm() != 0o600 || !strings.Contains(r.stderr, "created") {
		t.Errorf("exit %d, %v %v: %s", r.code, st, err, r.stderr)
	}
	r = runCLI(t, home, "", append([]string{"--no-save-args", "-T"}, knockArgs...)...)
	if strings.Contains(r.stderr, "created") {
		t.Errorf("created twice: %s", r.stderr)
	}
}

// TestTransportTarget: -P tcpraw, -Q and -H reach the sender.
func TestTransportTarget(t *testing.T) {
	home := t.TempDir()
	r := runCLI(t, home, "", append([]string{"--no-save-args", "-P", "tcpraw", "-Q", "10.9.9.9"}, knockArgs...)...)
	if r.code != 0 || len(r.sent.targets) != 1 || r.sent.targets[0].Proto != "tcpraw" || r.sent.targets[0].SpoofSource.String() != "10.9.9.9" {
		t.Errorf("exit %d, targets %+v: %s", r.code, r.sent.targets, r.stderr)
	}
	r = runCLI(t, home, "", append([]string{"--no-save-args", "-P", "udp", "-H", "10.99.0.8:3128"}, knockArgs...)...)
	if r.code != 0 || len(r.sent.targets) != 1 || r.sent.targets[0].Proto != "http" || r.sent.targets[0].HTTPProxy != "10.99.0.8:3128" {
		t.Errorf("exit %d, targets %+v: %s", r.code, r.sent.targets, r.stderr)
	}
}

package knock

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/spa"
)

// fakeSender records what would be sent.
type fakeSender struct {
	targets []knock.Target
	wires   []string
}

func (f *fakeSender) Send(_ context.Context, t knock.Target, wire string) (knock.Sent, error) {
	f.targets = append(f.targets, t)
	f.wires = append(f.wires, wire)
	return knock.Sent{Bytes: len(wire)}, nil
}

type result struct {
	code           int
	stdout, stderr string
	sent           *fakeSender
}

func runCLI(t *testing.T, home, stdin string, args ...string) result {
	t.Helper()
	t.Setenv("HOME", home)
	var out, errb bytes.Buffer
	fs := &fakeSender{}
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, sender: fs,
		env: knock.Env{Now: func() time.Time { return time.Unix(1795432440, 0) }, Username: func() string { return "sesame" }}}
	code := c.run(context.Background(), args)
	return result{code, out.String(), errb.String(), fs}
}

// TestMatrixArgs runs sesame knock with the fwknop client flags of every interop case and
// checks the packet it would send decodes, with the case's keys, to the case's fields.
func TestMatrixArgs(t *testing.T) {
	home := t.TempDir()
	for _, c := range fwknoptest.Matrix() {
		t.Run(c.Name, func(t *testing.T) {
			r := runCLI(t, home, "", append([]string{"--no-rc-file"}, c.ClientArgs()...)...)
			if r.code != 0 || len(r.sent.wires) != 1 {
				t.Fatalf("exit %d, %d packets: %s", r.code, len(r.sent.wires), r.stderr)
			}
			m, err := spa.Decode([]byte(r.sent.wires[0]), c.Keys)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := c.Message(time.Unix(1795432440, 0))
			if m.Type != want.Type || m.Message != want.Message || m.NATAccess != want.NATAccess ||
				m.ClientTimeout != want.ClientTimeout || m.Username != want.Username ||
				m.Timestamp != want.Timestamp || m.DigestType != want.DigestType {
				t.Errorf("decoded %+v\nwant    %+v", *m, want)
			}
			if tg := r.sent.targets[0]; tg.Server != fwknoptest.MatrixServer || tg.Port != knock.DefaultPort {
				t.Errorf("target %+v", tg)
			}
		})
	}
}

func TestTestModeDumpMatchesFwknopFormat(t *testing.T) {
	home := t.TempDir()
	pkt := filepath.Join(home, "pkt")
	r := runCLI(t, home, "", "--no-rc-file", "-T", "-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22",
		"--key-rijndael", "fwknoptest", "--use-hmac", "--key-hmac", "hmactest", "-m", "sha3_256", "-M", "ctr", "-B", pkt)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if len(r.sent.wires) != 0 {
		t.Error("-T sent a packet")
	}
	d, err := fwknoptest.ParseDump(r.stdout)
	if err != nil {
		t.Fatalf("fwknop's dump parser refuses our output: %v\n%s", err, r.stdout)
	}
	saved, _ := os.ReadFile(pkt)
	if d.FinalSPAData+"\n" != string(saved) || d.DigestType != 6 || d.EncryptionMode != 6 || d.HMACType != 3 ||
		d.Message != "10.99.0.2,tcp/22" || d.Username != "sesame" || !strings.HasSuffix(d.FinalSPAData, d.HMAC) {
		t.Errorf("dump %+v, saved %q", d, saved)
	}
	if st, _ := os.Stat(pkt); st.Mode().Perm() != 0o600 {
		t.Errorf("-B file mode %o", st.Mode().Perm())
	}
	r = runCLI(t, home, "", "--no-rc-file", "-T", "-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22",
		"--key-rijndael", "fwknoptest", "-B", pkt, "-b")
	saved, _ = os.ReadFile(pkt)
	if r.code != 0 || strings.Count(string(saved), "\n") != 2 {
		t.Errorf("-b did not append: %q", saved)
	}
}

func writeRC(t *testing.T, home, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(home, ".fwknoprc")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, mode)
	return p
}

func TestRCStanzas(t *testing.T) {
	home := t.TempDir()
	writeRC(t, home, "[default]\nSPA_SERVER_PORT 777\nACCESS tcp/99\n\n[srv]\nSPA_SERVER 10.99.0.1\nALLOW_IP 10.99.0.2\n"+
		"KEY_BASE64 Zndrbm9wdGVzdA==\nHMAC_KEY hmactest\nUSE_HMAC Y\nSPA_SERVER_PROTO tcp\n", 0o600)
	r := runCLI(t, home, "", "-n", "srv")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	tg := r.sent.targets[0]
	if tg.Port != 777 || tg.Proto != "tcp" || tg.Server != "10.99.0.1" {
		t.Errorf("target %+v", tg)
	}
	m, err := spa.Decode([]byte(r.sent.wires[0]), spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")})
	if err != nil || m.Message != "10.99.0.2,tcp/99" {
		t.Fatalf("decode %v %+v", err, m)
	}
	// The command line wins over the stanza.
	r = runCLI(t, home, "", "-n", "srv", "-A", "udp/53", "-p", "62201", "-P", "udp")
	m, _ = spa.Decode([]byte(r.sent.wires[0]), spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")})
	if m == nil || m.Message != "10.99.0.2,udp/53" || r.sent.targets[0].Port != 62201 || r.sent.targets[0].Proto != "udp" {
		t.Errorf("override: %+v %+v", m, r.sent.targets)
	}
	r = runCLI(t, home, "", "--stanza-list")
	if r.code != 0 || !strings.Contains(r.stdout, " - srv\n") || strings.Contains(r.stdout, "default") {
		t.Errorf("--stanza-list: %q", r.stdout)
	}
}

func TestSaveRCStanza(t *testing.T) {
	home := t.TempDir()
	r := runCLI(t, home, "", "-n", "new", "-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22", "-k", "--save-rc-stanza")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	path := filepath.Join(home, ".fwknoprc")
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rc file %v %v", st, err)
	}
	text, _ := os.ReadFile(path)
	for _, want := range []string{"[new]\n", "ALLOW_IP                    10.99.0.2\n", "KEY_BASE64                  ", "HMAC_KEY_BASE64             ", "USE_HMAC                    Y\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("rc file lacks %q:\n%s", want, text)
		}
	}
	r = runCLI(t, home, "", "-n", "new")
	if r.code != 0 || len(r.sent.wires) != 1 {
		t.Fatalf("knock with the saved stanza: %d %s", r.code, r.stderr)
	}
	// Changing a saved value needs --force-stanza.
	r = runCLI(t, home, "", "-n", "new", "-A", "tcp/23", "--save-rc-stanza", "-T")
	if r.code == 0 || !strings.Contains(r.stderr, "--force-stanza") {
		t.Errorf("conflicting save: %d %s", r.code, r.stderr)
	}
	r = runCLI(t, home, "", "-n", "new", "-A", "tcp/23", "--save-rc-stanza", "--force-stanza", "-T")
	text, _ = os.ReadFile(path)
	if r.code != 0 || !strings.Contains(string(text), "ACCESS                      tcp/23\n") {
		t.Errorf("forced save: %d %s\n%s", r.code, r.stderr, text)
	}
}

func TestErrors(t *testing.T) {
	home := t.TempDir()
	writeRC(t, home, "[srv]\nSPA_SERVER 10.99.0.1\n", 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--no-rc-file", "-D", "10.99.0.1", "-a", "10.0.0.1", "--gpg-encryption"}, "needs --gpg-recipient-key"},
		{[]string{"--no-rc-file", "-D", "10.99.0.1", "-a", "10.0.0.1", "-A", "tcp/22", "--key-rijndael", "k", "-Q", "1.2.3.4"}, "-Q/SPOOF_SOURCE_IP needs -P udpraw"},
		{[]string{"--no-rc-file", "-D", "10.99.0.1", "-A", "tcp/22", "--key-rijndael", "k"}, "-a IP"},
		{[]string{"--no-rc-file", "-D", "10.99.0.1", "-a", "10.0.0.1", "-A", "tcp/22", "--key-rijndael", strings.Repeat("k", 33)}, "1..32"},
		{[]string{"--no-rc-file", "-D", "10.99.0.1", "-a", "10.0.0.1", "-A", "tcp/22", "--key-rijndael", "k", "-U", strings.Repeat("u", 49)}, "at most 48"},
		{[]string{"--no-rc-file", "-P", "sctp"}, "-P: invalid option: protocol \"sctp\""},
		{[]string{"--no-rc-file", "--bogus"}, "unknown flag"},
		{[]string{"--no-rc-file", "-D", "x", "-a", "10.0.0.1", "-m", "sha7"}, "-m \"sha7\""},
	}
	for _, c := range cases {
		r := runCLI(t, home, "", c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("%q: exit %d, stderr %q (want one line with %q)", c.args, r.code, r.stderr, c.want)
		}
	}
	// A 0644 rc file is a warning naming the fix, as in fwknop; the knock goes on (and here stops
	// for want of a key).
	if r := runCLI(t, home, "", "-n", "srv"); !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "chmod 600") ||
		!strings.Contains(r.stderr, "missing key") {
		t.Errorf("0644 rc file: exit %d, stderr %q", r.code, r.stderr)
	}
	os.Chmod(filepath.Join(home, ".fwknoprc"), 0o600)
	r := runCLI(t, home, "", "-n", "other")
	if r.code == 0 || !strings.Contains(r.stderr, "stanza [other] not found") || !strings.Contains(r.stderr, "stanzas: srv") {
		t.Errorf("unknown stanza: %q", r.stderr)
	}
}

func TestStdinKeys(t *testing.T) {
	// As fwknop: one line, the key no option gives (here the HMAC key).
	r := runCLI(t, t.TempDir(), "hmactest\nignored\n", "--no-rc-file", "--stdin", "--use-hmac", "--key-rijndael", "fwknoptest",
		"-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if _, err := spa.Decode([]byte(r.sent.wires[0]), spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")}); err != nil {
		t.Error(err)
	}
}

func TestKeyGen(t *testing.T) {
	r := runCLI(t, t.TempDir(), "", "--no-rc-file", "-k", "--hmac-digest-type", "sha512")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 2 || len(strings.TrimPrefix(lines[0], "KEY_BASE64: ")) != 44 ||
		len(strings.TrimPrefix(lines[1], "HMAC_KEY_BASE64: ")) != 172 {
		t.Errorf("-k: %d %q", r.code, r.stdout)
	}
}

func TestUnresolvableServer(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, sender: knock.NetSender{}}
	code := c.run(context.Background(), []string{"--no-rc-file", "-D", "no-such-host.invalid", "-a", "10.0.0.1", "-A", "tcp/22", "--key-rijndael", "k"})
	if code == 0 || !strings.Contains(errb.String(), "cannot resolve SPA server \"no-such-host.invalid\"") ||
		!strings.Contains(errb.String(), "check -D") {
		t.Errorf("exit %d: %q", code, errb.String())
	}
}

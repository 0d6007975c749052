package knock

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

func TestMain(m *testing.M) {
	code := m.Run()
	gpgtest.CleanupShared()
	os.Exit(code)
}

// gpgPass is the passphrase of home B's key.
const gpgPass = "gpg-pw"

// gpgHomes are the two GnuPG homes of this package's tests, made once per test binary: A
// holds an RSA key without passphrase, B an RSA key protected by gpgPass (with "pinentry-mode
// loopback", which Debian's fwknop needs to pass a passphrase to gpg 2.2). Each also holds the
// other's public key. Packets in the recorded cases are encrypted to the home's own key, so
// that fwknop's -T self-check can decrypt them.
func gpgHomes(t testing.TB) (a, b *gpgtest.Home) {
	t.Helper()
	h := gpgtest.SharedHomes(t, "knock", func(t testing.TB, h []*gpgtest.Home) {
		h[1].PinentryLoopback(t)
		h[0].Import(t, h[1])
		h[1].Import(t, h[0])
	}, gpgtest.Spec{Kind: gpgtest.RSA, UID: "home a <a@test>"}, gpgtest.Spec{Kind: gpgtest.RSA, UID: "home b <b@test>", Passphrase: gpgPass})
	return h[0], h[1]
}

// gpgKeys caches the secret keys of the homes (gpgkeys.Load runs gpg).
var gpgKeys = map[*gpgtest.Home]*gpgkeys.Keys{}

func homeKeys(t testing.TB, h *gpgtest.Home) *gpgkeys.Keys {
	if k := gpgKeys[h]; k != nil {
		return k
	}
	gpgKeys[h] = h.Keys(t)
	return gpgKeys[h]
}

// gpgPlaceholders replaces @GA@ and @GB@ (the homes) and @IDA@ and @IDB@ (their key IDs) in
// s; reverse swaps back, so recorded text does not depend on the keys generated.
func gpgPlaceholders(t testing.TB, s string, reverse bool) string {
	if !strings.Contains(s, "@") && !reverse {
		return s
	}
	a, b := gpgHomes(t)
	pairs := []string{"@GA@", a.Dir, "@GB@", b.Dir, "@IDA@", a.ID, "@IDB@", b.ID}
	if reverse {
		for i := 0; i < len(pairs); i += 2 {
			pairs[i], pairs[i+1] = pairs[i+1], pairs[i]
		}
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

// gpgOutcome describes a GnuPG packet: "ok gpg" with the message, type, HMAC, the home whose
// key it is encrypted to and the home that signed it ("-" unsigned). "" if it is none of
// the homes' packets.
func gpgOutcome(t testing.TB, wire []byte) string {
	if len(wire) < 400 {
		return ""
	}
	a, b := gpgHomes(t)
	for _, hk := range [][2]string{{"", ""}, {"hm", "sha256"}} {
		for _, h := range []*gpgtest.Home{a, b} {
			k := homeKeys(t, h)
			o, err := gnupg.NewOpener(gnupg.Keyring{Decrypt: k.Secret, Signers: k.Public}, gnupg.Policy{}, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recordingOpener{o: o}
			keys := spa.Keys{}
			if hk[0] != "" {
				keys.HMACKey, keys.HMACType = []byte(hk[0]), spa.SHA256
			}
			m, err := spa.DecodeGnuPG(wire, keys, rec)
			if err != nil {
				continue
			}
			signer := "-"
			switch rec.sig.Primary {
			case a.Fpr:
				signer = "A"
			case b.Fpr:
				signer = "B"
			case "":
			default:
				signer = "?"
			}
			to := map[*gpgtest.Home]string{a: "A", b: "B"}[h]
			s := fmt.Sprintf("ok gpg msg=%s type=%d to=%s signer=%s", m.Message, int(m.Type), to, signer)
			if hk[0] != "" {
				s += fmt.Sprintf(" hmackey=%q", hk[0])
			}
			return s
		}
	}
	return "ok, GnuPG packet decodes with no candidate key"
}

// recordingOpener keeps the signature of the message it opened.
type recordingOpener struct {
	o   *gnupg.Opener
	sig gnupg.Signer
}

func (r *recordingOpener) Open(msg []byte) ([]byte, error) {
	pt, sig, err := r.o.OpenDetails(msg)
	r.sig = sig
	return pt, err
}

// savedStanza returns stanza s1 of the rc file written by --save-rc-stanza, with the homes'
// paths and IDs as placeholders.
func savedStanza(t testing.TB, path string) string {
	f, err := rcfile.Load(path)
	if err != nil {
		return "no rc file"
	}
	s, ok := f.Stanza("s1")
	if !ok {
		return "no stanza s1"
	}
	return gpgPlaceholders(t, rcfile.Format(s), true)
}

var gpgPassB64 = base64.StdEncoding.EncodeToString([]byte(gpgPass))

// isGPG reports whether c uses the GnuPG homes.
func (c clientCase) isGPG() bool {
	return strings.Contains(strings.Join(c.args, " ")+c.rc, "@")
}

// gpgArgs are the GnuPG options for a packet from home h ("A" or "B") to its own key.
func gpgArgs(h string, extra ...string) []string {
	return withBase(append([]string{"-g", "--gpg-recipient-key", "@ID" + h + "@", "--gpg-signer-key", "@ID" + h + "@",
		"--gpg-home-dir", "@G" + h + "@/"}, extra...)...)
}

// unsignedDiffers: fwknop -T builds and saves an unsigned packet, then its own decode of it
// demands a signature ("Missing GPG signature") and it exits 1.
const unsignedDiffers = "fwknop -T refuses its own unsigned packet after saving it; sesame's self-check has no signature policy"

// gpgCases are the recorded cases of GnuPG mode (see TestFwknopClientCases).
var gpgCases = []clientCase{
	{name: "gpgNoSigningPW", args: gpgArgs("A", "--gpg-no-signing-pw")},
	{name: "gpgHMAC", args: gpgArgs("A", "--gpg-no-signing-pw", "--use-hmac", "--key-hmac", "hm")},
	{name: "gpgUnsigned", args: withBase("-g", "--gpg-recipient-key", "@IDA@", "--gpg-home-dir", "@GA@"),
		differs: unsignedDiffers, want: "ok gpg msg=10.0.0.2,tcp/22 type=1 to=A signer=-"},
	{name: "gpgRecipientImpliesG", args: withBase("--gpg-recipient-key", "@IDA@", "--gpg-home-dir", "@GA@"),
		differs: unsignedDiffers, want: "ok gpg msg=10.0.0.2,tcp/22 type=1 to=A signer=-"},
	{name: "gpgPassKeyOption", args: gpgArgs("B", "--key-rijndael", gpgPass)},
	{name: "gpgPassWrong", args: gpgArgs("B", "--key-rijndael", "nope")},
	{name: "gpgPassRC", rc: "[default]\nGPG_SIGNING_PW " + gpgPass + "\n", args: gpgArgs("B")},
	{name: "gpgPassRCBase64", rc: "[default]\nGPG_SIGNING_PW_BASE64 " + gpgPassB64 + "\n", args: gpgArgs("B", "--use-hmac", "--key-hmac", "hm")},
	{name: "gpgPassRCThenKey", rc: "[default]\nGPG_SIGNING_PW nope\nKEY " + gpgPass + "\n", args: gpgArgs("B")},
	{name: "gpgPassStdin", stdin: gpgPass + "\n", args: gpgArgs("B", "--stdin")},
	{name: "gpgPassFd", fd: gpgPass + "\n", args: gpgArgs("B", "--fd", "FD", "--use-hmac", "--key-hmac", "hm")},
	{name: "gpgRCStanza", rc: "[s]\nUSE_GPG Y\nGPG_RECIPIENT @IDA@\nGPG_SIGNER @IDA@\nGPG_HOMEDIR @GA@\nGPG_NO_SIGNING_PW Y\n" +
		"SPA_SERVER 10.0.0.9\nACCESS tcp/22\nALLOW_IP 10.0.0.2\n", args: []string{"-n", "s"}},
	{name: "gpgRCUseGPGNo", rc: "[s]\nUSE_GPG N\nGPG_RECIPIENT @IDA@\nGPG_HOMEDIR @GA@\nKEY abc\n", args: withBase("-n", "s")},
	{name: "gpgNoRecipient", note: "needs --gpg-recipient-key", args: withBase("-g", "--gpg-home-dir", "@GA@", "--key-rijndael", "abc")},
	{name: "asymmetricWithoutGPG", note: "-M/ENCRYPTION_MODE asymmetric is GnuPG mode", args: withBase("-M", "asymmetric", "--key-rijndael", "abc")},
	{name: "gpgUnknownRecipient", note: "no recipient key \"DEADBEEF\"", args: withBase("-g", "--gpg-recipient-key", "DEADBEEF", "--gpg-home-dir", "@GA@")},
	{name: "gpgIdenticalKeys", args: gpgArgs("B", "--key-rijndael", gpgPass, "--use-hmac", "--key-hmac", gpgPass)},
	{name: "gpgSaveRC", showRC: true, args: append([]string{"-n", "s1", "--save-rc-stanza", "--gpg-exe", "/usr/bin/gpg",
		"--gpg-agent", "--use-hmac", "--key-hmac", "hm"}, gpgArgs("A", "--gpg-no-signing-pw")...)},
	{name: "gpgSaveRCPass", showRC: true, args: append([]string{"-n", "s1", "--save-rc-stanza"}, gpgArgs("B", "--key-rijndael", gpgPass)...)},
	{name: "gpgSaveRCUnsigned", showRC: true, args: withBase("-n", "s1", "--save-rc-stanza", "--gpg-recipient-key", "@IDA@", "--gpg-home-dir", "@GA@"),
		differs: unsignedDiffers, want: "ok gpg msg=10.0.0.2,tcp/22 type=1 to=A signer=-\n[s1]\nALLOW_IP                    10.0.0.2\n" +
			"USE_GPG                     Y\nGPG_RECIPIENT               @IDA@\nGPG_HOMEDIR                 @GA@\nACCESS                      tcp/22\n" +
			"SPA_SERVER                  10.0.0.9\nNO_SAVE_ARGS                Y\n"},
}

// TestGnuPGKnock: sesame knock -g with keys made by gpg, in-process (the fake sender): a
// packet signed by B (passphrase on stdin), encrypted to A, with an HMAC, that A's keyring
// opens and verifies; the terminal prompt (Env.Passphrase) asked only for a protected key;
// --gpg-agent with a protected key refused naming the alternatives, with an unprotected one
// accepted; -T's self-check of a GnuPG packet.
func TestGnuPGKnock(t *testing.T) {
	a, b := gpgHomes(t)
	home := t.TempDir()
	base := []string{"--no-rc-file", "-D", "10.99.0.1", "-a", "10.99.0.2", "-A", "tcp/22", "-g",
		"--gpg-recipient-key", a.ID, "--gpg-home-dir", b.Dir}

	// The terminal (Env.Passphrase) records what it was asked.
	var asked []string
	ask := func(p string) (string, error) { asked = append(asked, p); return gpgPass, nil }
	run := func(stdin string, args ...string) result {
		t.Helper()
		var out, errb strings.Builder
		fs := &fakeSender{}
		c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, sender: fs,
			home: func() (string, error) { return home, nil }, env: knock.Env{Now: time.Now, Username: func() string { return "sesame" }}}
		if ask != nil {
			c.env.Passphrase = ask
		}
		return result{c.run(t.Context(), args), out.String(), errb.String(), fs}
	}

	r := run(gpgPass+"\n", append(base, "--gpg-signer-key", b.ID, "--stdin", "--use-hmac", "--key-hmac", "hm")...)
	if r.code != 0 || len(r.sent.wires) != 1 || len(asked) != 0 {
		t.Fatalf("exit %d, asked %q: %s", r.code, asked, r.stderr)
	}
	k := homeKeys(t, a)
	o, err := gnupg.NewOpener(gnupg.Keyring{Decrypt: k.Secret, Signers: k.Public, Valid: func(string) bool { return true }},
		gnupg.Policy{RequireSig: true, RemoteIDs: []string{b.ID}}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	m, err := spa.DecodeGnuPG([]byte(r.sent.wires[0]), spa.Keys{HMACKey: []byte("hm")}, o)
	if err != nil {
		t.Fatalf("A's keyring does not open B's packet: %v", err)
	}
	if m.Message != "10.99.0.2,tcp/22" || m.Username != "sesame" {
		t.Errorf("decoded %+v", *m)
	}

	// The terminal: asked for B's protected key, not for A's.
	if r := run("", append(base, "--gpg-signer-key", b.ID)...); r.code != 0 || len(asked) != 1 || asked[0] != "Enter passphrase for signing: " {
		t.Errorf("protected key: exit %d, asked %q: %s", r.code, asked, r.stderr)
	}
	asked = nil
	baseA := append(append([]string{}, base[:len(base)-1]...), a.Dir)
	if r := run("", append(baseA, "--gpg-signer-key", a.ID)...); r.code != 0 || len(asked) != 0 {
		t.Errorf("key without passphrase: exit %d, asked %q: %s", r.code, asked, r.stderr)
	}
	// --gpg-agent: fine for A, refused for B with the alternatives named, without asking.
	if r := run("", append(baseA, "--gpg-signer-key", a.ID, "--gpg-agent")...); r.code != 0 {
		t.Errorf("--gpg-agent, no passphrase: exit %d: %s", r.code, r.stderr)
	}
	r = run("", append(base, "--gpg-signer-key", b.ID, "--gpg-agent")...)
	if r.code == 0 || len(asked) != 0 || !strings.Contains(r.stderr, "cannot sign through gpg-agent") ||
		!strings.Contains(r.stderr, "drop --gpg-agent") || !strings.Contains(r.stderr, "GPG_SIGNING_PW_BASE64") {
		t.Errorf("--gpg-agent, protected: exit %d, asked %q: %s", r.code, asked, r.stderr)
	}
	// No terminal: the error names --stdin.
	ask = nil
	r = run("", append(base, "--gpg-signer-key", b.ID)...)
	if r.code == 0 || !strings.Contains(r.stderr, "--stdin") {
		t.Errorf("no terminal: exit %d: %s", r.code, r.stderr)
	}

	// -T: the dump says GPG and the self-check passes.
	pkt := filepath.Join(home, "pkt")
	r = run("", append(baseA, "--gpg-signer-key", a.ID, "-T", "-B", pkt, "--use-hmac", "--key-hmac", "hm")...)
	for _, w := range []string{"Encryption Type: 2 (GPG)", "Encryption Mode: 7 (Asymmetric)", "GPG recipient: " + a.ID,
		"GPG home dir: " + a.Dir, "test mode enabled"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("-T output lacks %q:\n%s", w, r.stdout)
		}
	}
	if r.code != 0 || len(r.sent.wires) != 0 {
		t.Errorf("-T: exit %d, sent %d: %s", r.code, len(r.sent.wires), r.stderr)
	}
}

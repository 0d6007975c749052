// Package gpgkeys gets an fwknop server's GnuPG keys out of a GnuPG home directory, as
// fwknopd's access.conf names them (GPG_HOME_DIR, GPG_EXE, GPG_DECRYPT_ID, GPG_DECRYPT_PW,
// GPG_ALLOW_NO_PW), for package spa/gnupg.
//
// A GnuPG 2.2 home keeps public keys in a keybox (pubring.kbx) and secret keys in
// private-keys-v1.d, formats go-crypto does not read. So Load asks the installed gpg, once per
// call (sesame server calls it at start and at each reload, never per packet):
//
//	gpg --homedir H --batch --with-colons --fixed-list-mode --list-keys        key validity
//	gpg --homedir H --batch --with-colons --list-secret-keys [ID]              the key exists
//	gpg --homedir H --batch --export                                           public keyring
//	gpg --homedir H --batch --pinentry-mode loopback --passphrase-fd 0 \
//	    --export-secret-keys [ID]                                              secret key
//
// and parses the exported OpenPGP packets with go-crypto; the secret key is decrypted with
// GPG_DECRYPT_PW in memory. The passphrase goes to gpg on a pipe, never on its command line.
// gpg starts a gpg-agent for the home to export secret keys; if none was running before,
// Load stops it again ("gpgconf --homedir H --kill gpg-agent").
//
// Every error names the home directory, the key and the fix.
package gpgkeys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Defaults of fwknopd.conf (Debian's fwknopd 2.6.10).
const (
	DefaultHomeDir = "/root/.gnupg"
	DefaultExe     = "/usr/bin/gpg"
)

// Spec names the keys of one access stanza.
type Spec struct {
	HomeDir      string // GPG_HOME_DIR; "" is DefaultHomeDir
	Exe          string // GPG_EXE; "" is DefaultExe
	DecryptID    string // GPG_DECRYPT_ID; "" takes every secret key of the home
	Passphrase   string // GPG_DECRYPT_PW
	NoPassphrase bool   // GPG_ALLOW_NO_PW: the secret key has no passphrase
}

// Keys is what Load found.
type Keys struct {
	// Secret holds the secret key(s) for Spec.DecryptID, decrypted.
	Secret openpgp.EntityList
	// Public is the home's whole public keyring (the keys that may sign packets).
	Public openpgp.EntityList
	// Validity maps each public key's primary fingerprint (upper-case hex) to gpg's validity
	// letter ('u' ultimate, 'f' full, 'm' marginal, '-' unknown, 'q', 'n', 'e', 'r', ...).
	Validity map[string]byte
}

// Valid reports whether the key with this primary fingerprint is valid as fwknopd requires
// of a signer (gpgme validity of at least marginal: 'm', 'f' or 'u').
func (k *Keys) Valid(primaryFingerprint string) bool {
	switch k.Validity[strings.ToUpper(primaryFingerprint)] {
	case 'm', 'f', 'u':
		return true
	}
	return false
}

// timeout bounds each gpg run.
const timeout = 60 * time.Second

// Load reads the keys of s from its GnuPG home with the gpg binary s names (see the package
// doc). It fails when the home or gpg is missing, when there is no secret key for
// s.DecryptID, when that key has no encryption subkey, or when the passphrase does not
// unlock it (or is missing for a protected key without s.NoPassphrase).
func Load(ctx context.Context, s Spec) (*Keys, error) {
	if s.HomeDir == "" {
		s.HomeDir = DefaultHomeDir
	}
	if s.Exe == "" {
		s.Exe = DefaultExe
	}
	keyName := "every secret key"
	if s.DecryptID != "" {
		keyName = "GPG_DECRYPT_ID " + s.DecryptID
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("gnupg: GPG_HOME_DIR %s, %s: %s", s.HomeDir, keyName, fmt.Sprintf(format, args...))
	}
	if st, err := os.Stat(s.HomeDir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fail("%v: point GPG_HOME_DIR at the GnuPG home holding the server's key", err)
	}
	exe, err := exec.LookPath(s.Exe)
	if err != nil {
		return nil, fail("GPG_EXE %s: %v: install gnupg (apt-get install gnupg) or set GPG_EXE", s.Exe, err)
	}
	g := &gpg{exe: exe, home: s.HomeDir}
	if !g.agentRunning(ctx) {
		defer g.killAgent()
	}

	// Validity first: listing keys also brings gpg's trust database up to date.
	out, stderr, err := g.run(ctx, nil, "--with-colons", "--fixed-list-mode", "--list-keys")
	if err != nil {
		return nil, fail("gpg --list-keys failed: %v: %s", err, stderr)
	}
	validity := parseValidity(out)

	args := []string{"--with-colons", "--list-secret-keys"}
	if s.DecryptID != "" {
		args = append(args, s.DecryptID)
	}
	if out, stderr, err := g.run(ctx, nil, args...); err != nil || !bytes.Contains(out, []byte("\nsec:")) && !bytes.HasPrefix(out, []byte("sec:")) {
		return nil, fail("no secret key in this home (%s): import the server's key there (gpg --homedir %s --import KEYFILE) or fix GPG_DECRYPT_ID; 'gpg --homedir %s --list-secret-keys' lists what is there",
			strings.TrimSpace(string(stderr)), s.HomeDir, s.HomeDir)
	}

	out, stderr, err = g.run(ctx, nil, "--export")
	if err != nil {
		return nil, fail("gpg --export failed: %v: %s", err, stderr)
	}
	public, err := openpgp.ReadKeyRing(bytes.NewReader(out))
	if err != nil && len(out) > 0 {
		return nil, fail("reading the exported public keyring: %v", err)
	}

	args = []string{"--pinentry-mode", "loopback", "--passphrase-fd", "0", "--export-secret-keys"}
	if s.DecryptID != "" {
		args = append(args, s.DecryptID)
	}
	out, stderr, err = g.run(ctx, []byte(s.Passphrase+"\n"), args...)
	if err != nil || len(out) == 0 {
		msg := strings.ReplaceAll(strings.TrimSpace(string(stderr)), "\n", "; ")
		if strings.Contains(msg, "Bad passphrase") || strings.Contains(msg, "No passphrase") || strings.Contains(msg, "cancel") {
			if s.Passphrase == "" {
				return nil, fail("the secret key is passphrase-protected (%s): set GPG_DECRYPT_PW to its passphrase", msg)
			}
			return nil, fail("GPG_DECRYPT_PW does not unlock the secret key (%s): check it with 'gpg --homedir %s --pinentry-mode loopback --passwd %s'", msg, s.HomeDir, s.DecryptID)
		}
		return nil, fail("gpg --export-secret-keys failed: %v: %s", err, msg)
	}
	secret, err := openpgp.ReadKeyRing(bytes.NewReader(out))
	if err != nil {
		return nil, fail("reading the exported secret key: %v", err)
	}
	for _, e := range secret {
		if err := decrypt(e, s); err != nil {
			return nil, fail("key %X: %v", e.PrimaryKey.Fingerprint, err)
		}
	}
	if len(secret.DecryptionKeys()) == 0 {
		return nil, fail("no encryption subkey with a secret part: add one (gpg --homedir %s --quick-add-key FINGERPRINT rsa3072 encr)", s.HomeDir)
	}
	return &Keys{Secret: secret, Public: public, Validity: validity}, nil
}

// decrypt unlocks every passphrase-protected private key of e.
func decrypt(e *openpgp.Entity, s Spec) error {
	protected := e.PrivateKey != nil && e.PrivateKey.Encrypted
	for _, sk := range e.Subkeys {
		protected = protected || sk.PrivateKey != nil && sk.PrivateKey.Encrypted
	}
	if !protected {
		return nil
	}
	if s.Passphrase == "" {
		return errors.New("the secret key is passphrase-protected: set GPG_DECRYPT_PW (GPG_ALLOW_NO_PW is for keys without one)")
	}
	if err := e.DecryptPrivateKeys([]byte(s.Passphrase)); err != nil {
		return fmt.Errorf("GPG_DECRYPT_PW does not unlock it (%v)", err)
	}
	return nil
}

// parseValidity reads "pub" and "fpr" records of gpg's colon listing: the validity letter of
// each primary key, keyed by its fingerprint.
func parseValidity(out []byte) map[string]byte {
	v := map[string]byte{}
	var cur byte
	want := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == "pub" && len(f) > 1:
			cur, want = '-', true
			if f[1] != "" {
				cur = f[1][0]
			}
		case f[0] == "fpr" && want && len(f) > 9:
			v[strings.ToUpper(f[9])] = cur
			want = false
		case f[0] == "sub":
			want = false
		}
	}
	return v
}

// gpg runs one gpg binary on one home.
type gpg struct{ exe, home string }

func (g *gpg) run(ctx context.Context, stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	full := append([]string{"--homedir", g.home, "--batch", "--no-tty"}, args...)
	cmd := exec.CommandContext(ctx, g.exe, full...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANGUAGE=")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.Bytes(), e.Bytes(), err
}

// tool finds a GnuPG helper beside the gpg binary, else on PATH ("" if neither).
func (g *gpg) tool(name string) string {
	if p := filepath.Join(filepath.Dir(g.exe), name); isExec(p) {
		return p
	}
	p, _ := exec.LookPath(name)
	return p
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// agentRunning reports whether a gpg-agent already serves the home (true when it cannot
// tell, so that Load never stops an agent it did not start).
func (g *gpg) agentRunning(ctx context.Context) bool {
	t := g.tool("gpg-connect-agent")
	if t == "" || g.tool("gpgconf") == "" {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, t, "--homedir", g.home, "--no-autostart", "/bye")
	var e bytes.Buffer
	cmd.Stderr = &e
	err := cmd.Run()
	return err == nil && !strings.Contains(e.String(), "no gpg-agent running")
}

// killAgent stops the home's gpg-agent (one Load started it).
func (g *gpg) killAgent() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	exec.CommandContext(ctx, g.tool("gpgconf"), "--homedir", g.home, "--kill", "gpg-agent").Run()
}

package gpgkeys

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// ClientSpec names the keys of a GnuPG-mode knock, as fwknop's client options name them
// (--gpg-home-dir, --gpg-recipient-key, --gpg-signer-key and the signing passphrase).
type ClientSpec struct {
	HomeDir    string // the GnuPG home; "" is $GNUPGHOME, else $HOME/.gnupg
	Exe        string // the gpg binary to run; "" is "gpg" on PATH
	Recipient  string // the server's key: fingerprint, key ID or user ID (must match one key)
	Signer     string // the client's key; "" sends the packet unsigned
	Passphrase string // the signer's passphrase; "" for a key without one
}

// ClientKeys is what LoadClient found.
type ClientKeys struct {
	Recipient *openpgp.Entity // the recipient's public key
	Signer    *openpgp.Entity // the signer's key with its private keys decrypted; nil if unsigned
	HomeDir   string          // the home directory used
}

// Errors of LoadClient callers branch on (to name the option that fixes them).
var (
	// ErrNeedPassphrase: the signer's key is passphrase-protected and no passphrase was given.
	ErrNeedPassphrase = errors.New("the signing key is passphrase-protected")
	// ErrBadPassphrase: the passphrase given does not unlock the signer's key.
	ErrBadPassphrase = errors.New("the passphrase does not unlock the signing key")
)

// LoadClient reads the recipient's public key and the signer's secret key from a GnuPG home
// with gpg, once (sesame knock calls it once per knock, never per packet):
//
//	gpg --homedir H --batch --with-colons --list-keys RECIPIENT           one key matches
//	gpg --homedir H --batch --export FPR                                  its public key
//	gpg --homedir H --batch --with-colons --list-secret-keys SIGNER       one secret key matches
//	gpg --homedir H --batch --pinentry-mode loopback --passphrase-fd 0 \
//	    --export-secret-keys FPR                                          the secret key
//
// As libfko, a name that matches no key or more than one is an error. The passphrase goes
// to gpg on a pipe and decrypts the exported key in memory; a gpg-agent that gpg starts for
// the export is stopped again. Errors wrap ErrNeedPassphrase or ErrBadPassphrase when the
// passphrase is missing or wrong; every error names the home and the key.
func LoadClient(ctx context.Context, s ClientSpec) (*ClientKeys, error) {
	if s.HomeDir == "" {
		s.HomeDir = os.Getenv("GNUPGHOME")
	}
	if s.HomeDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("gnupg: no GnuPG home: give --gpg-home-dir (%v)", err)
		}
		s.HomeDir = home + "/.gnupg"
	}
	if s.Exe == "" {
		s.Exe = "gpg"
	}
	if st, err := os.Stat(s.HomeDir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("gnupg: GnuPG home %s: %v: give --gpg-home-dir (GPG_HOMEDIR)", s.HomeDir, err)
	}
	exe, err := exec.LookPath(s.Exe)
	if err != nil {
		return nil, fmt.Errorf("gnupg: %s: %v: install gnupg (apt-get install gnupg)", s.Exe, err)
	}
	if s.Recipient == "" {
		return nil, errors.New("gnupg: no recipient key: give --gpg-recipient-key (GPG_RECIPIENT)")
	}
	g := &gpg{exe: exe, home: s.HomeDir}
	ck := &ClientKeys{HomeDir: s.HomeDir}
	if !g.agentRunning(ctx) {
		defer g.killAgent() // listing secret keys and exporting them start one
	}

	fpr, err := g.one(ctx, "--list-keys", "pub", "recipient key", s.Recipient)
	if err != nil {
		return nil, err
	}
	out, stderr, err := g.run(ctx, nil, "--export", fpr)
	if err != nil || len(out) == 0 {
		return nil, fmt.Errorf("gnupg: home %s: gpg --export %s failed: %v: %s", s.HomeDir, fpr, err, stderr)
	}
	pub, err := openpgp.ReadKeyRing(bytes.NewReader(out))
	if err != nil || len(pub) != 1 {
		return nil, fmt.Errorf("gnupg: home %s: reading recipient key %s: %v", s.HomeDir, fpr, err)
	}
	ck.Recipient = pub[0]
	if s.Signer == "" {
		return ck, nil
	}

	fpr, err = g.one(ctx, "--list-secret-keys", "sec", "signer key", s.Signer)
	if err != nil {
		return nil, err
	}
	out, stderr, err = g.run(ctx, []byte(s.Passphrase+"\n"), "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--export-secret-keys", fpr)
	if err != nil || len(out) == 0 {
		msg := strings.ReplaceAll(strings.TrimSpace(string(stderr)), "\n", "; ")
		if strings.Contains(msg, "Bad passphrase") || strings.Contains(msg, "No passphrase") || strings.Contains(msg, "cancel") {
			if s.Passphrase == "" {
				return nil, fmt.Errorf("gnupg: home %s, signer key %s: %w", s.HomeDir, s.Signer, ErrNeedPassphrase)
			}
			return nil, fmt.Errorf("gnupg: home %s, signer key %s: %w", s.HomeDir, s.Signer, ErrBadPassphrase)
		}
		return nil, fmt.Errorf("gnupg: home %s: gpg --export-secret-keys %s failed: %v: %s", s.HomeDir, fpr, err, msg)
	}
	sec, err := openpgp.ReadKeyRing(bytes.NewReader(out))
	if err != nil || len(sec) != 1 {
		return nil, fmt.Errorf("gnupg: home %s: reading signer key %s: %v", s.HomeDir, fpr, err)
	}
	if err := unlock(sec[0], s.Passphrase); err != nil {
		return nil, fmt.Errorf("gnupg: home %s, signer key %s: %w", s.HomeDir, s.Signer, err)
	}
	ck.Signer = sec[0]
	return ck, nil
}

// one finds the single key (listing "pub" or "sec" records) that name matches and returns
// its primary fingerprint.
func (g *gpg) one(ctx context.Context, list, rec, what, name string) (string, error) {
	out, _, err := g.run(ctx, nil, "--with-colons", "--fixed-list-mode", list, "--", name)
	fprs := primaryFingerprints(out, rec)
	switch {
	case len(fprs) == 0:
		hint := "import it there (gpg --homedir " + g.home + " --import KEYFILE)"
		if rec == "sec" {
			hint = "the secret key must be in this home"
		}
		return "", fmt.Errorf("gnupg: home %s: no %s %q (%v): %s; 'gpg --homedir %s %s' shows what is there",
			g.home, what, name, err, hint, g.home, list)
	case len(fprs) > 1:
		return "", fmt.Errorf("gnupg: home %s: %s %q is ambiguous: it matches %s; give a fingerprint",
			g.home, what, name, strings.Join(fprs, ", "))
	}
	return fprs[0], nil
}

// primaryFingerprints reads gpg's colon listing: the fingerprint of each record rec ("pub"
// or "sec"), from the "fpr" record that follows it.
func primaryFingerprints(out []byte, rec string) []string {
	var fprs []string
	want := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, ":")
		switch {
		case f[0] == rec:
			want = true
		case f[0] == "fpr" && want && len(f) > 9:
			fprs = append(fprs, strings.ToUpper(f[9]))
			want = false
		case f[0] == "sub" || f[0] == "ssb":
			want = false
		}
	}
	return fprs
}

// unlock decrypts every passphrase-protected private key of e.
func unlock(e *openpgp.Entity, passphrase string) error {
	protected := e.PrivateKey != nil && e.PrivateKey.Encrypted
	for _, sk := range e.Subkeys {
		protected = protected || sk.PrivateKey != nil && sk.PrivateKey.Encrypted
	}
	if !protected {
		return nil
	}
	if passphrase == "" {
		return ErrNeedPassphrase
	}
	if err := e.DecryptPrivateKeys([]byte(passphrase)); err != nil {
		return fmt.Errorf("%w (%v)", ErrBadPassphrase, err)
	}
	return nil
}

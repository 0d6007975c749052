package gpgkeys_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/gpgtest"
)

// TestIntegrationLoadClient reads a knock's keys from a client home made by gpg: the server's
// public key by short ID, fingerprint or user ID; the client's passphrase-protected key
// unlocked with its passphrase; a missing, wrong or needless passphrase; unknown and ambiguous
// names.
func TestIntegrationLoadClient(t *testing.T) {
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.ECC, UID: "server one <srv1@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "server two <srv2@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "client <cli@test>", Passphrase: "cli-pw"})
	srv1, srv2, cli := h[0], h[1], h[2]
	cli.Import(t, srv1, srv2)
	ctx := context.Background()

	for _, name := range []string{srv1.ID, srv1.Fpr, "srv1@test"} {
		k, err := gpgkeys.LoadClient(ctx, gpgkeys.ClientSpec{HomeDir: cli.Dir, Recipient: name, Signer: cli.ID, Passphrase: "cli-pw"})
		if err != nil {
			t.Fatalf("recipient %s: %v", name, err)
		}
		if got := strings.ToUpper(fmtFpr(k.Recipient.PrimaryKey.Fingerprint)); got != srv1.Fpr {
			t.Errorf("recipient %s: got key %s", name, got)
		}
		if _, ok := k.Recipient.EncryptionKey(time.Now()); !ok {
			t.Errorf("recipient %s: no encryption key", name)
		}
		sk, ok := k.Signer.SigningKey(time.Now())
		if !ok || sk.PrivateKey == nil || sk.PrivateKey.Encrypted {
			t.Errorf("signer: usable=%v", ok)
		}
		if k.HomeDir != cli.Dir {
			t.Errorf("home %s", k.HomeDir)
		}
	}
	k, err := gpgkeys.LoadClient(ctx, gpgkeys.ClientSpec{HomeDir: cli.Dir, Recipient: srv2.ID})
	if err != nil || k.Signer != nil {
		t.Errorf("unsigned: %v, signer %v", err, k)
	}
	// A key without passphrase loads with one given (gpg ignores it, so does libfko).
	if _, err := gpgkeys.LoadClient(ctx, gpgkeys.ClientSpec{HomeDir: srv1.Dir, Recipient: srv1.ID, Signer: srv1.ID, Passphrase: "x"}); err != nil {
		t.Errorf("needless passphrase: %v", err)
	}

	for name, c := range map[string]struct {
		spec gpgkeys.ClientSpec
		is   error
		want []string
	}{
		"no passphrase":   {gpgkeys.ClientSpec{Recipient: srv1.ID, Signer: cli.ID}, gpgkeys.ErrNeedPassphrase, []string{cli.ID}},
		"bad passphrase":  {gpgkeys.ClientSpec{Recipient: srv1.ID, Signer: cli.ID, Passphrase: "nope"}, gpgkeys.ErrBadPassphrase, []string{cli.ID}},
		"unknown":         {gpgkeys.ClientSpec{Recipient: "DEADBEEF"}, nil, []string{"no recipient key \"DEADBEEF\"", "--import"}},
		"ambiguous":       {gpgkeys.ClientSpec{Recipient: "server"}, nil, []string{"ambiguous", srv1.Fpr, srv2.Fpr}},
		"public signer":   {gpgkeys.ClientSpec{Recipient: srv1.ID, Signer: srv2.ID}, nil, []string{"no signer key", "secret key"}},
		"no recipient":    {gpgkeys.ClientSpec{}, nil, []string{"--gpg-recipient-key"}},
		"no gpg":          {gpgkeys.ClientSpec{Recipient: srv1.ID, Exe: "/nonexistent/gpg"}, nil, []string{"/nonexistent/gpg", "install gnupg"}},
		"no home":         {gpgkeys.ClientSpec{HomeDir: cli.Dir + "-missing", Recipient: srv1.ID}, nil, []string{cli.Dir + "-missing", "--gpg-home-dir"}},
		"key not in home": {gpgkeys.ClientSpec{HomeDir: srv1.Dir, Recipient: srv2.ID}, nil, []string{srv1.Dir, srv2.ID}},
	} {
		if c.spec.HomeDir == "" {
			c.spec.HomeDir = cli.Dir
		}
		_, err := gpgkeys.LoadClient(ctx, c.spec)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v is not %v", name, err, c.is)
		}
		want := c.want
		if name != "no recipient" && name != "no gpg" {
			want = append(want, c.spec.HomeDir)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
	}
}

func fmtFpr(b []byte) string {
	const digits = "0123456789ABCDEF"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

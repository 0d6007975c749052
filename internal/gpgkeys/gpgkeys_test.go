package gpgkeys_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/gpgtest"
)

// TestIntegrationLoad reads keys from GnuPG homes made by gpg: a passphrase-protected RSA key
// and an ECC key without passphrase; validity from the trust database; every failure names
// the home, the key and the fix.
func TestIntegrationLoad(t *testing.T) {
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.RSA, UID: "server <srv@test>", Passphrase: "s3cret"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "client <cli@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "other <other@test>"})
	srv, cli, other := h[0], h[1], h[2]
	srv.Import(t, cli, other)
	srv.LSign(t, cli)
	ctx := context.Background()

	k, err := gpgkeys.Load(ctx, gpgkeys.Spec{HomeDir: srv.Dir, Exe: "gpg", DecryptID: srv.ID, Passphrase: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Secret) != 1 || len(k.Secret.DecryptionKeys()) != 1 || k.Secret.DecryptionKeys()[0].PrivateKey.Encrypted {
		t.Fatalf("secret keys: %d, decryption keys %d", len(k.Secret), len(k.Secret.DecryptionKeys()))
	}
	if len(k.Public) != 3 {
		t.Errorf("%d public keys, want 3", len(k.Public))
	}
	if !k.Valid(srv.Fpr) || !k.Valid(strings.ToLower(cli.Fpr)) || k.Valid(other.Fpr) {
		t.Errorf("validity %q", k.Validity)
	}
	if _, err := gpgkeys.Load(ctx, gpgkeys.Spec{HomeDir: cli.Dir, Exe: "gpg", NoPassphrase: true}); err != nil {
		t.Errorf("ECC key without passphrase, any ID: %v", err)
	}

	for name, c := range map[string]struct {
		spec gpgkeys.Spec
		want []string
	}{
		"wrong passphrase": {gpgkeys.Spec{HomeDir: srv.Dir, DecryptID: srv.ID, Passphrase: "nope"},
			[]string{srv.Dir, "GPG_DECRYPT_ID " + srv.ID, "GPG_DECRYPT_PW does not unlock"}},
		"no passphrase": {gpgkeys.Spec{HomeDir: srv.Dir, DecryptID: srv.ID, NoPassphrase: true},
			[]string{srv.Dir, srv.ID, "passphrase-protected", "set GPG_DECRYPT_PW"}},
		"unknown key": {gpgkeys.Spec{HomeDir: srv.Dir, DecryptID: "DEADBEEF"},
			[]string{srv.Dir, "GPG_DECRYPT_ID DEADBEEF", "no secret key", "--import"}},
		"public key only": {gpgkeys.Spec{HomeDir: srv.Dir, DecryptID: cli.ID},
			[]string{"no secret key"}},
		"no home": {gpgkeys.Spec{HomeDir: srv.Dir + "-missing", DecryptID: srv.ID},
			[]string{srv.Dir + "-missing", "point GPG_HOME_DIR at"}},
		"no gpg": {gpgkeys.Spec{HomeDir: srv.Dir, Exe: "/nonexistent/gpg"},
			[]string{"GPG_EXE /nonexistent/gpg", "install gnupg"}},
	} {
		_, err := gpgkeys.Load(ctx, c.spec)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", name, err, w)
			}
		}
	}
}

package decode

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgtest"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// TestIntegrationGnuPGDecode opens a GnuPG packet with the keys of a GnuPG home made by gpg.
func TestIntegrationGnuPGDecode(t *testing.T) {
	h := gpgtest.NewHomes(t, gpgtest.Spec{Kind: gpgtest.ECC, UID: "server <srv@test>"},
		gpgtest.Spec{Kind: gpgtest.ECC, UID: "client <cli@test>"})
	srv, cli := h[0], h[1]
	srv.Import(t, cli)
	srv.LSign(t, cli)
	cli.Import(t, srv)
	ck := cli.Keys(t)
	var to = gpgtest.Keyring(ck.Public).Public(srv.Fpr)
	m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: "10.0.0.2,tcp/22"}
	wire, err := gnupg.Encode(&m, spa.Keys{HMACKey: []byte("hmac-key")}, to, ck.Secret[0], rand.Reader, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(args, strings.NewReader(wire), &out, &errb)
		return code, out.String(), errb.String()
	}
	base := []string{"--gpg-home-dir", srv.Dir, "--gpg-decrypt-id", srv.ID, "--key-hmac", "hmac-key"}
	code, out, errs := run(append(base, "--json")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var f Fields
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatal(err)
	}
	if f.Message != "10.0.0.2,tcp/22" || f.GnuPG == nil || f.GnuPG.SigID != cli.ID || !f.GnuPG.Verified || !f.GnuPG.Valid {
		t.Fatalf("fields %+v %+v", f, f.GnuPG)
	}
	if code, out, _ = run(base...); code != exitOK || !strings.Contains(out, "Encryption Type: 2 (GPG)") || !strings.Contains(out, "GPG sig ID: "+cli.ID) {
		t.Errorf("dump (exit %d):\n%s", code, out)
	}
	if code, _, errs = run(append(base, "--gpg-remote-id", "DEADBEEF")...); code != exitInvalid || !strings.Contains(errs, "GnuPG signer is not in") {
		t.Errorf("wrong signer: exit %d: %s", code, errs)
	}
	if code, _, errs = run("--gpg-home-dir", srv.Dir, "--gpg-decrypt-id", "DEADBEEF"); code != exitUsage || !strings.Contains(errs, "no secret key") {
		t.Errorf("unknown key: exit %d: %s", code, errs)
	}
	if code, _, errs = run("--gpg-home-dir", srv.Dir, "--key-hmac", "other"); code != exitInvalid || !strings.Contains(errs, "HMAC mismatch") {
		t.Errorf("wrong HMAC key: exit %d: %s", code, errs)
	}
}

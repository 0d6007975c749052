package fwconf

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGPGStanza(t *testing.T) {
	conf := "SOURCE ANY\nGPG_DECRYPT_ID 53F3BA14\nGPG_DECRYPT_PW s3cret\nGPG_REMOTE_ID 48290c42, 0x5F32373D1234ABCD\n" +
		"GPG_FINGERPRINT_ID 4517 B33E 0B11 F039 FBCE  C503 5F32 373D 4829 0C42\nHMAC_KEY_BASE64 aG1hY3Rlc3Q=\n" +
		"SOURCE 10.0.0.1\nKEY abc\nGPG_ALLOW_NO_PW Y\nGPG_DISABLE_SIG Y\nGPG_HOME_DIR /srv/g\n" +
		"SOURCE 10.0.0.2\nKEY abc\nGPG_REMOTE_ID 48290C42\n"
	st, warns, err := ParseAccess("a.conf", []byte(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := GPG{Enabled: true, DecryptID: "53F3BA14", DecryptPW: "s3cret", RequireSig: true,
		RemoteIDs: []string{"48290C42", "1234ABCD"}, FingerprintIDs: []string{"4517B33E0B11F039FBCEC5035F32373D48290C42"}}
	if !reflect.DeepEqual(st[0].GPG, want) {
		t.Errorf("stanza 1: %+v\nwant      %+v", st[0].GPG, want)
	}
	if g := st[1].GPG; !g.Enabled || g.RequireSig || !g.AllowNoPW || g.HomeDir != "/srv/g" {
		t.Errorf("stanza 2: %+v", g)
	}
	if g := st[2].GPG; g.Enabled {
		t.Errorf("stanza 3 (no GnuPG keys) is GnuPG: %+v", g)
	}
	var text []string
	for _, w := range warns {
		text = append(text, w.String())
	}
	all := strings.Join(text, "\n")
	for _, w := range []string{"accepts unsigned GnuPG packets", "GPG_REMOTE_ID: has no effect: stanza #3 is not a GnuPG stanza"} {
		if !strings.Contains(all, w) {
			t.Errorf("no warning %q in:\n%s", w, all)
		}
	}

	// GPG_REQUIRE_SIG Y wins over GPG_DISABLE_SIG Y (fwknopd: "will check sigs").
	st, _, err = ParseAccess("b.conf", []byte("SOURCE ANY\nGPG_ALLOW_NO_PW Y\nGPG_DISABLE_SIG Y\nGPG_REQUIRE_SIG Y\n"), Options{})
	if err != nil || !st[0].GPG.RequireSig {
		t.Errorf("REQUIRE_SIG and DISABLE_SIG: %v %+v", err, st)
	}

	// Dump and parse back.
	st, _, _ = ParseAccess("a.conf", []byte(conf), Options{})
	var shown, hidden bytes.Buffer
	DumpAccess(&shown, st, DumpOptions{ShowKeys: true})
	DumpAccess(&hidden, st, DumpOptions{})
	if strings.Contains(hidden.String(), "s3cret") || !strings.Contains(hidden.String(), "# GPG_DECRYPT_PW (hidden)") {
		t.Errorf("hidden dump:\n%s", hidden.String())
	}
	st2, _, err := ParseAccess("d.conf", shown.Bytes(), Options{})
	if err != nil {
		t.Fatalf("dump does not parse back: %v\n%s", err, shown.String())
	}
	if !reflect.DeepEqual(st2[0].GPG, st[0].GPG) || !reflect.DeepEqual(st2[1].GPG, st[1].GPG) {
		t.Errorf("round trip: %+v / %+v", st2[0].GPG, st2[1].GPG)
	}
}

// TestGPGDefaultsFromServer: stanzas without GPG_HOME_DIR / GPG_EXE get fwknopd.conf's, or
// fwknopd's defaults.
func TestGPGDefaultsFromServer(t *testing.T) {
	dir := t.TempDir()
	access := filepath.Join(dir, "access.conf")
	if err := os.WriteFile(access, []byte("SOURCE ANY\nGPG_ALLOW_NO_PW Y\nGPG_REMOTE_ID 48290C42\nSOURCE ANY\nGPG_ALLOW_NO_PW Y\nGPG_REMOTE_ID 48290C42\nGPG_HOME_DIR /own\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ conf, home, exe string }{
		{"", "/root/.gnupg", "/usr/bin/gpg"},
		{"GPG_HOME_DIR /etc/fwknop/gnupg\nGPG_EXE /opt/gpg\n", "/etc/fwknop/gnupg", "/opt/gpg"},
	} {
		srv, _, err := ParseServer("f.conf", []byte(c.conf+"ACCESS_FILE "+access+"\n"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, _, err := srv.LoadAccess(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].GPG.HomeDir != c.home || st[0].GPG.Exe != c.exe || st[1].GPG.HomeDir != "/own" {
			t.Errorf("%q: %+v %+v", c.conf, st[0].GPG, st[1].GPG)
		}
	}
}

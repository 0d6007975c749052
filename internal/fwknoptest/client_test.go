package fwknoptest

import (
	"testing"

	"github.com/sesame-spa/sesame/spa"
)

// TestIntegrationClientMatrix runs the real client for every matrix case and checks that its
// -v dump reports what the case asked for, so the matrix means what it says before sesame is
// compared with it.
func TestIntegrationClientMatrix(t *testing.T) {
	for _, c := range Matrix() {
		res := Client(t, c.ClientArgs()...)
		d, want := res.Dump, c.Expected()
		got := d.SPAMessage()
		if c.User == "" {
			want.Username = got.Username // the login name; only checked to be non-empty
			if got.Username == "" {
				t.Errorf("%s: empty default username", c.Name)
			}
		}
		if got.Type != want.Type || got.Message != want.Message || got.NATAccess != want.NATAccess ||
			got.ClientTimeout != want.ClientTimeout || got.DigestType != want.DigestType ||
			got.Username != want.Username || got.ServerAuth != "" {
			t.Errorf("%s: client dump %+v, want %+v", c.Name, got, want)
		}
		if d.HMACType != int(c.HMAC) || d.EncryptionMode != int(c.Mode) || d.EncryptionType != 1 {
			t.Errorf("%s: client reports HMAC %d (%s), mode %d (%s), encryption %d", c.Name,
				d.HMACType, d.HMACName, d.EncryptionMode, d.ModeName, d.EncryptionType)
		}
		if (c.HMAC == 0) != (d.HMAC == "") {
			t.Errorf("%s: HMAC field %q with HMAC type %d", c.Name, d.HMAC, c.HMAC)
		}
		if len(d.Random) != 16 || d.Version != "3.0.0" || d.Digest == "" || d.EncodedData == "" {
			t.Errorf("%s: odd dump %+v", c.Name, d)
		}
		if c.Mode == spa.Legacy && d.ModeName != "legacy" {
			t.Errorf("%s: mode name %q", c.Name, d.ModeName)
		}
	}
}

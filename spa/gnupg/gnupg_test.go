package gnupg

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesame-spa/sesame/spa"
)

var testNow = time.Unix(1_800_000_000, 0)

func clock() time.Time { return testNow }

// keyCache holds keys generated once per test binary (RSA generation takes a while).
var keyCache sync.Map

// testKey generates (once) a key pair: "rsa" (RSA-2048, encryption subkey) or "ecc" (Ed25519
// primary, Curve25519 ECDH subkey).
func testKey(t testing.TB, name, kind string) *openpgp.Entity {
	t.Helper()
	if e, ok := keyCache.Load(name + "/" + kind); ok {
		return e.(*openpgp.Entity)
	}
	cfg := &packet.Config{Time: func() time.Time { return testNow.Add(-time.Hour) }}
	switch kind {
	case "rsa":
		cfg.Algorithm, cfg.RSABits = packet.PubKeyAlgoRSA, 2048
	case "ecc":
		cfg.Algorithm, cfg.Curve = packet.PubKeyAlgoEdDSA, packet.Curve25519
	default:
		t.Fatalf("key kind %q", kind)
	}
	e, err := openpgp.NewEntity(name, "", name+"@test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	keyCache.Store(name+"/"+kind, e)
	return e
}

// public returns the public part of e, as an exported keyring holds it.
func public(t testing.TB, e *openpgp.Entity) *openpgp.Entity {
	t.Helper()
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := openpgp.ReadEntity(packet.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fpr(e *openpgp.Entity) string { return strings.ToUpper(encodeHex(e.PrimaryKey.Fingerprint)) }
func encodeHex(b []byte) string {
	const h = "0123456789abcdef"
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = append(s, h[c>>4], h[c&15])
	}
	return string(s)
}
func shortID(e *openpgp.Entity) string { f := fpr(e); return f[len(f)-8:] }

func testMsg() *spa.Message {
	return &spa.Message{Username: "root", Timestamp: testNow.Unix(), Type: spa.AccessMsg, Message: "10.0.0.2,tcp/22"}
}

// setup is a server key, a listed client and the opener for a policy.
type setup struct {
	server, client *openpgp.Entity
	kr             Keyring
}

func newSetup(t testing.TB, kind string) setup {
	srv, cli := testKey(t, "server", kind), testKey(t, "client", kind)
	return setup{server: srv, client: cli,
		kr: Keyring{Decrypt: openpgp.EntityList{srv}, Signers: openpgp.EntityList{public(t, srv), public(t, cli)}}}
}

func (s setup) decoder(t testing.TB, hmac spa.Keys, p Policy) *spa.GnuPGDecoder {
	t.Helper()
	o, err := NewOpener(s.kr, p, clock)
	if err != nil {
		t.Fatal(err)
	}
	d, err := spa.NewGnuPGDecoder(hmac, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func encode(t testing.TB, to, signer *openpgp.Entity, hmac spa.Keys) string {
	t.Helper()
	w, err := Encode(testMsg(), hmac, public(t, to), signer, rand.Reader, clock)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestRoundTrip(t *testing.T) {
	hmacKeys := spa.Keys{HMACKey: []byte("hmac-key-0123456789"), HMACType: spa.SHA256}
	for _, kind := range []string{"rsa", "ecc"} {
		for _, withHMAC := range []bool{false, true} {
			t.Run(kind+map[bool]string{true: "/hmac", false: "/nohmac"}[withHMAC], func(t *testing.T) {
				s := newSetup(t, kind)
				var k spa.Keys
				if withHMAC {
					k = hmacKeys
				}
				wire := encode(t, s.server, s.client, k)
				if len(wire) < 400 || strings.HasPrefix(wire, "hQ") {
					t.Fatalf("wire of %d chars starting %q", len(wire), wire[:4])
				}
				for _, p := range []Policy{
					{RequireSig: true, RemoteIDs: []string{shortID(s.client)}},
					{RequireSig: true, Fingerprints: []string{fpr(s.client)}},
					{RequireSig: true, Fingerprints: []string{strings.ToLower(fpr(s.client))}, RemoteIDs: []string{"0x" + shortID(s.client)}},
				} {
					m, err := s.decoder(t, k, p).Decode([]byte(wire))
					if err != nil {
						t.Fatalf("policy %+v: %v", p, err)
					}
					if m.Message != "10.0.0.2,tcp/22" || m.Username != "root" || m.Timestamp != testNow.Unix() {
						t.Fatalf("decoded %+v", m)
					}
				}
				// The HMAC covers "hQ" + the wire text; the server's check after CheckWire
				// (VerifyCheckedHMAC) agrees with the full one.
				d := s.decoder(t, k, Policy{})
				ct, err := d.VerifyHMAC([]byte(wire))
				ct2, err2 := d.VerifyCheckedHMAC([]byte(wire))
				if err != nil || err2 != nil || string(ct) != string(ct2) {
					t.Fatalf("VerifyHMAC %v, VerifyCheckedHMAC %v, same text %v", err, err2, string(ct) == string(ct2))
				}
				if _, err := d.VerifyCheckedHMAC([]byte(wire[:399])); !errors.Is(err, spa.ErrNotGnuPG) {
					t.Fatalf("399 characters: %v", err)
				}
				if withHMAC {
					bad := []byte(wire)
					bad[len(bad)-1] = map[bool]byte{true: 'B', false: 'A'}[bad[len(bad)-1] == 'A']
					if _, err := d.Decode(bad); !errors.Is(err, spa.ErrHMACMismatch) {
						t.Fatalf("tampered HMAC: %v", err)
					}
					if _, err := d.VerifyCheckedHMAC(bad); !errors.Is(err, spa.ErrHMACMismatch) {
						t.Fatalf("tampered HMAC, checked wire: %v", err)
					}
				}
			})
		}
	}
}

func TestSealerHeader(t *testing.T) {
	for _, kind := range []string{"rsa", "ecc"} {
		s := newSetup(t, kind)
		for _, signer := range []*openpgp.Entity{s.client, nil} {
			sl, err := NewSealer(public(t, s.server), signer, rand.Reader, clock)
			if err != nil {
				t.Fatal(err)
			}
			msg, err := sl.Seal([]byte("x"))
			if err != nil {
				t.Fatal(err)
			}
			text := base64.RawStdEncoding.EncodeToString(msg)
			if !strings.HasPrefix(text, "hQ") || len(text) < 400 {
				t.Errorf("%s signed=%v: text %q... of %d chars", kind, signer != nil, text[:4], len(text))
			}
			// gpg-style reading of the rewritten header still works.
			md, err := openpgp.ReadMessage(bytes.NewReader(msg), openpgp.EntityList{s.server}, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if md.LiteralData == nil {
				t.Fatal("no literal data")
			}
		}
	}
}

func TestPolicy(t *testing.T) {
	s := newSetup(t, "ecc")
	stranger := testKey(t, "stranger", "ecc")
	signed := encode(t, s.server, s.client, spa.Keys{})
	unsigned := encode(t, s.server, nil, spa.Keys{})
	byStranger := encode(t, s.server, stranger, spa.Keys{})
	listed := Policy{RequireSig: true, RemoteIDs: []string{shortID(s.client)}}
	invalid := s
	invalid.kr.Valid = func(p string) bool { return p != fpr(s.client) }
	withStranger := s
	withStranger.kr.Signers = append(openpgp.EntityList{public(t, stranger)}, s.kr.Signers...)

	cases := []struct {
		name string
		s    setup
		p    Policy
		wire string
		want error
	}{
		{"listed", s, listed, signed, nil},
		{"unsigned", s, listed, unsigned, spa.ErrNotSigned},
		{"unsigned, ignore errors", s, Policy{RequireSig: true, IgnoreVerifyError: true, RemoteIDs: listed.RemoteIDs}, unsigned, spa.ErrNotSigned},
		{"unsigned, signatures off", s, Policy{}, unsigned, nil},
		{"unknown signer", s, listed, byStranger, spa.ErrBadSignature},
		{"unknown signer, ignore errors", s, Policy{RequireSig: true, IgnoreVerifyError: true, RemoteIDs: []string{shortID(stranger)}}, byStranger, spa.ErrBadSignature},
		{"known signer, not listed", withStranger, listed, byStranger, spa.ErrSignerNotAllowed},
		{"fingerprint listed, ID not", withStranger, Policy{RequireSig: true, Fingerprints: []string{fpr(stranger)}, RemoteIDs: listed.RemoteIDs}, byStranger, spa.ErrSignerNotAllowed},
		{"not valid", invalid, listed, signed, spa.ErrSignerNotValid},
		{"not valid, ignore errors", invalid, Policy{RequireSig: true, IgnoreVerifyError: true, RemoteIDs: listed.RemoteIDs}, signed, nil},
		{"no lists: any valid signer", s, Policy{RequireSig: true}, signed, nil},
	}
	for _, c := range cases {
		_, err := c.s.decoder(t, spa.Keys{}, c.p).Decode([]byte(c.wire))
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want != nil && errors.Is(err, spa.ErrDecrypt) {
			t.Errorf("%s: a signature failure must not be a decryption failure: %v", c.name, err)
		}
	}
}

func TestRefusals(t *testing.T) {
	s := newSetup(t, "rsa")
	other := testKey(t, "other", "ecc")
	d := s.decoder(t, spa.Keys{}, Policy{RequireSig: true, RemoteIDs: []string{shortID(s.client)}})
	wire := encode(t, s.server, s.client, spa.Keys{})

	tampered := []byte(wire)
	tampered[len(tampered)/2] ^= 0x01
	if tampered[len(tampered)/2] == '=' || !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", rune(tampered[len(tampered)/2])) {
		tampered[len(tampered)/2] = 'A'
	}
	cases := map[string]struct {
		wire []byte
		want error
	}{
		"wrong recipient": {[]byte(encode(t, other, s.client, spa.Keys{})), spa.ErrDecrypt},
		"tampered":        {tampered, spa.ErrDecrypt},
		"truncated":       {[]byte(wire[:len(wire)-40]), spa.ErrDecrypt},
		"too short":       {[]byte(wire[:300]), spa.ErrNotGnuPG},
		"prefix re-added": {[]byte("hQ" + wire), spa.ErrPrefixPresent},
	}
	for name, c := range cases {
		if _, err := d.Decode(c.wire); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

// TestOneDecryptionPerKey: a message naming the server's key in several session key packets
// is opened with the first one only.
func TestOneDecryptionPerKey(t *testing.T) {
	s := newSetup(t, "ecc")
	sl, err := NewSealer(public(t, s.server), s.client, rand.Reader, clock)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := sl.Seal([]byte("1234567890123456:cm9vdA:1800000000:3.0.0:1:MTAuMC4wLjIsdGNwLzIy:x"))
	if err != nil {
		t.Fatal(err)
	}
	_, hdr, n, err := firstHeader(msg)
	if err != nil {
		t.Fatal(err)
	}
	pkesk := msg[:hdr+n]
	broken := append([]byte(nil), pkesk...)
	broken[len(broken)-1] ^= 0xff // the same key ID, a session key that does not decrypt
	o, err := NewOpener(s.kr, Policy{}, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Open(append(append(append([]byte(nil), pkesk...), broken...), msg[hdr+n:]...)); err != nil {
		t.Errorf("good session key first: %v", err)
	}
	if _, err := o.Open(append(append(append([]byte(nil), broken...), pkesk...), msg[hdr+n:]...)); err == nil {
		t.Error("a second session key packet for the same key was tried")
	}
}

func TestOldFormatFirstHeader(t *testing.T) {
	cases := []struct {
		in   []byte
		want []byte
		ok   bool
	}{
		{[]byte{0xc1, 0x03, 1, 2, 3, 9}, []byte{0x85, 0, 3, 1, 2, 3, 9}, true},  // new format, 1-byte length
		{append([]byte{0xc1, 0xc0, 0x10}, make([]byte, 0x150)...), nil, true},   // new format, 2-byte length (0x150)
		{[]byte{0x84, 0x02, 7, 8}, []byte{0x85, 0, 2, 7, 8}, true},              // old format, 1-byte length (gpg ECDH)
		{[]byte{0x85, 0x00, 0x02, 7, 8}, []byte{0x85, 0, 2, 7, 8}, true},        // already right
		{[]byte{0x86, 0, 0, 0, 1, 5}, []byte{0x85, 0, 1, 5}, true},              // old format, 4-byte length
		{[]byte{0xd2, 0x01, 0}, nil, false},                                     // SEIPD first
		{[]byte{0x87, 1}, nil, false},                                           // indeterminate length
		{[]byte{0xc1, 0xe1, 0}, nil, false},                                     // partial length
		{[]byte{0x05, 0x01}, nil, false},                                        // not a header
		{[]byte{0x84, 0x05, 1}, nil, false},                                     // body shorter than its length
		{append([]byte{0x85, 0x10, 0x00}, make([]byte, 0x1000)...), nil, false}, // 4096 bytes: no 0x0? length byte
	}
	for i, c := range cases {
		got, err := OldFormatFirstHeader(c.in)
		if (err == nil) != c.ok {
			t.Errorf("case %d: err %v", i, err)
			continue
		}
		if c.want != nil && !bytes.Equal(got, c.want) {
			t.Errorf("case %d: % x, want % x", i, got, c.want)
		}
		if err == nil && (got[0] != 0x85 || got[1] >= 0x10) {
			t.Errorf("case %d: header % x", i, got[:3])
		}
	}
}

func TestNormalize(t *testing.T) {
	if n, err := NormalizeKeyID("0x1234abcd"); err != nil || n != "1234ABCD" {
		t.Errorf("%q %v", n, err)
	}
	if n, err := NormalizeKeyID("5F32373D48290C42"); err != nil || n != "48290C42" {
		t.Errorf("%q %v", n, err)
	}
	for _, bad := range []string{"", "1234", "xyz12345", "1234ABCDE"} {
		if _, err := NormalizeKeyID(bad); err == nil {
			t.Errorf("NormalizeKeyID(%q) accepted", bad)
		}
	}
	if n, err := NormalizeFingerprint("4517 B33E 0B11 F039 FBCE  C503 5F32 373D 4829 0C42"); err != nil || n != "4517B33E0B11F039FBCEC5035F32373D48290C42" {
		t.Errorf("%q %v", n, err)
	}
	if _, err := NormalizeFingerprint("48290C42"); err == nil {
		t.Error("short fingerprint accepted")
	}
}

func TestNewOpenerErrors(t *testing.T) {
	s := newSetup(t, "ecc")
	if _, err := NewOpener(Keyring{Decrypt: openpgp.EntityList{public(t, s.server)}}, Policy{}, clock); err == nil {
		t.Error("public key accepted as decryption key")
	}
	if _, err := NewOpener(s.kr, Policy{RemoteIDs: []string{"nothex!!"}}, clock); err == nil {
		t.Error("bad GPG_REMOTE_ID accepted")
	}
	if _, err := NewOpener(s.kr, Policy{}, nil); err == nil {
		t.Error("nil clock accepted")
	}
	if _, err := NewSealer(public(t, s.server), public(t, s.client), rand.Reader, clock); err == nil {
		t.Error("signer without secret key accepted")
	}
}

// BenchmarkDecode is the cost of opening one signed GnuPG packet (decryption, signature,
// plaintext checks) with RSA-2048 and Ed25519/Curve25519 keys.
func BenchmarkDecode(b *testing.B) {
	for _, kind := range []string{"rsa", "ecc"} {
		b.Run(kind, func(b *testing.B) {
			s := newSetup(b, kind)
			d := s.decoder(b, spa.Keys{}, Policy{RequireSig: true, RemoteIDs: []string{shortID(s.client)}})
			wire := []byte(encode(b, s.server, s.client, spa.Keys{}))
			for b.Loop() {
				if _, err := d.Decode(wire); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package spa

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// sentinels lists every sentinel error; each failure must wrap exactly one of them.
var sentinels = []error{
	ErrTooShort, ErrTooLong, ErrPrefixPresent, ErrNotBase64, ErrGnuPG, ErrHMACMissing,
	ErrHMACMismatch, ErrDecrypt, ErrDigestType, ErrDigestMismatch, ErrUsernameTooBig, ErrBadKey,
	ErrUnsupported, ErrHMACType, ErrMode, ErrCipherLen, ErrPlaintext, ErrFieldCount, ErrRandom,
	ErrUsername, ErrTimestamp, ErrVersion, ErrMsgType, ErrMessage, ErrNATAccess, ErrServerAuth,
	ErrClientTimeout, ErrAccess, ErrNotSigned, ErrBadSignature, ErrSignerNotValid, ErrSignerNotAllowed,
	ErrNotGnuPG,
}

// checkSentinel fails unless err wraps want and no other sentinel.
func checkSentinel(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("error %q wraps %d sentinels, want 1", err, n)
	}
}

// fixedRand is a deterministic stand-in for crypto/rand in tests.
type fixedRand struct{ b byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		r.b = r.b*31 + 7
		p[i] = r.b
	}
	return len(p), nil
}

var testKeys = Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest"), HMACType: SHA256, Mode: CBC}

func testMessage() *Message {
	return &Message{Username: "root", Timestamp: 1795432440, Type: AccessMsg, Message: "10.99.0.2,tcp/22"}
}

func mustEncode(t testing.TB, m *Message, k Keys) string {
	t.Helper()
	w, err := Encode(m, k, &fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestDecodeWireChecks: each wire-level sanity check produces its sentinel.
func TestDecodeWireChecks(t *testing.T) {
	good := mustEncode(t, testMessage(), testKeys)
	noHMAC := testKeys
	noHMAC.HMACKey = nil
	goodNoHMAC := mustEncode(t, testMessage(), noHMAC)
	if _, err := Decode([]byte(good), testKeys); err != nil {
		t.Fatalf("valid packet: %v", err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	with := func(f func(*Keys)) Keys { k := testKeys; f(&k); return k }
	long := strings.Repeat("A", 420)
	tests := []struct {
		name string
		wire string
		keys Keys
		want error
	}{
		{"tampered ciphertext", flip(good, 50), testKeys, ErrHMACMismatch},
		{"tampered HMAC", flip(good, len(good)-5), testKeys, ErrHMACMismatch},
		{"truncated by one", good[:len(good)-1], testKeys, ErrHMACMismatch},
		{"one byte appended", good + "A", testKeys, ErrHMACMismatch},
		{"prefix re-added", b64Prefix + good, testKeys, ErrPrefixPresent},
		{"gpg prefix on 400+", "hQ" + long, testKeys, ErrPrefixPresent},
		{"non-base64 char", good[:60] + "-" + good[61:], testKeys, ErrNotBase64},
		{"trailing newline", good + "\n", testKeys, ErrNotBase64},
		{"too short", good[:139], testKeys, ErrTooShort},
		{"empty", "", testKeys, ErrTooShort},
		{"too long", strings.Repeat("A", 1501), testKeys, ErrTooLong},
		{"400 chars is GnuPG", strings.Repeat("A", 400), testKeys, ErrGnuPG},
		{"wrong HMAC key", good, with(func(k *Keys) { k.HMACKey = []byte("other") }), ErrHMACMismatch},
		{"wrong HMAC type", good, with(func(k *Keys) { k.HMACType = SHA512 }), ErrHMACMismatch},
		{"wrong HMAC type same length", good, with(func(k *Keys) { k.HMACType = SHA3_256 }), ErrHMACMismatch},
		{"HMAC expected but absent", goodNoHMAC, testKeys, ErrHMACMismatch},
		{"wrong key", good, with(func(k *Keys) { k.Key = []byte("wrongkey") }), ErrDecrypt},
		{"wrong mode", good, with(func(k *Keys) { k.Mode = CFB }), ErrDecrypt},
		{"legacy stanza for CBC packet", good, with(func(k *Keys) { k.Mode = Legacy }), ErrDecrypt},
		{"no key", good, with(func(k *Keys) { k.Key = nil }), ErrBadKey},
		{"key too long", good, with(func(k *Keys) { k.Key = bytes.Repeat([]byte("k"), 33) }), ErrBadKey},
		{"HMAC key too long", good, with(func(k *Keys) { k.HMACKey = bytes.Repeat([]byte("k"), 137) }), ErrBadKey},
		{"bad HMAC type", good, with(func(k *Keys) { k.HMACType = 9 }), ErrHMACType},
		{"PCBC", good, with(func(k *Keys) { k.Mode = PCBC }), ErrUnsupported},
		{"asymmetric", good, with(func(k *Keys) { k.Mode = Asymmetric }), ErrUnsupported},
		{"bad mode", good, with(func(k *Keys) { k.Mode = 42 }), ErrMode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.wire), tt.keys)
			checkSentinel(t, err, tt.want)
			d, err := NewDecoder(tt.keys)
			if err != nil {
				checkSentinel(t, err, tt.want) // key problems surface at NewDecoder
				return
			}
			_, err = d.Decode([]byte(tt.wire))
			checkSentinel(t, err, tt.want)
		})
	}
}

// TestDecodeCiphertextChecks covers the post-HMAC checks through the second half directly.
func TestDecodeCiphertextChecks(t *testing.T) {
	k := testKeys
	k.HMACKey = nil
	good := mustEncode(t, testMessage(), k)
	if _, err := DecodeCiphertext([]byte(good), k); err != nil {
		t.Fatal(err)
	}
	// With the prefix still present it is not re-added (libfko behaviour).
	if _, err := DecodeCiphertext([]byte(b64Prefix+good), k); err != nil {
		t.Errorf("prefixed ciphertext: %v", err)
	}
	tests := []struct {
		name, ct string
		want     error
	}{
		{"not a block multiple", good[:len(good)-4], ErrCipherLen},
		{"not base64", good[:40] + "*" + good[41:], ErrNotBase64},
		{"too short", good[:20], ErrTooShort},
		{"restored text of 400+", strings.Repeat("A", 392), ErrGnuPG},
		{"only the header", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ErrDecrypt}, // 44 chars = 33 bytes? see below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeCiphertext([]byte(tt.ct), k)
			if tt.name == "only the header" {
				// 10+32 characters decode to 31 bytes: not a block multiple.
				checkSentinel(t, err, ErrCipherLen)
				return
			}
			checkSentinel(t, err, tt.want)
		})
	}
	// A packet whose plaintext is all padding: header + one block of 16 x 0x10.
	salt := [saltLen]byte{1, 2, 3, 4, 5, 6, 7, 8}
	raw, err := encryptRaw(nil, k.Key, CBC, &salt)
	if err != nil {
		t.Fatal(err)
	}
	ct := b64.EncodeToString(raw)[len(b64Prefix):]
	_, err = DecodeCiphertext([]byte(ct), k)
	checkSentinel(t, err, ErrDecrypt)
	// Decrypts to 20 printable bytes that start like a packet: too short a plaintext.
	raw, _ = encryptRaw([]byte("1234567890123456:ab"), k.Key, CBC, &salt)
	_, err = DecodeCiphertext([]byte(b64.EncodeToString(raw)[len(b64Prefix):]), k)
	checkSentinel(t, err, ErrPlaintext)
}

// TestVerifyHMAC covers the first half on its own.
func TestVerifyHMAC(t *testing.T) {
	good := mustEncode(t, testMessage(), testKeys)
	ct, err := VerifyHMAC([]byte(good), testKeys)
	if err != nil {
		t.Fatal(err)
	}
	if string(ct) != good[:len(good)-43] {
		t.Errorf("ciphertext part %q", ct)
	}
	if _, err := DecodeCiphertext(ct, testKeys); err != nil {
		t.Errorf("second half: %v", err)
	}
	noHMAC := testKeys
	noHMAC.HMACKey = nil
	if ct, err := VerifyHMAC([]byte(good), noHMAC); err != nil || string(ct) != good {
		t.Errorf("no HMAC key: %q, %v", ct, err)
	}
	_, err = VerifyHMAC([]byte(good[:78]), testKeys)
	checkSentinel(t, err, ErrHMACMissing)
	_, err = VerifyHMAC([]byte(good[:30]), testKeys)
	checkSentinel(t, err, ErrTooShort)
	_, err = VerifyHMAC([]byte(strings.Repeat("A", 1500)), testKeys)
	checkSentinel(t, err, ErrTooLong)
	_, err = VerifyHMAC([]byte("!"+good[1:]), testKeys)
	checkSentinel(t, err, ErrNotBase64)
	if err := func() error { _, err := VerifyHMAC([]byte(good[:len(good)-1]+"x"), testKeys); return err }(); err != ErrHMACMismatch {
		t.Errorf("mismatch must be the bare sentinel, got %v", err)
	}
}

// TestCheckWire covers the pre-decryption checks, including the boundaries.
func TestCheckWire(t *testing.T) {
	tests := []struct {
		wire string
		want error
	}{
		{strings.Repeat("A", 139), ErrTooShort},
		{strings.Repeat("A", 140), nil},
		{strings.Repeat("A", 1500), nil},
		{strings.Repeat("A", 1501), ErrTooLong},
		{b64Prefix + strings.Repeat("A", 140), ErrPrefixPresent},
		{"hQ" + strings.Repeat("A", 398), nil}, // 400: fwknopd drops hQ only above 400
		{"hQ" + strings.Repeat("A", 399), ErrPrefixPresent},
		{strings.Repeat("A", 139) + "=", nil},
		{strings.Repeat("A", 139) + "\n", ErrNotBase64},
		{strings.Repeat("A", 139) + "_", ErrNotBase64},
		{strings.Repeat("A", 139) + "\x00", ErrNotBase64},
	}
	for _, tt := range tests {
		err := CheckWire([]byte(tt.wire))
		if tt.want == nil {
			if err != nil {
				t.Errorf("CheckWire(%d chars %q...): %v", len(tt.wire), tt.wire[:4], err)
			}
			continue
		}
		checkSentinel(t, err, tt.want)
	}
}

// plain builds decrypted SPA data from encoded fields, with a correct SHA-256 digest.
func plain(enc string) []byte {
	return []byte(enc + ":" + SHA256.digestB64([]byte(enc)))
}

// TestDecodePlaintextChecks: every plaintext check produces its sentinel.
func TestDecodePlaintextChecks(t *testing.T) {
	const (
		rnd  = "1007490908109398"
		user = "cm9vdA" // root
		msg  = "MTAuOTkuMC4yLHRjcC8yMg"
		nat  = "MTAuOTkuMC41LDIy" // 10.99.0.5,22
	)
	b := func(s string) string { return b64.EncodeToString([]byte(s)) }
	head := rnd + ":" + user + ":1795432440:3.0.0:"
	good := plain(head + "1:" + msg)
	if _, err := DecodePlaintext(good); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pt   []byte
		want error
	}{
		{"too short", []byte("1234567890123456:a:b:c:d:e"), ErrPlaintext},
		{"too long", plain(head + "1:" + msg + ":" + strings.Repeat("A", 1500)), ErrPlaintext},
		{"non-printable", append(append([]byte{}, good[:40]...), append([]byte{'\t'}, good[41:]...)...), ErrPlaintext},
		{"five separators", plain(rnd + ":" + user + ":1795432440:3.0.0:1" + msg), ErrFieldCount},
		{"digest length", []byte(head + "1:" + msg + ":" + strings.Repeat("A", 42)), ErrDigestType},
		{"digest too long", []byte(head + "1:" + msg + ":" + strings.Repeat("A", 87)), ErrDigestType},
		{"digest mismatch", []byte(head + "1:" + msg + ":" + strings.Repeat("A", 43)), ErrDigestMismatch},
		{"random 15 digits", plain("100749090810939:" + user + ":1795432440:3.0.0:1:" + msg), ErrRandom},
		{"random 17 digits", plain("10074909081093981:" + user + ":1795432440:3.0.0:1:" + msg), ErrRandom},
		{"random not digits", plain("10074909081093a8:" + user + ":1795432440:3.0.0:1:" + msg), ErrRandom},
		{"empty username", plain(rnd + "::1795432440:3.0.0:1:" + msg), ErrUsername},
		{"username b64 65", plain(rnd + ":" + strings.Repeat("QUFB", 16) + "Q:1795432440:3.0.0:1:" + msg), ErrUsernameTooBig},
		{"username 48 ok but bad char", plain(rnd + ":" + b("bad:user") + ":1795432440:3.0.0:1:" + msg), ErrUsername},
		{"username not base64", plain(rnd + ":cm9v*A:1795432440:3.0.0:1:" + msg), ErrUsername},
		{"timestamp letters", plain(rnd + ":" + user + ":17954a2440:3.0.0:1:" + msg), ErrTimestamp},
		{"timestamp negative", plain(rnd + ":" + user + ":-1:3.0.0:1:" + msg), ErrTimestamp},
		{"timestamp 13 digits", plain(rnd + ":" + user + ":1795432440000:3.0.0:1:" + msg), ErrTimestamp},
		{"empty timestamp", plain(rnd + ":" + user + "::3.0.0:1:" + msg), ErrTimestamp},
		{"version 9 chars", plain(rnd + ":" + user + ":1795432440:3.0.0.123:1:" + msg), ErrVersion},
		{"empty version", plain(rnd + ":" + user + ":1795432440::1:" + msg), ErrVersion},
		{"type 7", plain(head + "7:" + msg), ErrMsgType},
		{"type 3 chars", plain(head + "001:" + msg), ErrMsgType},
		{"type letter", plain(head + "a:" + msg), ErrMsgType},
		{"type 1 too many fields", plain(head + "1:" + msg + ":" + b("x") + ":" + b("y")), ErrFieldCount},
		{"type 2 too many fields", plain(head + "2:" + msg + ":" + nat + ":x:y"), ErrFieldCount},
		{"type 4 too many fields", plain(head + "4:" + msg + ":" + nat + ":x:60:y"), ErrFieldCount},
		{"bad access message", plain(head + "1:" + b("10.99.0.2,icmp/8")), ErrMessage},
		{"access port 0", plain(head + "1:" + b("10.99.0.2,tcp/0")), ErrMessage},
		{"access bad ip", plain(head + "1:" + b("10.99.0.256,tcp/22")), ErrMessage},
		{"message not base64", plain(head + "1:MTAu*TkuMC4yLHRjcC8yMg"), ErrMessage},
		{"message b64 257", plain(head + "1:" + strings.Repeat("A", 257)), ErrMessage},
		{"empty message", plain(head + "1::" + b("x")), ErrMessage},
		{"command without text", plain(head + "0:" + b("10.99.0.2,")), ErrMessage},
		{"NAT missing", plain(head + "2:" + msg), ErrNATAccess},
		{"NAT two commas", plain(head + "2:" + msg + ":" + b("10.99.0.5,22,23")), ErrNATAccess},
		{"NAT port 65536", plain(head + "2:" + msg + ":" + b("10.99.0.5,65536")), ErrNATAccess},
		{"NAT bad host char", plain(head + "2:" + msg + ":" + b("10.99/0.5,22")), ErrNATAccess},
		{"server auth not base64", plain(head + "1:" + msg + ":pa*s"), ErrServerAuth},
		{"server auth then bad timeout", plain(head + "3:" + msg + ":" + b("pw") + ":6x"), ErrClientTimeout},
		{"timeout missing", plain(head + "3:" + msg), ErrClientTimeout},
		{"timeout 65537", plain(head + "3:" + msg + ":65537"), ErrClientTimeout},
		{"timeout empty after auth", plain(head + "3:" + msg + ":" + b("pw") + ":"), ErrClientTimeout},
		{"server auth b64 in timeout slot", plain(head + "3:" + msg + ":" + b("pw")), ErrClientTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePlaintext(tt.pt)
			checkSentinel(t, err, tt.want)
		})
	}
}

// TestDecodePlaintextAccepts: inputs libfko accepts that a strict parser might not.
func TestDecodePlaintextAccepts(t *testing.T) {
	const head = "1007490908109398:cm9vdA:1795432440:3.0.0:"
	b := func(s string) string { return b64.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		enc  string
		want Message
	}{
		{"padded base64 fields", "1007490908109398:cm9vdA==:1795432440:3.0.0:1:" + b64.EncodeToString([]byte("10.99.0.2,tcp/22")) + "==",
			Message{Username: "root", Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
		{"any version text", "1007490908109398:cm9vdA:1795432440:9.9.9:1:" + b("10.99.0.2,tcp/22"),
			Message{Username: "root", Version: "9.9.9", Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
		{"server auth on type 1", head + "1:" + b("10.99.0.2,tcp/22") + ":" + b("passwd"),
			Message{Username: "root", Type: AccessMsg, Message: "10.99.0.2,tcp/22", ServerAuth: "passwd"}},
		{"server auth and timeout", head + "6:" + b("10.99.0.2,tcp/22") + ":" + b("10.99.0.1,22") + ":" + b("pw") + ":60",
			Message{Username: "root", Type: ClientTimeoutLocalNATAccessMsg, Message: "10.99.0.2,tcp/22", NATAccess: "10.99.0.1,22", ServerAuth: "pw", ClientTimeout: 60}},
		{"timeout 65536", head + "3:" + b("10.99.0.2,tcp/22") + ":65536",
			Message{Username: "root", Type: ClientTimeoutAccessMsg, Message: "10.99.0.2,tcp/22", ClientTimeout: 65536}},
		{"timestamp past 2038", "1007490908109398:cm9vdA:999999999999:3.0.0:1:" + b("10.99.0.2,tcp/22"),
			Message{Username: "root", Timestamp: 999999999999, Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
		{"48-byte username", "1007490908109398:" + b(strings.Repeat("u", 48)) + ":1795432440:3.0.0:1:" + b("10.99.0.2,tcp/22"),
			Message{Username: strings.Repeat("u", 48), Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
		{"ipv6 allow ip", head + "1:" + b("fd99::2,tcp/22,udp/53"),
			Message{Username: "root", Type: AccessMsg, Message: "fd99::2,tcp/22,udp/53"}},
		{"empty trailing field", head + "1:" + b("10.99.0.2,tcp/22") + ":",
			Message{Username: "root", Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
		{"NUL cuts decoded text", head + "1:" + b("10.99.0.2,tcp/22\x00junk"),
			Message{Username: "root", Type: AccessMsg, Message: "10.99.0.2,tcp/22"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodePlaintext(plain(tt.enc))
			if err != nil {
				t.Fatal(err)
			}
			w := tt.want
			if w.Version == "" {
				w.Version = "3.0.0"
			}
			if w.Timestamp == 0 {
				w.Timestamp = 1795432440
			}
			if m.Username != w.Username || m.Type != w.Type || m.Message != w.Message || m.NATAccess != w.NATAccess ||
				m.ServerAuth != w.ServerAuth || m.ClientTimeout != w.ClientTimeout || m.Version != w.Version || m.Timestamp != w.Timestamp {
				t.Errorf("got %+v\nwant %+v", *m, w)
			}
		})
	}
}

// TestDigestTypes: every digest type is recognised from its length, SHA-2 before SHA-3.
func TestDigestTypes(t *testing.T) {
	enc := "1007490908109398:cm9vdA:1795432440:3.0.0:1:MTAuOTkuMC4yLHRjcC8yMg"
	for d := MD5; d <= SHA3_512; d++ {
		m, err := DecodePlaintext([]byte(enc + ":" + d.digestB64([]byte(enc))))
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if m.DigestType != d {
			t.Errorf("digest %v decoded as %v", d, m.DigestType)
		}
		if len(m.Digest) != d.b64Len() {
			t.Errorf("%v digest of %d chars", d, len(m.Digest))
		}
	}
}

package md5grant

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/sesame-spa/sesame/spa"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The expected keys were computed with an independent Python implementation of RFC 5869
// (hmac + hashlib) from the package doc's specification.
func TestDeriveVectors(t *testing.T) {
	seq := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return hex.EncodeToString(b)
	}
	for _, tc := range []struct {
		name      string
		key, hmac string // hex
		mode      spa.Mode
		hmacType  spa.DigestType
		want      string
	}{
		{"fwknoptest/hmactest", "66776b6e6f7074657374", "686d616374657374", spa.CBC, spa.SHA256,
			"663189c5e8b191a94b67a54df8ce026c63bb6d390a2488e80473a8430db69f3c"},
		{"digest type and mode do not matter", "66776b6e6f7074657374", "686d616374657374", spa.CTR, spa.SHA512,
			"663189c5e8b191a94b67a54df8ce026c63bb6d390a2488e80473a8430db69f3c"},
		{"no HMAC key", "66776b6e6f7074657374", "", spa.CBC, 0,
			"37121f5dfdce791d7f51494999898fd63f6ba8a59eb56143155445e9d234586a"},
		{"lengths separate the keys", "66776b6e6f70746573", "74686d616374657374", spa.CBC, spa.SHA256,
			"5ff26463dbff9f4864e20bc5bec8147c31912666309844a1b4da3843ea6ad06f"},
		{"longest keys", seq(32), seq(128), spa.CBC, spa.SHA512,
			"cffaeb658ef18059906165569b6b5007042572fce0daa35d7eaebb12f326378c"},
		{"one byte each", "61", "62", spa.CBC, spa.SHA256,
			"bded63a429211f9f170d9a6cac5a44324009e3dafcde9e9d53ab1059163b7572"},
		{"legacy uses 16 bytes of the key", "30313233343536373839616263646566" + "58595a", "", spa.Legacy, 0,
			"8190720027212f6699752ee92a0a44536e9051b608744ef7865eab1274474c5c"},
	} {
		keys := spa.Keys{Key: unhex(t, tc.key), Mode: tc.mode, HMACType: tc.hmacType}
		if tc.hmac != "" {
			keys.HMACKey = unhex(t, tc.hmac)
		}
		k, err := Derive(keys)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := hex.EncodeToString(k.Bytes()); got != tc.want {
			t.Errorf("%s: key %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestDeriveNoKey(t *testing.T) {
	for _, keys := range []spa.Keys{{}, {HMACKey: []byte("hmac")}, {Key: []byte{}, Mode: spa.Legacy}} {
		if _, err := Derive(keys); !errors.Is(err, ErrNoKey) {
			t.Errorf("Derive(%+v) = %v, want ErrNoKey", keys, err)
		}
	}
}

// FuzzDerive: any non-empty key derives a 32-byte key, deterministically, and swapping the
// key and the HMAC key (or moving bytes between them) changes it.
func FuzzDerive(f *testing.F) {
	f.Add([]byte("fwknoptest"), []byte("hmactest"), false)
	f.Add([]byte("a"), []byte(""), true)
	f.Add(bytes.Repeat([]byte{0}, 40), bytes.Repeat([]byte{0}, 129), true)
	f.Fuzz(func(t *testing.T, key, hmacKey []byte, legacy bool) {
		keys := spa.Keys{Key: key, HMACKey: hmacKey}
		if legacy {
			keys.Mode = spa.Legacy
		}
		k, err := Derive(keys)
		if len(key) == 0 {
			if !errors.Is(err, ErrNoKey) {
				t.Fatalf("empty key: %v", err)
			}
			return
		}
		if err != nil || k.Len() != KeyLen {
			t.Fatalf("Derive: %v, %d bytes", err, k.Len())
		}
		again, _ := Derive(keys)
		if !again.Equal(k) {
			t.Fatal("not deterministic")
		}
		if !legacy && len(key) > 1 {
			moved := spa.Keys{Key: key[:len(key)-1], HMACKey: append([]byte{key[len(key)-1]}, hmacKey...)}
			if m, _ := Derive(moved); m.Equal(k) {
				t.Fatal("moving a byte from the key to the HMAC key gives the same key")
			}
		}
	})
}

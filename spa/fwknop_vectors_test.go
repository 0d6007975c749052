package spa_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/spa"
)

// vectorsPath is the repository's one set of packets recorded from Debian's fwknop 2.6.10
// client (re-record with: go test ./internal/fwknoptest -run TestVectors -update).
const vectorsPath = "../internal/fwknoptest/" + fwknoptest.VectorsFile

func loadVectors(t *testing.T) []fwknoptest.Vector {
	t.Helper()
	vs, err := fwknoptest.LoadVectors(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) < 60 {
		t.Fatalf("%s holds %d vectors", vectorsPath, len(vs))
	}
	return vs
}

// saltOf recovers the 8-byte salt from a wire string ("Salted__" and the salt are the first
// 16 bytes of the base64 text whose prefix the client stripped).
func saltOf(t *testing.T, wire string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString("U2FsdGVkX1" + wire[:30])
	if err != nil || string(raw[:8]) != "Salted__" {
		t.Fatalf("no Salted__ header: %v %q", err, raw)
	}
	return raw[8:16]
}

// TestFwknopVectors decodes every recorded fwknop packet to the fields the client printed and
// rebuilds it byte for byte, HMAC included, from those fields and its salt.
func TestFwknopVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			k, err := v.Keys()
			if err != nil {
				t.Fatal(err)
			}
			m, err := spa.Decode([]byte(v.Wire), k)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if want := v.Fields.SPAMessage(); *m != want {
				t.Errorf("Decode\n got %+v\nwant %+v", *m, want)
			}
			if k.Mode == spa.Legacy && len(k.Key) > 16 {
				k.Key = k.Key[:16+len(k.Key)%3] // any key longer than 16 bytes acts as its first 16
			}
			want := v.Fields.SPAMessage()
			wire, err := spa.Encode(&want, k, bytes.NewReader(saltOf(t, v.Wire)))
			if err != nil {
				t.Fatal(err)
			}
			if wire != v.Wire {
				t.Errorf("Encode:\n got %s\nwant %s", wire, v.Wire)
			}
		})
	}
}

// TestFwknopVectorsWrongStanza: a stanza with the wrong key, mode or HMAC key refuses every
// recorded packet with the sentinel fwknopd's failure corresponds to.
func TestFwknopVectorsWrongStanza(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			k, err := v.Keys()
			if err != nil {
				t.Fatal(err)
			}
			bad := k
			bad.Key = []byte("wrongkey")
			want := spa.ErrDecrypt
			if k.HMACKey != nil {
				bad = k
				bad.HMACKey = []byte("wronghmac")
				want = spa.ErrHMACMismatch
			}
			if _, err := spa.Decode([]byte(v.Wire), bad); !errors.Is(err, want) {
				t.Errorf("wrong key: %v, want %v", err, want)
			}
			if k.Mode == spa.ECB || k.Mode == spa.CFB || k.Mode == spa.OFB || k.Mode == spa.CTR {
				bad = k
				bad.Mode = spa.CBC
				if _, err := spa.Decode([]byte(v.Wire), bad); !errors.Is(err, spa.ErrDecrypt) {
					t.Errorf("CBC stanza for a %v packet: %v, want ErrDecrypt", k.Mode, err)
				}
			}
		})
	}
}

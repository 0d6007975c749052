package gnupg

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"testing"

	"github.com/sesame-spa/sesame/spa"
)

// FuzzDecode feeds wire packets to a GnuPG decoder (no HMAC, so every base64 input of 400
// characters or more reaches the OpenPGP code): it must never panic, and anything it accepts
// must re-encode to the same plaintext digest.
func FuzzDecode(f *testing.F) {
	s := newSetup(f, "ecc")
	wire := encode(f, s.server, s.client, spa.Keys{})
	f.Add(wire)
	f.Add(wire[:400])
	f.Add(encode(f, s.server, nil, spa.Keys{}))
	d := s.decoder(f, spa.Keys{}, Policy{RequireSig: true, RemoteIDs: []string{shortID(s.client)}})
	f.Fuzz(func(t *testing.T, w string) {
		m, err := d.Decode([]byte(w))
		if err != nil {
			return
		}
		cp := *m
		if _, err := spa.EncodePlaintext(&cp); err != nil || cp.Digest != m.Digest {
			t.Fatalf("accepted %q but its fields do not re-encode: %v", w, err)
		}
	})
}

// FuzzOpen feeds binary OpenPGP messages straight to the Opener (signatures off, so the most
// code runs): no panic, and at most 1500 bytes of plaintext.
func FuzzOpen(f *testing.F) {
	s := newSetup(f, "ecc")
	sl, err := NewSealer(public(f, s.server), s.client, rand.Reader, clock)
	if err != nil {
		f.Fatal(err)
	}
	msg, err := sl.Seal([]byte("1234567890123456:cm9vdA:1800000000:3.0.0:1:MTAuMC4wLjIsdGNwLzIy:abc"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add(msg[:len(msg)/2])
	f.Add([]byte{0x85, 0x00, 0x02, 0x03, 0x00})
	o, err := NewOpener(s.kr, Policy{}, clock)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, m []byte) {
		pt, err := o.Open(m)
		if err == nil && len(pt) > maxPlaintext {
			t.Fatalf("%d bytes of plaintext", len(pt))
		}
	})
}

// FuzzOldFormatFirstHeader: the rewrite keeps the body and always yields a 0x85 0x0? header.
func FuzzOldFormatFirstHeader(f *testing.F) {
	f.Add([]byte{0xc1, 0x03, 1, 2, 3})
	f.Add([]byte{0x84, 0x02, 7, 8})
	f.Add([]byte{0x86, 0, 0, 0, 1, 5})
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := OldFormatFirstHeader(in)
		if err != nil {
			return
		}
		if out[0] != 0x85 || out[1] >= 0x10 {
			t.Fatalf("header % x", out[:3])
		}
		n := int(out[1])<<8 | int(out[2])
		_, hdr, _, _ := firstHeader(in)
		if !bytes.Equal(out[3:], in[hdr:]) || n > len(out)-3 {
			t.Fatalf("body changed: % x -> % x", in, out)
		}
		if !bytes.HasPrefix([]byte(base64.RawStdEncoding.EncodeToString(out)), []byte("hQ")) {
			t.Fatal("no hQ")
		}
	})
}

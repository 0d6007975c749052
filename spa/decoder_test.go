package spa

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

// TestDecoder: a prepared Decoder agrees with Decode, keeps its own keys and is safe for
// concurrent use.
func TestDecoder(t *testing.T) {
	k := Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest"), HMACType: SHA384, Mode: OFB}
	wire := []byte(mustEncode(t, testMessage(), k))
	d, err := NewDecoder(k)
	if err != nil {
		t.Fatal(err)
	}
	k.Key[0], k.HMACKey[0] = 'X', 'X' // the Decoder must not see this
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				m, err := d.Decode(wire)
				if err != nil || m.Message != "10.99.0.2,tcp/22" {
					t.Errorf("Decode: %+v, %v", m, err)
					return
				}
				bad := append([]byte(nil), wire...)
				bad[len(bad)-1] ^= 1
				if _, err := d.Decode(bad); err != ErrHMACMismatch {
					t.Errorf("forged: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ct, err := d.VerifyHMAC(wire)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.DecodeCiphertext(ct); err != nil {
		t.Fatal(err)
	}
	noHMAC, err := NewDecoder(Keys{Key: []byte("fwknoptest")})
	if err != nil {
		t.Fatal(err)
	}
	if ct, err := noHMAC.VerifyHMAC(wire); err != nil || len(ct) != len(wire) {
		t.Errorf("no HMAC key: %d, %v", len(ct), err)
	}
}

// TestDecoderRejectAllocs: rejecting a forged packet allocates nothing (the hot path).
func TestDecoderRejectAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	d, err := NewDecoder(testKeys)
	if err != nil {
		t.Fatal(err)
	}
	wire := []byte(mustEncode(t, testMessage(), testKeys))
	wire[60] ^= 1
	if n := testing.AllocsPerRun(200, func() {
		if _, err := d.Decode(wire); err != ErrHMACMismatch {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("reject allocates %.1f times, want 0", n)
	}
}

// TestIsB64Text: every byte value at every position of inputs of every length up to 40 (the
// unrolled loop's blocks and its tail) is judged as the alphabet says.
func TestIsB64Text(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	for n := 0; n <= 40; n++ {
		base := bytes.Repeat([]byte("A"), n)
		if !isB64Text(base) {
			t.Fatalf("%d x 'A' refused", n)
		}
		for i := range n {
			for c := range 256 {
				b := bytes.Clone(base)
				b[i] = byte(c)
				if want := strings.IndexByte(alphabet, byte(c)) >= 0; isB64Text(b) != want {
					t.Fatalf("length %d, byte %#x at %d: got %v, want %v", n, c, i, !want, want)
				}
			}
		}
	}
}

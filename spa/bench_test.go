package spa

import "testing"

// BenchmarkDecode decodes a valid packet (HMAC-SHA256, CBC, SHA-256 digest).
func BenchmarkDecode(b *testing.B) {
	wire := []byte(mustEncode(b, testMessage(), testKeys))
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, err := Decode(wire, testKeys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectBadHMAC is the hot path for garbage and forgeries: one HMAC, then reject.
func BenchmarkRejectBadHMAC(b *testing.B) {
	wire := []byte(mustEncode(b, testMessage(), testKeys))
	wire[60] ^= 1 // still base64: flips between letters
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, err := Decode(wire, testKeys); err != ErrHMACMismatch {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHMAC is the per-stanza first half alone (valid HMAC).
func BenchmarkVerifyHMAC(b *testing.B) {
	wire := []byte(mustEncode(b, testMessage(), testKeys))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyHMAC(wire, testKeys); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode builds a packet (HMAC-SHA256, CBC).
func BenchmarkEncode(b *testing.B) {
	r := &fixedRand{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Encode(testMessage(), testKeys, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecoderRejectBadHMAC is the server's per-stanza hot path with a prepared Decoder.
func BenchmarkDecoderRejectBadHMAC(b *testing.B) {
	d, err := NewDecoder(testKeys)
	if err != nil {
		b.Fatal(err)
	}
	wire := []byte(mustEncode(b, testMessage(), testKeys))
	wire[60] ^= 1
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, err := d.Decode(wire); err != ErrHMACMismatch {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecoderDecode decodes a valid packet with a prepared Decoder.
func BenchmarkDecoderDecode(b *testing.B) {
	d, err := NewDecoder(testKeys)
	if err != nil {
		b.Fatal(err)
	}
	wire := []byte(mustEncode(b, testMessage(), testKeys))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
}

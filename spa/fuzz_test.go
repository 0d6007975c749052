package spa

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fuzzKeys are the stanzas the wire fuzzer decodes with; the seed corpus in
// testdata/fuzz/FuzzDecodeWire holds packets made for them.
var fuzzKeys = []Keys{
	testKeys,
	{Key: []byte("fwknoptest"), Mode: CBC},
	{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest"), HMACType: SHA512, Mode: CTR},
	{Key: []byte("fwknoptest"), Mode: Legacy},
}

// wrapsOneSentinel reports whether err wraps exactly one of the package's sentinels.
func wrapsOneSentinel(err error) bool {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n == 1
}

// sameSentinel reports whether a and b wrap the same sentinels.
func sameSentinel(a, b error) bool {
	for _, s := range sentinels {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}

// FuzzDecodeWire: Decode never panics, every failure wraps one sentinel, a prepared Decoder's
// VerifyCheckedHMAC agrees with VerifyHMAC on every wire CheckWire passes, and a packet that
// decodes re-encodes (fresh salt) to a packet that decodes to the same fields.
func FuzzDecodeWire(f *testing.F) {
	for i, k := range fuzzKeys {
		m := testMessage()
		m.Type = MessageType(i % 7)
		if m.Type == CommandMsg {
			m.Message = "10.99.0.2,echo hi"
		}
		if m.Type.HasNAT() {
			m.NATAccess = "10.99.0.5,22"
		}
		if m.Type.HasTimeout() {
			m.ClientTimeout = 30
		}
		f.Add([]byte(mustEncode(f, m, k)))
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		wireErr := CheckWire(wire)
		if wireErr != nil && !wrapsOneSentinel(wireErr) {
			t.Fatalf("CheckWire error %q does not wrap exactly one sentinel", wireErr)
		}
		for _, k := range fuzzKeys {
			if wireErr == nil { // the server's per-stanza check after one CheckWire
				d, err := NewDecoder(k)
				if err != nil {
					t.Fatal(err)
				}
				ct, err := VerifyHMAC(wire, k)
				ct2, err2 := d.VerifyCheckedHMAC(wire)
				if string(ct) != string(ct2) || (err == nil) != (err2 == nil) || err != nil && !sameSentinel(err, err2) {
					t.Fatalf("VerifyCheckedHMAC: %q, %v; VerifyHMAC: %q, %v", ct2, err2, ct, err)
				}
			}
			m, err := Decode(wire, k)
			if err != nil {
				if !wrapsOneSentinel(err) {
					t.Fatalf("Decode error %q does not wrap exactly one sentinel", err)
				}
				if ct, err := VerifyHMAC(wire, k); err == nil {
					_, _ = DecodeCiphertext(ct, k)
				}
				continue
			}
			if m.Type.HasTimeout() && m.ClientTimeout == 0 {
				continue // see FuzzDecodePlaintext
			}
			want := *m
			again, err := Encode(m, k, &fixedRand{b: byte(len(wire))})
			if err != nil {
				t.Fatalf("re-encode of %+v: %v", want, err)
			}
			m2, err := Decode([]byte(again), k)
			if err != nil {
				t.Fatalf("decode of re-encoded packet: %v", err)
			}
			want.Digest = m2.Digest // the re-encoding is canonical (e.g. no '=' padding), the original need not be
			if *m2 != want {
				t.Fatalf("round trip:\n got %+v\nwant %+v", *m2, want)
			}
		}
	})
}

// FuzzDecodePlaintext: DecodePlaintext never panics, every failure wraps one sentinel, and
// what decodes re-encodes to plaintext that decodes to the same fields.
func FuzzDecodePlaintext(f *testing.F) {
	for _, enc := range []string{
		"1007490908109398:cm9vdA:1795432440:3.0.0:1:MTAuOTkuMC4yLHRjcC8yMg",
		"6841241541920449:cm9vdA:1795432483:3.0.0:2:MTAuOTkuMC4yLHRjcC8yMg:MTAuOTkuMC41LDIy",
		"1143621525405326:cm9vdA:1795432489:3.0.0:3:MTAuOTkuMC4yLHRjcC8yMg:60",
		"1223917589540710:cm9vdA:1795432493:3.0.0:6:MTAuOTkuMC4yLHRjcC8yMg:MTAuOTkuMC4xLDIy:60",
		"9126876141622967:cm9vdA:1795432495:3.0.0:0:MTAuOTkuMC4yLGVjaG8gZndrbm9wLXZlY3Rvcg",
	} {
		f.Add(plain(enc))
	}
	f.Fuzz(func(t *testing.T, pt []byte) {
		m, err := DecodePlaintext(pt)
		if err != nil {
			if !wrapsOneSentinel(err) {
				t.Fatalf("error %q does not wrap exactly one sentinel", err)
			}
			return
		}
		if m.Type.HasTimeout() && m.ClientTimeout == 0 {
			return // "timeout 0" on a timeout type: Message cannot express it; libfko re-encodes as type 1/2/5
		}
		want := *m
		want.Digest = ""
		again := want
		pt2, err := EncodePlaintext(&again)
		if err != nil {
			t.Fatalf("re-encode of %+v: %v", want, err)
		}
		m2, err := DecodePlaintext([]byte(pt2))
		if err != nil {
			t.Fatalf("decode of re-encoded %q: %v", pt2, err)
		}
		want.Digest = m2.Digest
		if *m2 != want || m2.Digest != again.Digest {
			t.Fatalf("round trip:\n got %+v\nwant %+v", *m2, want)
		}
	})
}

// FuzzParseAccess: ParseAccess never panics, fails only with ErrAccess, agrees with
// ParseAllowIP on the allow-IP, and what it parses renders (String) to a message that parses
// to the same Access.
func FuzzParseAccess(f *testing.F) {
	for _, s := range []string{"10.99.0.2,tcp/22", "0.0.0.0,none/0", "fd99::2,udp/53,tcp/00022", "10.99.0.2,NONE/0",
		"::ffff:1.2.3.4,tcp/1", "010.1.1.1,tcp/22"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		a, err := ParseAccess(msg)
		ipText, _, _ := strings.Cut(msg, ",")
		ip, ipErr := ParseAllowIP(ipText)
		if err != nil {
			if !errors.Is(err, ErrAccess) {
				t.Fatalf("ParseAccess(%q): %v does not wrap ErrAccess", msg, err)
			}
			return
		}
		if ipErr != nil || (ip.IsUnspecified() != !a.AllowIP.IsValid()) || (a.AllowIP.IsValid() && a.AllowIP != ip) {
			t.Fatalf("ParseAccess(%q) allow-IP %v, ParseAllowIP %v, %v", msg, a.AllowIP, ip, ipErr)
		}
		b, err := ParseAccess(a.String())
		if err != nil || b.AllowIP != a.AllowIP || !slices.Equal(b.Ports, a.Ports) {
			t.Fatalf("%q parsed to %+v, rendered %q, parsed again to %+v, %v", msg, a, a.String(), b, err)
		}
	})
}

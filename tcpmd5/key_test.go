package tcpmd5

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []byte
		wantErr bool
	}{
		{"hello", []byte("hello"), false},
		{"hex:68656C6c6f", []byte("hello"), false},
		{"base64:aGVsbG8=", []byte("hello"), false},
		{"base64:aGVsbG8", []byte("hello"), false},
		{"raw:hex:zz", []byte("hex:zz"), false},
		{"with space and # hash", []byte("with space and # hash"), false},
		{strings.Repeat("k", 80), bytes.Repeat([]byte("k"), 80), false},
		{"hex:" + strings.Repeat("00", 80), make([]byte, 80), false},
		{"", nil, true},
		{"raw:", nil, true},
		{strings.Repeat("k", 81), nil, true},
		{"hex:6", nil, true},
		{"hex:zz", nil, true},
		{"hex:", nil, true},
		{"base64:!!", nil, true},
	} {
		k, err := ParseKey(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseKey(%q) = %v, want error", tc.in, k)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseKey(%q): %v", tc.in, err)
			continue
		}
		if !bytes.Equal(k.Bytes(), tc.want) {
			t.Errorf("ParseKey(%q) = %q, want %q", tc.in, k.Bytes(), tc.want)
		}
	}
	_, err := ParseKey(strings.Repeat("k", 81))
	if !errors.Is(err, ErrKeyLength) {
		t.Errorf("81-byte key: got %v, want ErrKeyLength", err)
	}
}

func TestKeyDoesNotLeak(t *testing.T) {
	k, _ := ParseKey("supersecret")
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, "supersecret") {
			t.Errorf("key text %q reveals the secret", s)
		}
	}
	k2, _ := NewKey([]byte("supersecret"))
	if !k.Equal(k2) || k.Equal(Key{}) {
		t.Error("Equal is wrong")
	}
}

func FuzzParseKey(f *testing.F) {
	for _, s := range []string{"hello", "hex:00ff", "base64:aGVsbG8=", "raw:x", "", "hex:", strings.Repeat("a", 90)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			if !k.IsZero() {
				t.Fatalf("error with non-zero key")
			}
			return
		}
		if k.Len() < 1 || k.Len() > MaxKeyLen {
			t.Fatalf("ParseKey(%q) gave %d bytes", s, k.Len())
		}
		// Every accepted key round-trips through the hex form.
		k2, err := ParseKey("hex:" + hexOf(k.Bytes()))
		if err != nil || !k2.Equal(k) {
			t.Fatalf("hex round trip of %q failed: %v", s, err)
		}
	})
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.1.2.3/8":          "10.0.0.0/8",
		"10.1.2.3":            "10.1.2.3/32",
		"2001:db8::1":         "2001:db8::1/128",
		"::ffff:10.0.0.0/104": "10.0.0.0/8",
		"::ffff:192.0.2.1":    "192.0.2.1/32",
		"::/0":                "::/0",
		"0.0.0.0/0":           "0.0.0.0/0",
		"fe80::1%eth0":        "fe80::1/128",
		"fe80::1%eth0/64":     "fe80::/64",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "any", "10.0.0.0/33", "x/8", "fe80::1%eth0/129", "fe80::1%eth0/", "10.0.0.1/", "10.0.0.1/8/8", "/8"} {
		if _, err := ParsePrefix(bad); !errors.Is(err, ErrBadPrefix) {
			t.Errorf("ParsePrefix(%q): got %v, want ErrBadPrefix", bad, err)
		}
	}
}

func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{"10.1.2.3/8", "2001:db8::1", "::ffff:10.0.0.0/104", "fe80::1%eth0/64", "fe80::1%a/b", "1.2.3.4/33"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			if !errors.Is(err, ErrBadPrefix) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("%q: not normalised: %v", s, p)
		}
		if q, err := ParsePrefix(p.String()); err != nil || q != p {
			t.Fatalf("%q: %v does not read back: %v, %v", s, p, q, err)
		}
	})
}

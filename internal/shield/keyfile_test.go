package shield

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/sesame-spa/sesame/tcpmd5"
)

func TestParseKeyFileSingle(t *testing.T) {
	for in, want := range map[string]string{
		"correct horse battery staple\n": "correct horse battery staple",
		"hex:6869\r\n":                   "hi",
		"base64:aGk=":                    "hi",
		"raw:10.0.0.0/8 key\n\n":         "10.0.0.0/8 key",
		"#notacomment":                   "",
	} {
		rules, err := ParseKeyFile([]byte(in))
		if want == "" {
			continue // "#..." starts a table; checked below
		}
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if len(rules) != 2 || string(rules[0].Key.Bytes()) != want || rules[0].Prefix != tcpmd5.AnyIPv4 || rules[1].Prefix != tcpmd5.AnyIPv6 {
			t.Errorf("%q: got %v", in, rules)
		}
	}
	for _, bad := range []string{"", "\n", "key\nsecond line\n", "hex:zz\n", string(make([]byte, 81))} {
		if _, err := ParseKeyFile([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseKeyFileTable(t *testing.T) {
	in := "# sesame shield keys\n" +
		"\n" +
		"any\thex:616c6c\n" +
		"  10.0.0.0/8   ten key with # and spaces  \n" +
		"192.0.2.7 base64:aG9zdA==\n" +
		"2001:db8::/32 six\n"
	rules, err := ParseKeyFile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rules {
		got[r.Prefix.String()] = string(r.Key.Bytes())
	}
	want := map[string]string{
		"0.0.0.0/0": "all", "::/0": "all", "10.0.0.0/8": "ten key with # and spaces",
		"192.0.2.7/32": "host", "2001:db8::/32": "six",
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for p, k := range want {
		if got[p] != k {
			t.Errorf("%s: %q, want %q", p, got[p], k)
		}
	}
	for _, bad := range []string{
		"# only comments\n",
		"10.0.0.0/8 a\n10.1.2.3/8 b\n",   // same prefix after masking
		"any a\n0.0.0.0/0 b\n",           // any includes 0.0.0.0/0
		"10.0.0.0/8 a\nnot-a-prefix b\n", // bad prefix on a later line
		"10.0.0.0/8 a\n10.0.0.0/9\n",     // no key
		"10.0.0.0/8 hex:zz\n",
	} {
		if _, err := ParseKeyFile([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestKeyFor(t *testing.T) {
	rules, err := ParseKeyFile([]byte("any a\n10.0.0.0/8 b\n10.1.0.0/16 c\n"))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"10.1.2.3": "c", "10.2.0.1": "b", "192.0.2.1": "a", "::ffff:10.1.0.1": "c", "2001:db8::1": "a"} {
		k, ok := KeyFor(rules, netip.MustParseAddr(addr))
		if !ok || string(k.Bytes()) != want {
			t.Errorf("KeyFor(%s) = %q %v, want %q", addr, k.Bytes(), ok, want)
		}
	}
	if _, ok := KeyFor(rules[2:], netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("match without a covering rule")
	}
}

func TestLoadKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(p); err != nil {
		t.Errorf("mode 0600: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		os.Chmod(p, mode)
		if _, err := LoadKeyFile(p); !errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("mode %04o: %v, want ErrInsecureKeyFile", mode, err)
		}
	}
	if _, err := LoadKeyFile(dir); err == nil {
		t.Error("directory accepted")
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParseKeyFile(f *testing.F) {
	for _, s := range []string{"secret\n", "any hex:00\n10.0.0.0/8 k\n", "# c\n\n::/0 base64:aGk=\n", "raw:x", "1.2.3.4\tk"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		if len(rules) == 0 {
			t.Fatal("no rules and no error")
		}
		seen := map[netip.Prefix]bool{}
		for _, r := range rules {
			if !r.Prefix.IsValid() || r.Prefix != r.Prefix.Masked() || r.Key.Len() < 1 || r.Key.Len() > tcpmd5.MaxKeyLen {
				t.Fatalf("bad rule %v %v", r.Prefix, r.Key)
			}
			if seen[r.Prefix] {
				t.Fatalf("duplicate %v", r.Prefix)
			}
			seen[r.Prefix] = true
		}
	})
}

package shield

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestParseKeyFileAmbiguous: a one-line file that reads like a table line with a missing
// key or a broken prefix, or that carries a byte-order mark, is refused with its line
// number; the explicit forms make the same text a key.
func TestParseKeyFileAmbiguous(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"192.0.2.0/24\n", `line 1: "192.0.2.0/24" is a prefix with no key`},
		{"192.0.2.7\n", `line 1: "192.0.2.7" is a prefix with no key`},
		{"2001:db8::/32", "line 1: "},
		{"any\n", `line 1: "any" is a prefix with no key`},
		{"  10.0.0.0/8  \n", "line 1: "},
		{"10.0.0.0/33 realkey\n", `line 1: "10.0.0.0/33" is not a valid address or prefix`},
		{"300.1.2.3 realkey\n", "line 1: "},
		{"2001:db8::/129\tk\n", "line 1: "},
		{"fe80::1%eth0/129 k\n", "line 1: "},
		{"\uFEFFsecret\n", "line 1: the file starts with a UTF-8 byte-order mark"},
		{"\uFEFF# table\nany k\n", "byte-order mark"},
		{"sec\uFEFFret\n", "line 1: the key contains a UTF-8 byte-order mark"},
		{"# table\n10.0.0.0/8 k\n10.1.0.0/16 \uFEFFk\n", "line 3: the key contains a UTF-8 byte-order mark"},
		{"# table\n10.0.0.0/8 k\n10.0.0.0/33 k2\n", "line 3: "},
	} {
		_, err := ParseKeyFile([]byte(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.err) && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want an error with %q", tc.in, err, tc.err)
		}
	}
	for in, want := range map[string]string{
		"raw:192.0.2.0/24\n":        "192.0.2.0/24",
		"raw:10.0.0.0/33 realkey\n": "10.0.0.0/33 realkey",
		"hex:efbbbf6b\n":            "\uFEFFk",
		"raw:any":                   "any",
		"my/secret key\n":           "my/secret key",
		"deadbeef cafe\n":           "deadbeef cafe",
		"a.b.c is a key\n":          "a.b.c is a key",
	} {
		rules, err := ParseKeyFile([]byte(in))
		if err != nil || len(rules) != 2 || string(rules[0].Key.Bytes()) != want {
			t.Errorf("%q: %v, %v; want the single key %q", in, rules, err, want)
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
	if _, err := LoadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := LoadKeyFile("/dev/null"); err == nil || !strings.Contains(err.Error(), "device") {
		t.Errorf("/dev/null: %v", err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("# filler\n"), MaxKeyFileSize/8), 0o600)
	if _, err := LoadKeyFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestLoadKeyFileFIFO: a key file that is a FIFO with no writer is refused at once; it
// must not block in open(2) or read(2) (issue 15). Linked to a FIFO, the same.
func TestLoadKeyFileFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "md5.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(fifo, link)
	for _, p := range []string{fifo, link} {
		done := make(chan error, 1)
		go func() { _, err := LoadKeyFile(p); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "named pipe (FIFO), not a regular file") {
				t.Errorf("%s: %v, want a refusal naming the FIFO", p, err)
			}
		case <-time.After(10 * time.Second):
			// Unblock the stuck open so the test binary can end, then fail.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Fatalf("%s: LoadKeyFile still blocked on the FIFO after 10 s", p)
		}
	}
}

func FuzzParseKeyFile(f *testing.F) {
	for _, s := range []string{"secret\n", "any hex:00\n10.0.0.0/8 k\n", "# c\n\n::/0 base64:aGk=\n", "raw:x", "1.2.3.4\tk", "10.0.0.0/33 k", "\uFEFFk"} {
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
		// A file read as one key for everyone never starts with a BOM, and its line is
		// not a prefix or broken table line unless written in an explicit form.
		first, _, _ := strings.Cut(string(data), "\n")
		first = strings.TrimSuffix(first, "\r")
		if len(rules) == 2 && !looksLikeTable(first) {
			if strings.HasPrefix(string(data), bom) {
				t.Fatalf("BOM accepted: %q", data)
			}
			if w, _, _ := splitWord(strings.TrimSpace(first)); !explicitKey(first) && (prefixLike(w) || strings.EqualFold(w, "any")) {
				if _, err := parseWho(strings.TrimSpace(first)); err == nil {
					t.Fatalf("a bare prefix became a key: %q", first)
				}
				if _, err := parseWho(w); err != nil {
					t.Fatalf("a broken prefix became part of a key: %q", first)
				}
			}
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

package keygen

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"github.com/sesame-spa/sesame/internal/keygen"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"rsc.io/qr"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

var lineRE = regexp.MustCompile(`^KEY_BASE64: ([A-Za-z0-9+/]+=*)\nHMAC_KEY_BASE64: ([A-Za-z0-9+/]+=*)\n`)

// parse returns the decoded keys of keygen output and the text after the two lines.
func parse(t *testing.T, out string) (key, hmacKey []byte, rest string) {
	t.Helper()
	m := lineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output not in --key-gen format: %q", out)
	}
	var err error
	if key, err = base64.StdEncoding.DecodeString(m[1]); err != nil {
		t.Fatalf("KEY_BASE64 %q: %v", m[1], err)
	}
	if hmacKey, err = base64.StdEncoding.DecodeString(m[2]); err != nil {
		t.Fatalf("HMAC_KEY_BASE64 %q: %v", m[2], err)
	}
	return key, hmacKey, out[len(m[0]):]
}

func runKeygen(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

func TestLengths(t *testing.T) {
	for _, tc := range []struct {
		args          []string
		key, hmacKeyN int
	}{
		{nil, 32, 64},
		{[]string{"--hmac-digest-type", "md5"}, 32, 16},
		{[]string{"--hmac-digest-type", "SHA1"}, 32, 20},
		{[]string{"--hmac-digest-type", "sha256"}, 32, 64},
		{[]string{"--hmac-digest-type", "sha384"}, 32, 128},
		{[]string{"--hmac-digest-type", "sha512"}, 32, 128},
		{[]string{"--hmac-digest-type", "sha3_256"}, 32, 64},
		{[]string{"--hmac-digest-type", "sha3_512"}, 32, 128},
		{[]string{"--key-len", "1", "--hmac-key-len", "1"}, 1, 1},
		{[]string{"--key-len", "16", "--hmac-key-len", "128", "--hmac-digest-type", "md5"}, 16, 128},
	} {
		code, out, errs := runKeygen(t, tc.args...)
		if code != 0 || errs != "" {
			t.Fatalf("%q: exit %d: %s", tc.args, code, errs)
		}
		k, h, rest := parse(t, out)
		if len(k) != tc.key || len(h) != tc.hmacKeyN || rest != "" {
			t.Errorf("%q: key %d bytes, HMAC key %d bytes, rest %q; want %d, %d", tc.args, len(k), len(h), rest, tc.key, tc.hmacKeyN)
		}
	}
	// Two runs give different keys.
	_, a, _ := runKeygen(t)
	_, b, _ := runKeygen(t)
	if a == b {
		t.Error("two runs printed the same keys")
	}
}

func TestGenerateFromReader(t *testing.T) {
	src := bytes.Repeat([]byte{0xfb}, 48)
	p, err := keygen.Generate(bytes.NewReader(src), 32, 16)
	if err != nil {
		t.Fatal(err)
	}
	want := "KEY_BASE64: " + base64.StdEncoding.EncodeToString(src[:32]) +
		"\nHMAC_KEY_BASE64: " + base64.StdEncoding.EncodeToString(src[32:]) + "\n"
	if p.String() != want {
		t.Fatalf("got %q, want %q", p.String(), want)
	}
	if _, err := keygen.Generate(bytes.NewReader(src[:10]), 32, 16); err == nil {
		t.Error("short random source accepted")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--key-len", "0"}, "must be in [1-32]"},
		{[]string{"--key-len", "33"}, "must be in [1-32]"},
		{[]string{"--hmac-key-len", "0"}, "must be in [1-128]"},
		{[]string{"--hmac-key-len", "129"}, "must be in [1-128]"},
		{[]string{"--hmac-digest-type", "bogus"}, "invalid digest type"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--nope"}, "unknown flag"},
	} {
		code, out, errs := runKeygen(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// unrender turns half-block text back into a module grid (true = drawn), margin included.
func unrender(t *testing.T, text string) [][]bool {
	t.Helper()
	var grid [][]bool
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		var top, bottom []bool
		for _, r := range line {
			switch r {
			case '█':
				top, bottom = append(top, true), append(bottom, true)
			case '▀':
				top, bottom = append(top, true), append(bottom, false)
			case '▄':
				top, bottom = append(top, false), append(bottom, true)
			case ' ':
				top, bottom = append(top, false), append(bottom, false)
			default:
				t.Fatalf("unexpected rune %q in QR output", r)
			}
		}
		grid = append(grid, top, bottom)
	}
	return grid
}

// TestQR renders the pair's QR code and reads the modules back: they must be exactly the
// modules of qr.Encode for the Fwknop2 text, surrounded by the quiet margin, in both colour
// schemes. The QR text must name both keys as the app expects.
func TestQR(t *testing.T) {
	for _, invert := range []bool{false, true} {
		args := []string{"--qr"}
		if invert {
			args = append(args, "--qr-invert")
		}
		code, out, errs := runKeygen(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		k, h, rest := parse(t, out)
		text := "KEY_BASE64:" + base64.StdEncoding.EncodeToString(k) + " HMAC_KEY_BASE64:" + base64.StdEncoding.EncodeToString(h)
		c, err := qr.Encode(text, QRLevel)
		if err != nil {
			t.Fatal(err)
		}
		grid := unrender(t, rest)
		n := c.Size + 2*quiet
		if len(grid) < n || len(grid) > n+1 {
			t.Fatalf("invert=%v: %d module rows, want %d", invert, len(grid), n)
		}
		for y := 0; y < n; y++ {
			if len(grid[y]) != n {
				t.Fatalf("invert=%v: row %d has %d modules, want %d", invert, y, len(grid[y]), n)
			}
			for x := 0; x < n; x++ {
				qx, qy := x-quiet, y-quiet
				dark := qx >= 0 && qy >= 0 && qx < c.Size && qy < c.Size && c.Black(qx, qy)
				if drawn := grid[y][x]; drawn != (dark == invert) {
					t.Fatalf("invert=%v: module (%d,%d) drawn=%v, QR dark=%v", invert, qx, qy, drawn, dark)
				}
			}
		}
	}
}

func TestQRText(t *testing.T) {
	p := keygen.Pair{Key: []byte("k"), HMACKey: []byte("hh")}
	if got, want := p.QRText(), "KEY_BASE64:aw== HMAC_KEY_BASE64:aGg="; got != want {
		t.Fatalf("QRText %q, want %q", got, want)
	}
}

// TestIntegrationRealKeygenFormat compares with the real fwknop --key-gen: same line format
// and the same key sizes for the HMAC types where fwknop 2.6.10 has a default.
func TestIntegrationRealKeygenFormat(t *testing.T) {
	nstest.Require(t, "fwknop")
	for _, ht := range []string{"md5", "sha1", "sha256", "sha384", "sha512"} {
		cmd := exec.Command("fwknop", "--key-gen", "--hmac-digest-type", ht)
		cmd.Env = append(cmd.Environ(), "HOME="+t.TempDir())
		real, err := cmd.Output()
		if err != nil {
			t.Fatalf("fwknop --key-gen --hmac-digest-type %s: %v", ht, err)
		}
		// The real client prints a note when it creates its rc file; keep the key lines.
		i := strings.Index(string(real), "KEY_BASE64: ")
		if i < 0 {
			t.Fatalf("real output %q", real)
		}
		rk, rh, _ := parse(t, string(real)[i:])
		_, out, _ := runKeygen(t, "--hmac-digest-type", ht)
		k, h, _ := parse(t, out)
		if len(k) != len(rk) || len(h) != len(rh) {
			t.Errorf("%s: sesame %d/%d bytes, fwknop %d/%d", ht, len(k), len(h), len(rk), len(rh))
		}
	}
}

// TestIntegrationKeysWork builds a packet with the real fwknop client using generated keys,
// for every HMAC type, and decodes it with them.
func TestIntegrationKeysWork(t *testing.T) {
	nstest.Require(t, "fwknop")
	for d := spa.MD5; d <= spa.SHA3_512; d++ {
		name := fwknoptest.DigestNames[d]
		var out, errb bytes.Buffer
		if code := run([]string{"--hmac-digest-type", name}, rand.Reader, &out, &errb); code != 0 {
			t.Fatalf("%s: %s", name, errb.String())
		}
		k, h, _ := parse(t, out.String())
		res := fwknoptest.Client(t, "-A", "tcp/22", "-a", "10.99.0.2", "--use-hmac",
			"--key-base64-rijndael", base64.StdEncoding.EncodeToString(k),
			"--key-base64-hmac", base64.StdEncoding.EncodeToString(h), "--hmac-digest-type", name)
		m, err := spa.Decode([]byte(res.Wire), spa.Keys{Key: k, HMACKey: h, HMACType: d})
		if err != nil {
			t.Fatalf("%s: decode a real packet made with the generated keys: %v", name, err)
		}
		if *m != res.Dump.SPAMessage() {
			t.Errorf("%s: decoded %+v, client %+v", name, *m, res.Dump.SPAMessage())
		}
	}
}

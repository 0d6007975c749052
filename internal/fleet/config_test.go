package fleet

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/replay"
)

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"closed": Closed, "LOCAL": Local, " local ": Local} {
		if p, err := ParsePolicy(in); err != nil || p != want {
			t.Errorf("%q: %v %v", in, p, err)
		}
	}
	if _, err := ParsePolicy("open"); err == nil {
		t.Error("open accepted")
	}
	if Closed.String() != "closed" || Local.String() != "local" {
		t.Error("String")
	}
}

func TestNewRefuses(t *testing.T) {
	ok := Config{URL: "redis://127.0.0.1:1", Key: testKey}
	for name, mod := range map[string]func(*Config){
		"short key":           func(c *Config) { c.Key = testKey[:31] },
		"bad group":           func(c *Config) { c.Group = "a b" },
		"long group":          func(c *Config) { c.Group = strings.Repeat("g", 65) },
		"bad gateway":         func(c *Config) { c.Gateway = "gw:1" },
		"local without cache": func(c *Config) { c.OnError = Local },
		"unknown policy":      func(c *Config) { c.OnError = 7 },
		"negative wait":       func(c *Config) { c.WaitReplicas = -1 },
		"no scheme":           func(c *Config) { c.URL = "127.0.0.1:6379" },
		"bad scheme":          func(c *Config) { c.URL = "http://127.0.0.1" },
		"bad query":           func(c *Config) { c.URL = "redis://127.0.0.1/?nonsense=1" },
		"sentinel no master":  func(c *Config) { c.URL = "redis+sentinel://127.0.0.1:26379" },
		"sentinel option":     func(c *Config) { c.URL = "redis+sentinel://h/m?db=1" },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f, err := New(Config{URL: ok.URL, Key: testKey, OnError: Local, Local: replay.NewMemory(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.cfg.Group != "default" || f.cfg.Timeout != defaultTimeout || f.cfg.MaxSkew != defaultMaxSkew ||
		!strings.HasPrefix(f.Gateway(), "gw-") || f.stream != "sesame:{default}:grants" {
		t.Errorf("defaults: %+v", f.cfg)
	}
	// A password never shows in errors.
	if _, err := New(Config{URL: "redis://u:hunter2@127.0.0.1/?bogus=1", Key: testKey}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v", err)
	}
}

func TestParseSentinel(t *testing.T) {
	fo, err := parseSentinel("rediss+sentinel://gw:p%40ss@s1:26380,[2001:db8::1]:26381,s3/mymaster/2?sentinel_user=su&sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"s1:26380", "[2001:db8::1]:26381", "s3:26379"}
	if fo.MasterName != "mymaster" || fo.DB != 2 || fo.Username != "gw" || fo.Password != "p@ss" ||
		fo.SentinelUsername != "su" || fo.SentinelPassword != "sp" || strings.Join(fo.SentinelAddrs, " ") != strings.Join(want, " ") ||
		fo.tlsHost != "s1" {
		t.Errorf("%+v", fo)
	}
	for _, bad := range []string{"redis+sentinel://", "redis+sentinel://h:0/m", "redis+sentinel://h/m/x",
		"redis+sentinel://h/m/1/2", "redis+sentinel://,/m", "redis+sentinel://h:p/m", "redis+sentinel://u:%zz@h/m"} {
		if _, err := parseSentinel(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseSentinel(f *testing.F) {
	f.Add("redis+sentinel://u:p@h1:1,h2/m/0?sentinel_password=x")
	f.Add("redis+sentinel://[::1]/m")
	f.Fuzz(func(t *testing.T, s string) {
		fo, err := parseSentinel(s)
		if err == nil && (fo.MasterName == "" || len(fo.SentinelAddrs) == 0) {
			t.Fatalf("%q: %+v", s, fo)
		}
	})
}

func TestParseKeyFile(t *testing.T) {
	dir := t.TempDir()
	key32 := bytes.Repeat([]byte{7}, 32)
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	std := base64.StdEncoding.EncodeToString(key32)
	for name, content := range map[string]string{
		"std":      std + "\n",
		"raw":      base64.RawStdEncoding.EncodeToString(key32),
		"crlf":     std + "\r\n",
		"trailing": "  " + std + " \n",
	} {
		got, err := ParseKeyFile(write(name, content, 0o600))
		if err != nil || !bytes.Equal(got, key32) {
			t.Errorf("%s: %x %v", name, got, err)
		}
	}
	if _, err := ParseKeyFile(write("group", std, 0o640)); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("mode 0640: %v", err)
	}
	for name, content := range map[string]string{
		"short":    base64.StdEncoding.EncodeToString(key32[:31]) + "\n",
		"twolines": std + "\n" + std + "\n",
		"notb64":   strings.Repeat("!", 44),
		"empty":    "",
	} {
		if _, err := ParseKeyFile(write(name, content, 0o600)); err == nil {
			t.Errorf("%s accepted", name)
		} else if strings.Contains(err.Error(), std) {
			t.Errorf("%s: error shows the key: %v", name, err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(filepath.Join(dir, "std"), link); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseKeyFile(link); err == nil {
		t.Error("symbolic link accepted")
	}
	if _, err := ParseKeyFile(dir); err == nil {
		t.Error("directory accepted")
	}
}

func FuzzParseKeyText(f *testing.F) {
	f.Add([]byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)) + "\n"))
	f.Add([]byte("x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := parseKeyText(data)
		if err == nil && len(k) < minKeyLen {
			t.Fatalf("%q: %d-byte key", data, len(k))
		}
	})
}

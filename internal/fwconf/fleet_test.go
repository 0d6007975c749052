package fwconf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseServerFleet(t *testing.T) {
	conf := `SESAME_FLEET_REDIS          rediss://gw:s3cret@redis.example:6380/2
SESAME_FLEET_GROUP          edge-1
SESAME_FLEET_KEY_FILE       /etc/fwknop/fleet.key
SESAME_FLEET_ON_ERROR       Local
SESAME_FLEET_TIMEOUT        150
SESAME_FLEET_MAX_SKEW       3000
SESAME_FLEET_WAIT_REPLICAS  1
SESAME_FLEET_NAME           gw.a
SESAME_FLEET_TLS_CA         /etc/fwknop/ca.pem
SESAME_FLEET_TLS_CERT       /etc/fwknop/gw.pem
SESAME_FLEET_TLS_KEY        /etc/fwknop/gw.key
`
	s, warns, err := ParseServer("fwknopd.conf", []byte(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	if s.FleetRedis != "rediss://gw:s3cret@redis.example:6380/2" || s.FleetGroup != "edge-1" ||
		s.FleetKeyFile != "/etc/fwknop/fleet.key" || s.FleetOnError != "local" || s.FleetTimeout != 150*time.Millisecond ||
		s.FleetMaxSkew != 3*time.Second || s.FleetWaitReplicas != 1 || s.FleetName != "gw.a" ||
		s.FleetTLSCA != "/etc/fwknop/ca.pem" || s.FleetTLSCert != "/etc/fwknop/gw.pem" || s.FleetTLSKey != "/etc/fwknop/gw.key" {
		t.Errorf("parsed %s", s)
	}
	if strings.Contains(s.String(), "s3cret") {
		t.Errorf("String shows the password: %s", s)
	}
	var b bytes.Buffer
	if err := DumpServer(&b, s); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "s3cret") || !strings.Contains(b.String(), "SESAME_FLEET_REDIS rediss://gw:xxxxx@redis.example:6380/2\n") {
		t.Errorf("dump:\n%s", b.String())
	}
	again, _, err := ParseServer("fwknopd.conf", b.Bytes(), Options{})
	if err != nil || again.String() != s.String() {
		t.Errorf("dump does not parse back: %v\n%s\n%s", err, s, again)
	}

	// Without SESAME_FLEET_REDIS there is no fleet: nothing to check, the others warn.
	s, warns, err = ParseServer("f.conf", []byte("SESAME_FLEET_GROUP g\nSESAME_FLEET_TIMEOUT 10\n"), Options{})
	if err != nil || s.FleetRedis != "" {
		t.Fatalf("%v %q", err, s.FleetRedis)
	}
	if len(warns) != 2 || warns[0].String() != "f.conf:1: SESAME_FLEET_GROUP: has no effect without SESAME_FLEET_REDIS" {
		t.Errorf("warnings %v", warns)
	}
	if s, _, err := ParseServer("f.conf", nil, Options{}); err != nil || s.FleetRedis != "" || s.FleetOnError != "" {
		t.Errorf("defaults: %v %s", err, s)
	}
}

// Every mistake of the file is reported in one run, each naming file, line and variable.
func TestParseServerFleetErrors(t *testing.T) {
	conf := `SESAME_FLEET_REDIS http://gw:s3cret@h
SESAME_FLEET_GROUP bad/group
SESAME_FLEET_ON_ERROR open
SESAME_FLEET_TIMEOUT 0
SESAME_FLEET_MAX_SKEW 2s
SESAME_FLEET_WAIT_REPLICAS -1
SESAME_FLEET_NAME
SESAME_FLEET_TLS_CA /ca.pem
SESAME_FLEET_TLS_CERT /c.pem
`
	conf = strings.Replace(conf, "SESAME_FLEET_NAME\n", "SESAME_FLEET_NAME "+strings.Repeat("n", 65)+"\n", 1)
	_, _, err := ParseServer("fwknopd.conf", []byte(conf), Options{})
	if err == nil || !errors.Is(err, ErrValue) {
		t.Fatalf("err = %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "fwknopd.conf" {
		t.Errorf("not an *Error naming the file: %v", err)
	}
	got := err.Error()
	for _, want := range []string{
		`fwknopd.conf:1: SESAME_FLEET_REDIS: unknown scheme "http"; write redis://`,
		"fwknopd.conf:1: SESAME_FLEET_REDIS: is set but SESAME_FLEET_KEY_FILE is not; set SESAME_FLEET_KEY_FILE to a file made with `head -c 32 /dev/urandom | base64`",
		`fwknopd.conf:2: SESAME_FLEET_GROUP: "bad/group" is not a valid name; use 1 to 64 of A-Z a-z 0-9 . _ -`,
		`fwknopd.conf:3: SESAME_FLEET_ON_ERROR: "open" is not closed or local; use closed`,
		`fwknopd.conf:4: SESAME_FLEET_TIMEOUT: "0" is not a whole number in [1, 60000]; milliseconds`,
		`fwknopd.conf:5: SESAME_FLEET_MAX_SKEW: "2s" is not a whole number`,
		`fwknopd.conf:6: SESAME_FLEET_WAIT_REPLICAS: "-1" is not a whole number in [0, 64]`,
		`fwknopd.conf:7: SESAME_FLEET_NAME: "nnnn`,
		`fwknopd.conf:8: SESAME_FLEET_TLS_CA: TLS settings need a TLS URL; use a rediss://`,
		`fwknopd.conf:9: SESAME_FLEET_TLS_CERT: is set without its pair; set both`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "s3cret") {
		t.Errorf("errors show the password:\n%s", got)
	}
	for _, tc := range []struct{ conf, want string }{
		{"SESAME_FLEET_REDIS redis:/h\nSESAME_FLEET_KEY_FILE /k\n", `fwknopd.conf:1: SESAME_FLEET_REDIS: "redis:/h" is not a URL`},
		{"SESAME_FLEET_REDIS redis:///0\nSESAME_FLEET_KEY_FILE /k\n", `fwknopd.conf:1: SESAME_FLEET_REDIS: "redis:///0" names no host`},
		{"SESAME_FLEET_REDIS redis://h\nSESAME_FLEET_KEY_FILE /k\nSESAME_FLEET_TLS_KEY /k.pem\n", "fwknopd.conf:3: SESAME_FLEET_TLS_KEY: "},
	} {
		_, _, err := ParseServer("fwknopd.conf", []byte(tc.conf), Options{})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want prefix %q", tc.conf, err, tc.want)
		}
	}
	for _, ok := range []string{"redis://h", "redis://u:p@h:1/3", "redis+sentinel://s1:26379,s2/mymaster", "REDISS://h"} {
		if _, _, err := ParseServer("f", []byte("SESAME_FLEET_REDIS "+ok+"\nSESAME_FLEET_KEY_FILE /k\n"), Options{}); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://h:1":                  "redis://h:1",
		"redis://u:p@h":                "redis://u:xxxxx@h",
		"redis://:p@h/0":               "redis://:xxxxx@h/0",
		"redis://u@h":                  "redis://u@h",
		"redis://u:p@q@h":              "redis://u:xxxxx@h",
		"redis+sentinel://u:p@a,b/m":   "redis+sentinel://u:xxxxx@a,b/m",
		"redis://h/0?x=a@b":            "redis://h/0?x=a@b",
		"not a url":                    "not a url",
		"redis://u:xxxxx@h":            "redis://u:xxxxx@h",
		"rediss+sentinel://u:p%40@h/m": "rediss+sentinel://u:xxxxx@h/m",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRedactURL: never panics, is idempotent, and a URL whose user information has a password
// loses it.
func FuzzRedactURL(f *testing.F) {
	for _, s := range []string{"redis://u:p@h", "rediss://:pw@h:1/0", "redis://h", "x", "redis+sentinel://u:p@a,b/m?sentinel_password=q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := RedactURL(s)
		if RedactURL(r) != r {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, r, RedactURL(r))
		}
		scheme, rest, ok := strings.Cut(s, "://")
		at := strings.LastIndexByte(rest, '@')
		if !ok || at < 0 || strings.ContainsAny(rest[:at], "/?") {
			return
		}
		if _, pw, has := strings.Cut(rest[:at], ":"); has && r != scheme+"://"+strings.SplitN(rest[:at], ":", 2)[0]+":xxxxx"+rest[at:] {
			t.Fatalf("password %q kept: %q -> %q", pw, s, r)
		}
	})
}

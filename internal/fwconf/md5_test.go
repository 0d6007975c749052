package fwconf

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseServerMD5(t *testing.T) {
	for _, tc := range []struct{ conf, listen, upstream string }{
		{"", "", ""},
		{"SESAME_MD5_LISTEN 0.0.0.0:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n", "0.0.0.0:2222", "127.0.0.1:22"},
		{"SESAME_MD5_LISTEN [::]:2222;\nSESAME_MD5_UPSTREAM localhost:ssh-is-not-a-number-but\n", "", ""},
		{"SESAME_MD5_LISTEN :2222\nSESAME_MD5_UPSTREAM [fd99::1]:22\n", ":2222", "[fd99::1]:22"},
	} {
		s, _, err := ParseServer("fwknopd.conf", []byte(tc.conf), Options{})
		if tc.listen == "" && tc.conf != "" {
			if err == nil {
				t.Errorf("%q accepted", tc.conf)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.conf, err)
			continue
		}
		if s.MD5Listen != tc.listen || s.MD5Upstream != tc.upstream {
			t.Errorf("%q: listen %q upstream %q", tc.conf, s.MD5Listen, s.MD5Upstream)
		}
		var b bytes.Buffer
		if err := DumpServer(&b, s); err != nil {
			t.Fatal(err)
		}
		again, _, err := ParseServer("dump", b.Bytes(), Options{})
		if err != nil || again.MD5Listen != s.MD5Listen || again.MD5Upstream != s.MD5Upstream {
			t.Errorf("dump of %q does not parse back: %v\n%s", tc.conf, err, b.String())
		}
	}
}

func TestParseServerMD5Errors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"SESAME_MD5_LISTEN :2222\n", "fwknopd.conf:1: SESAME_MD5_LISTEN: is set but SESAME_MD5_UPSTREAM is not"},
		{"SESAME_MD5_UPSTREAM 127.0.0.1:22\n", "fwknopd.conf:1: SESAME_MD5_UPSTREAM: is set but SESAME_MD5_LISTEN is not"},
		{"SESAME_MD5_LISTEN host.example:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n", "fwknopd.conf:1: SESAME_MD5_LISTEN: \"host.example:2222\": host \"host.example\" is not an IP address"},
		{"SESAME_MD5_LISTEN 0.0.0.0\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n", "fwknopd.conf:1: SESAME_MD5_LISTEN:"},
		{"SESAME_MD5_LISTEN 0.0.0.0:0\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n", "fwknopd.conf:1: SESAME_MD5_LISTEN: \"0.0.0.0:0\": port \"0\" is not a number in 1..65535"},
		{"SESAME_MD5_LISTEN [fe80::1%eth0]:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n", "fwknopd.conf:1: SESAME_MD5_LISTEN:"},
		{"SESAME_MD5_LISTEN :2222\nSESAME_MD5_UPSTREAM :22\n", "fwknopd.conf:2: SESAME_MD5_UPSTREAM: \":22\": no host"},
		{"SESAME_MD5_LISTEN :2222\nSESAME_MD5_UPSTREAM 127.0.0.1:65536\n", "fwknopd.conf:2: SESAME_MD5_UPSTREAM:"},
	} {
		_, _, err := ParseServer("fwknopd.conf", []byte(tc.conf), Options{})
		if err == nil || !errors.Is(err, ErrValue) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: err = %v\nwant prefix %q", tc.conf, err, tc.want)
		}
	}
}

func TestParseAccessMD5(t *testing.T) {
	const base = "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n"
	for _, tc := range []struct {
		extra string
		want  bool
	}{{"", false}, {"SESAME_MD5 Y\n", true}, {"SESAME_MD5 yes\n", true}, {"SESAME_MD5 N\n", false}} {
		st, _, err := ParseAccess("access.conf", []byte(base+tc.extra), Options{})
		if err != nil || len(st) != 1 {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if st[0].MD5 != tc.want {
			t.Errorf("%q: MD5 = %v", tc.extra, st[0].MD5)
		}
		var b bytes.Buffer
		if err := DumpAccess(&b, st, DumpOptions{ShowKeys: true}); err != nil {
			t.Fatal(err)
		}
		again, _, err := ParseAccess("dump", b.Bytes(), Options{})
		if err != nil || len(again) != 1 || again[0].MD5 != tc.want {
			t.Errorf("%q: dump does not parse back: %v\n%s", tc.extra, err, b.String())
		}
	}
	_, _, err := ParseAccess("access.conf", []byte(base+"SESAME_MD5 perhaps\n"), Options{})
	if err == nil || !errors.Is(err, ErrValue) || !strings.Contains(err.Error(), "access.conf:4: SESAME_MD5:") {
		t.Errorf("bad SESAME_MD5: %v", err)
	}
	// It is an access.conf variable: in fwknopd.conf it is only a warning.
	_, warns, err := ParseServer("fwknopd.conf", []byte("SESAME_MD5 Y\n"), Options{})
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].String(), "belongs in access.conf") {
		t.Errorf("SESAME_MD5 in fwknopd.conf: %v %v", warns, err)
	}
}

package fwknoptest

import (
	"testing"

	"github.com/sesame-spa/sesame/spa"
)

// TestMatrixPairwise checks that Matrix covers every allowed pair of dimension values and
// respects fwknop's constraint (no HMAC in legacy mode).
func TestMatrixPairwise(t *testing.T) {
	cases := Matrix()
	dims := func(c Case) []string {
		u, b, l := "default", "raw", "short"
		if c.User != "" {
			u = "user"
		}
		if c.Base64Keys {
			b = "b64"
		}
		if c.LongKeys {
			l = "long"
		}
		return []string{DigestNames[c.Digest], hmacName(c.HMAC), ModeNames[c.Mode], typeNames[c.Type], u, b, l}
	}
	values := [][]string{
		{"md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"},
		{"none", "md5", "sha1", "sha256", "sha384", "sha512", "sha3_256", "sha3_512"},
		{"cbc", "cfb", "ofb", "ctr", "ecb", "legacy"},
		{"access", "nat", "timeout", "nat_timeout", "localnat", "localnat_timeout", "command"},
		{"default", "user"}, {"raw", "b64"}, {"short", "long"},
	}
	seen := map[[4]string]bool{}
	names := map[string]bool{}
	for _, c := range cases {
		if c.Mode == spa.Legacy && c.HMAC != 0 {
			t.Errorf("%s: legacy mode with HMAC", c.Name)
		}
		if names[c.Name] {
			t.Errorf("duplicate case name %s", c.Name)
		}
		names[c.Name] = true
		d := dims(c)
		for i := range d {
			for j := i + 1; j < len(d); j++ {
				seen[[4]string{string(rune('0' + i)), d[i], string(rune('0' + j)), d[j]}] = true
			}
		}
		if len(c.Keys.Key) == 0 || len(c.Keys.Key) > 32 || (c.HMAC != 0) != (c.Keys.HMACKey != nil) {
			t.Errorf("%s: bad keys %+v", c.Name, c.Keys)
		}
	}
	missing := 0
	for i := range values {
		for j := i + 1; j < len(values); j++ {
			for _, a := range values[i] {
				for _, b := range values[j] {
					if i == 1 && j == 2 && a != "none" && b == "legacy" {
						continue
					}
					if !seen[[4]string{string(rune('0' + i)), a, string(rune('0' + j)), b}] {
						t.Errorf("pair not covered: dim %d=%s, dim %d=%s", i, a, j, b)
						missing++
					}
				}
			}
		}
	}
	t.Logf("%d cases, %d pairs missing", len(cases), missing)
	if len(cases) > 90 {
		t.Errorf("matrix has %d cases; the greedy cover should need about 60", len(cases))
	}
}

func hmacName(h spa.DigestType) string {
	if h == 0 {
		return "none"
	}
	return DigestNames[h]
}

package fwconf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseNATStanza(t *testing.T) {
	st, _, err := ParseAccess("a.conf", []byte("SOURCE ANY\nKEY k\nHMAC_KEY h\nFORCE_NAT 10.0.0.5   2222\nFORCE_SNAT 192.0.2.9\n"+
		"FORCE_MASQUERADE y\nDISABLE_DNAT Y\nFORWARD_ALL Y\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := st[0]
	if s.ForceNAT != netip.MustParseAddrPort("10.0.0.5:2222") || s.ForceSNAT != netip.MustParseAddr("192.0.2.9") ||
		!s.ForceMasquerade || !s.DisableDNAT || !s.ForwardAll {
		t.Errorf("stanza NAT fields: %+v %v %v %v %v", s.ForceNAT, s.ForceSNAT, s.ForceMasquerade, s.DisableDNAT, s.ForwardAll)
	}
}

// CheckNAT refuses FORCE_NAT without either switch, and the forwarding shapers without
// ENABLE_IPT_FORWARDING, naming file and line.
func TestCheckNAT(t *testing.T) {
	access := "SOURCE ANY\nKEY k\nHMAC_KEY h\nFORCE_NAT 10.0.0.5 22\nFORWARD_ALL Y\n"
	st, _, err := ParseAccess("a.conf", []byte(access), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		conf string
		want []string
	}{
		{"", []string{"a.conf:4: FORCE_NAT: stanza #1: FORCE_NAT requires ENABLE_IPT_FORWARDING or ENABLE_IPT_LOCAL_NAT",
			"a.conf:5: FORWARD_ALL: stanza #1: FORWARD_ALL requires ENABLE_IPT_FORWARDING"}},
		{"ENABLE_IPT_LOCAL_NAT Y\n", []string{"a.conf:5: FORWARD_ALL"}},
		{"ENABLE_IPT_FORWARDING Y\n", nil},
	} {
		sc, _, err := ParseServer("f.conf", []byte(tc.conf), Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = sc.CheckNAT(st)
		if tc.want == nil {
			if err != nil {
				t.Errorf("%q: %v", tc.conf, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrValue) || strings.Count(err.Error(), "\n")+1 != len(tc.want) {
			t.Errorf("%q: err = %v, want %d errors", tc.conf, err, len(tc.want))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: %v lacks %q", tc.conf, err, w)
			}
		}
	}
}

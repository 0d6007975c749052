package fwconf

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

const keys = "KEY fwknoptest\nHMAC_KEY hmactest\n"

func parseOne(t *testing.T, conf string) *Stanza {
	t.Helper()
	st, _, err := ParseAccess("access.conf", []byte(conf), Options{Location: time.UTC})
	if err != nil {
		t.Fatalf("%q: %v", conf, err)
	}
	if len(st) != 1 {
		t.Fatalf("%d stanzas", len(st))
	}
	return st[0]
}

func TestParseAccessStanza(t *testing.T) {
	s := parseOne(t, `# comment
SOURCE:  10.0.0.0/8, 192.168.1.7/255.255.255.0,  fd99::/64, 2001:db8::1
DESTINATION  10.99.0.1
OPEN_PORTS   tcp/22, UDP/53
RESTRICT_PORTS tcp/23
KEY_BASE64   Zndrbm9wdGVzdA==
HMAC_KEY_BASE64 aG1hY3Rlc3Q
HMAC_DIGEST_TYPE SHA512
ENCRYPTION_MODE ctr
FW_ACCESS_TIMEOUT 15
MAX_FW_TIMEOUT 0
REQUIRE_USERNAME root
REQUIRE_SOURCE Y
SESAME_REQUIRE_SOURCE_MATCH y
ACCESS_EXPIRE 12/31/2030
ENABLE_CMD_EXEC N
FORCE_MASQUERADE N
`)
	wantSrc := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24"),
		netip.MustParsePrefix("fd99::/64"), netip.MustParsePrefix("2001:db8::1/128")}
	if s.SourceAny || !equalPrefixes(s.Source, wantSrc) {
		t.Errorf("Source = %v any=%v", s.Source, s.SourceAny)
	}
	if !equalPrefixes(s.Destination, []netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}) {
		t.Errorf("Destination = %v", s.Destination)
	}
	if got := formatPorts(s.OpenPorts); got != "tcp/22, udp/53" {
		t.Errorf("OpenPorts = %s", got)
	}
	if got := formatPorts(s.RestrictPorts); got != "tcp/23" {
		t.Errorf("RestrictPorts = %s", got)
	}
	if string(s.Keys.Key) != "fwknoptest" || string(s.Keys.HMACKey) != "hmactest" ||
		s.Keys.HMACType != spa.SHA512 || s.Keys.Mode != spa.CTR {
		t.Errorf("Keys = %+v", s.Keys)
	}
	if s.FWAccessTimeout != 15*time.Second || s.MaxFWTimeout != 300*time.Second {
		t.Errorf("timeouts %v %v", s.FWAccessTimeout, s.MaxFWTimeout)
	}
	if s.RequireUsername != "root" || !s.RequireSourceAddress || !s.RequireSourceMatch {
		t.Errorf("flags %+v", s)
	}
	if want := time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC); !s.AccessExpire.Equal(want) {
		t.Errorf("AccessExpire = %v", s.AccessExpire)
	}
	if s.File != "access.conf" || s.Line != 2 || s.Num != 1 || s.Where["KEY_BASE64"].Line != 6 {
		t.Errorf("positions: %s:%d #%d %v", s.File, s.Line, s.Num, s.Where)
	}
}

// TestStanzaExpired: whole seconds, as fwknopd's time(NULL) > expire.
func TestStanzaExpired(t *testing.T) {
	exp := time.Date(2030, 12, 31, 0, 0, 0, 0, time.UTC)
	s := Stanza{AccessExpire: exp}
	for _, tc := range []struct {
		now  time.Time
		want bool
	}{
		{exp.Add(-time.Second), false},
		{exp, false},
		{exp.Add(999 * time.Millisecond), false}, // same second: fwknopd still accepts
		{exp.Add(time.Second), true},
		{exp.Add(time.Hour), true},
	} {
		if got := s.Expired(tc.now); got != tc.want {
			t.Errorf("Expired(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
	if (&Stanza{}).Expired(time.Unix(1<<40, 0)) {
		t.Error("a stanza without ACCESS_EXPIRE expired")
	}
	// ACCESS_EXPIRE_EPOCH gives the same boundary.
	st := parseOne(t, "SOURCE ANY\n"+keys+"ACCESS_EXPIRE_EPOCH 1924905600\n")
	if st.Expired(time.Unix(1924905600, 5e8)) || !st.Expired(time.Unix(1924905601, 0)) {
		t.Error("ACCESS_EXPIRE_EPOCH boundary wrong")
	}
}

// TestStanzaMatches covers SOURCE and DESTINATION as the server applies them: sniffed packets
// (known destination) and UDP-server packets (no destination: 0.0.0.0).
func TestStanzaMatches(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	dst := a("10.99.0.1")
	tests := []struct {
		name     string
		st       Stanza
		src, dst netip.Addr
		want     bool
	}{
		{"source prefix", Stanza{Source: []netip.Prefix{p("10.0.0.0/8")}}, a("10.1.2.3"), dst, true},
		{"source outside", Stanza{Source: []netip.Prefix{p("10.0.0.0/8")}}, a("11.1.2.3"), dst, false},
		{"IPv6 source", Stanza{Source: []netip.Prefix{p("fd99::/64")}}, a("fd99::5"), dst, true},
		{"IPv6 outside", Stanza{Source: []netip.Prefix{p("fd99::/64")}}, a("2001:db8::2"), dst, false},
		{"mapped source matches IPv4", Stanza{Source: []netip.Prefix{p("10.0.0.0/8")}}, a("::ffff:10.0.0.1"), dst, true},
		{"ANY", Stanza{SourceAny: true}, a("8.8.8.8"), dst, true},
		{"ANY IPv6", Stanza{SourceAny: true}, a("2001::1"), dst, true},
		{"no SOURCE", Stanza{}, a("10.1.2.3"), dst, false},
		{"ANY plus prefixes", Stanza{SourceAny: true, Source: []netip.Prefix{p("10.0.0.0/8")}}, a("192.0.2.1"), dst, true},
		{"destination match", Stanza{SourceAny: true, Destination: []netip.Prefix{p("10.99.0.1/32")}}, a("1.2.3.4"), dst, true},
		{"destination mismatch", Stanza{SourceAny: true, Destination: []netip.Prefix{p("10.99.0.3/32")}}, a("1.2.3.4"), dst, false},
		{"destination mapped", Stanza{SourceAny: true, Destination: []netip.Prefix{p("10.99.0.1/32")}}, a("1.2.3.4"), a("::ffff:10.99.0.1"), true},
		{"source mismatch wins over destination", Stanza{Source: []netip.Prefix{p("10.0.0.0/8")}, Destination: []netip.Prefix{p("10.99.0.1/32")}}, a("11.0.0.1"), dst, false},
		{"UDP mode, no DESTINATION", Stanza{SourceAny: true}, a("1.2.3.4"), netip.Addr{}, true},
		{"UDP mode, specific DESTINATION", Stanza{SourceAny: true, Destination: []netip.Prefix{p("10.99.0.1/32")}}, a("1.2.3.4"), netip.Addr{}, false},
		{"UDP mode, DESTINATION 0.0.0.0/0", Stanza{SourceAny: true, Destination: []netip.Prefix{netip.PrefixFrom(netip.IPv4Unspecified(), 0)}}, a("1.2.3.4"), netip.Addr{}, true},
	}
	for _, tc := range tests {
		if got := tc.st.Matches(tc.src, tc.dst); got != tc.want {
			t.Errorf("%s: Matches(%v, %v) = %v, want %v", tc.name, tc.src, tc.dst, got, tc.want)
		}
		if both := tc.st.MatchesSource(tc.src) && tc.st.MatchesDestination(tc.dst); both != tc.want {
			t.Errorf("%s: MatchesSource && MatchesDestination = %v, want %v", tc.name, both, tc.want)
		}
	}
	// And as parsed.
	s := parseOne(t, "SOURCE 10.0.0.0/8, 192.168.1.7/255.255.255.0, fd99::/64\nDESTINATION 10.99.0.1\n"+keys)
	if !s.Matches(a("192.168.1.200"), dst) || s.Matches(a("192.168.2.1"), dst) || s.Matches(a("10.0.0.1"), a("10.99.0.2")) {
		t.Error("parsed stanza matches wrongly")
	}
}

// TestStanzaCheckPorts covers RESTRICT_PORTS and OPEN_PORTS in request order, with the pair
// that decided.
func TestStanzaCheckPorts(t *testing.T) {
	pp := func(proto string, port uint16) spa.ProtoPort { return spa.ProtoPort{Proto: proto, Port: port} }
	req := func(ps ...spa.ProtoPort) []spa.ProtoPort { return ps }
	tests := []struct {
		name          string
		open, restrct []spa.ProtoPort
		req           []spa.ProtoPort
		want          PortVerdict
		bad           spa.ProtoPort
	}{
		{"no lists: anything", nil, nil, req(pp("udp", 1), pp("tcp", 65535)), PortsAllowed, spa.ProtoPort{}},
		{"open", req(pp("tcp", 22), pp("udp", 53)), nil, req(pp("tcp", 22), pp("udp", 53)), PortsAllowed, spa.ProtoPort{}},
		{"not open", req(pp("tcp", 80)), nil, req(pp("tcp", 22)), PortNotOpen, pp("tcp", 22)},
		{"one of several not open", req(pp("tcp", 22)), nil, req(pp("tcp", 22), pp("tcp", 23)), PortNotOpen, pp("tcp", 23)},
		{"protocol counts", req(pp("udp", 22)), nil, req(pp("tcp", 22)), PortNotOpen, pp("tcp", 22)},
		{"restricted", nil, req(pp("tcp", 22)), req(pp("tcp", 22)), PortRestricted, pp("tcp", 22)},
		{"restricted other protocol", nil, req(pp("udp", 22)), req(pp("tcp", 22)), PortsAllowed, spa.ProtoPort{}},
		{"restricted and open: restricted", req(pp("tcp", 22)), req(pp("tcp", 22)), req(pp("tcp", 22)), PortRestricted, pp("tcp", 22)},
		{"first denial in request order", req(pp("tcp", 22)), req(pp("tcp", 23)), req(pp("tcp", 24), pp("tcp", 23)), PortNotOpen, pp("tcp", 24)},
		{"empty request", req(pp("tcp", 22)), nil, nil, PortsAllowed, spa.ProtoPort{}},
	}
	for _, tc := range tests {
		s := Stanza{OpenPorts: tc.open, RestrictPorts: tc.restrct}
		if v, bad := s.CheckPorts(tc.req); v != tc.want || bad != tc.bad {
			t.Errorf("%s: CheckPorts = %v %v, want %v %v", tc.name, v, bad, tc.want, tc.bad)
		}
	}
	// Parsed lists compare with what spa.ParseAccess gives (lower case), whatever the case in the file.
	s := parseOne(t, "SOURCE ANY\nOPEN_PORTS TCP/22, Udp/53\n"+keys)
	acc, err := spa.ParseAccess("10.0.0.1,tcp/22,udp/53")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.CheckPorts(acc.Ports); v != PortsAllowed {
		t.Errorf("parsed OPEN_PORTS refuse a request for them: %v", v)
	}
}

// TestStanzaTimeout: the client's timeout capped at MAX_FW_TIMEOUT, else FW_ACCESS_TIMEOUT.
func TestStanzaTimeout(t *testing.T) {
	s := Stanza{FWAccessTimeout: 30 * time.Second, MaxFWTimeout: 300 * time.Second}
	for client, want := range map[uint32]time.Duration{0: 30 * time.Second, 60: 60 * time.Second,
		300: 300 * time.Second, 1000: 300 * time.Second, 65536: 300 * time.Second} {
		if got := s.Timeout(client); got != want {
			t.Errorf("Timeout(%d) = %v, want %v", client, got, want)
		}
	}
	var zero Stanza // a hand-built stanza: fwknopd's defaults
	if zero.Timeout(0) != DefaultFWAccessTimeout || zero.Timeout(1000) != DefaultMaxFWTimeout {
		t.Errorf("zero stanza: %v %v", zero.Timeout(0), zero.Timeout(1000))
	}
	// MAX_FW_TIMEOUT below FW_ACCESS_TIMEOUT: the cap still applies to client timeouts only.
	s = Stanza{FWAccessTimeout: 60 * time.Second, MaxFWTimeout: 10 * time.Second}
	if s.Timeout(0) != 60*time.Second || s.Timeout(30) != 10*time.Second {
		t.Errorf("low cap: %v %v", s.Timeout(0), s.Timeout(30))
	}
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseAccessDefaults(t *testing.T) {
	s := parseOne(t, "SOURCE ANY\nKEY fwknoptest   \nHMAC_KEY hmactest\n")
	if !s.SourceAny || !s.Matches(netip.MustParseAddr("8.8.8.8"), netip.Addr{}) || !s.Matches(netip.MustParseAddr("2001::1"), netip.Addr{}) {
		t.Error("ANY does not match")
	}
	if string(s.Keys.Key) != "fwknoptest" {
		t.Errorf("trailing blanks kept: %q", s.Keys.Key)
	}
	if s.Keys.Mode != spa.CBC || s.Keys.HMACType != spa.SHA256 || s.FWAccessTimeout != 30*time.Second || s.MaxFWTimeout != 300*time.Second {
		t.Errorf("defaults %+v", s)
	}
	if v, _ := s.CheckPorts([]spa.ProtoPort{{Proto: "udp", Port: 1}}); v != PortsAllowed || !s.Matches(netip.MustParseAddr("1.2.3.4"), netip.MustParseAddr("1.2.3.4")) {
		t.Error("unset OPEN_PORTS/DESTINATION must allow any")
	}
	// No HMAC key: no HMAC type either.
	s = parseOne(t, "SOURCE ANY\nKEY fwknoptest\n")
	if s.Keys.HMACKey != nil || s.Keys.HMACType != 0 {
		t.Errorf("keys %+v", s.Keys)
	}
}

func TestParseAccessWarnings(t *testing.T) {
	conf := "KEY early\nSOURCE ANY\n" + keys + "NOT_A_VAR x\nPCAP_INTF eth0\nMAX_FW_TIMEOUT 10\nENCRYPTION_MODE legacy\nKEY 0123456789abcdefghij\n"
	_, warns, err := ParseAccess("a.conf", []byte(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, w := range warns {
		got += w.String() + "\n"
	}
	for _, want := range []string{
		"a.conf:1: KEY: appears before the first SOURCE line; ignored",
		"a.conf:5: NOT_A_VAR: unknown variable; ignored",
		"a.conf:6: PCAP_INTF: belongs in fwknopd.conf; ignored",
		"a.conf:7: MAX_FW_TIMEOUT: is below FW_ACCESS_TIMEOUT",
		"a.conf:8: ENCRYPTION_MODE: legacy mode uses only the first 16 bytes of the 20-byte key",
		"a.conf:9: KEY: also set at a.conf:3",
		"a.conf:2: SOURCE: REQUIRE_SOURCE_ADDRESS not enabled for stanza #1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
}

func TestParseAccessErrors(t *testing.T) {
	tests := []struct {
		conf     string
		sentinel error
		want     string
	}{
		{"# only comments\n", ErrStanza, "access.conf: no SOURCE stanza found"},
		{"SOURCE ANY\nKEY_BASE64 __CHANGEME__\n", ErrPlaceholder, "access.conf:2: KEY_BASE64: still the shipped placeholder __CHANGEME__; generate keys with 'sesame keygen'"},
		{"SOURCE ANY\nKEY x\nHMAC_KEY __changeme__\n", ErrPlaceholder, "access.conf:3: HMAC_KEY:"},
		{"SOURCE ANY\nHMAC_KEY x\nFW_ACCESS_TIMEOUT 5\n\n\n\nKEY_BASE64 not*base64!\n", ErrValue, "access.conf:7: KEY_BASE64: value is not valid base64; generate keys with 'sesame keygen'"},
		{"SOURCE ANY\nKEY samekey\nHMAC_KEY samekey\n", ErrValue, "access.conf:3: HMAC_KEY: the HMAC key equals the encryption key"},
		{"SOURCE ANY\nKEY_BASE64 c2FtZWtleQ==\nHMAC_KEY samekey\n", ErrValue, "access.conf:3: HMAC_KEY: the HMAC key equals"},
		{"SOURCE ANY\nKEY 0123456789abcdef0123456789abcdefX\n", ErrValue, "access.conf:2: KEY: key is 33 bytes; Rijndael keys are 1..32 bytes"},
		{"SOURCE ANY\nKEY k\nHMAC_KEY " + strings.Repeat("h", 129) + "\n", ErrValue, "access.conf:3: HMAC_KEY: HMAC key is 129 bytes"},
		{"SOURCE ANY\nOPEN_PORTS tcp/22\n", ErrStanza, "access.conf:1: SOURCE: stanza #1 (SOURCE ANY) has no KEY or KEY_BASE64"},
		{"SOURCE ANY\n" + keys + "SOURCE 10.0.0.1\nREQUIRE_USERNAME x\nSOURCE 10.0.0.2\n" + keys, ErrStanza, "access.conf:4: SOURCE: stanza #2 (SOURCE 10.0.0.1) has no KEY"},
		{"SOURCE 10.0.0.0/33\n" + keys, ErrValue, "access.conf:1: SOURCE: prefix length \"33\" is not in [1, 32]"},
		{"SOURCE 10.0.0.0/0\n" + keys, ErrValue, "access.conf:1: SOURCE:"},
		{"SOURCE 10.0.0.0/255.0.255.0\n" + keys, ErrValue, "access.conf:1: SOURCE: mask \"255.0.255.0\" is not contiguous"},
		{"SOURCE 10.0.0.1,\n" + keys, ErrValue, "access.conf:1: SOURCE: empty element"},
		{"SOURCE host.example\n" + keys, ErrValue, "access.conf:1: SOURCE: \"host.example\" is not an IP address"},
		{"SOURCE ANY\n" + keys + "DESTINATION 1.2.3\n", ErrValue, "access.conf:4: DESTINATION:"},
		{"SOURCE ANY\n" + keys + "OPEN_PORTS tcp/22, icmp/8\n", ErrValue, "access.conf:4: OPEN_PORTS: \"icmp/8\": want tcp/PORT or udp/PORT"},
		{"SOURCE ANY\n" + keys + "OPEN_PORTS tcp/0\n", ErrValue, "access.conf:4: OPEN_PORTS: \"tcp/0\": want tcp/PORT or udp/PORT with PORT 1..65535"},
		{"SOURCE ANY\n" + keys + "RESTRICT_PORTS tcp/22,,udp/53\n", ErrValue, "access.conf:4: RESTRICT_PORTS: empty element"},
		{"SOURCE ANY\n" + keys + "RESTRICT_PORTS tcp/65536\n", ErrValue, "access.conf:4: RESTRICT_PORTS:"},
		{"SOURCE ANY\n" + keys + "HMAC_DIGEST_TYPE sha224\n", ErrValue, "access.conf:4: HMAC_DIGEST_TYPE: unknown digest type"},
		{"SOURCE ANY\n" + keys + "ENCRYPTION_MODE Asymmetric\n", ErrUnsupported, "access.conf:4: ENCRYPTION_MODE: ENCRYPTION_MODE Asymmetric is not a Rijndael mode"},
		{"SOURCE ANY\n" + keys + "ENCRYPTION_MODE pcbc\n", ErrUnsupported, "access.conf:4: ENCRYPTION_MODE:"},
		{"SOURCE ANY\n" + keys + "ENCRYPTION_MODE xts\n", ErrValue, "access.conf:4: ENCRYPTION_MODE:"},
		{"SOURCE ANY\n" + keys + "FW_ACCESS_TIMEOUT 8388609\n", ErrValue, "access.conf:4: FW_ACCESS_TIMEOUT:"},
		{"SOURCE ANY\n" + keys + "MAX_FW_TIMEOUT -5\n", ErrValue, "access.conf:4: MAX_FW_TIMEOUT:"},
		{"SOURCE ANY\n" + keys + "REQUIRE_SOURCE_ADDRESS 1\n", ErrValue, "access.conf:4: REQUIRE_SOURCE_ADDRESS: \"1\" is not Y or N"},
		{"SOURCE ANY\n" + keys + "ACCESS_EXPIRE 2030-12-31\n", ErrValue, "access.conf:4: ACCESS_EXPIRE: \"2030-12-31\" is not MM/DD/YYYY"},
		{"SOURCE ANY\n" + keys + "ACCESS_EXPIRE 02/30/2030\n", ErrValue, "access.conf:4: ACCESS_EXPIRE:"},
		{"SOURCE ANY\n" + keys + "ACCESS_EXPIRE_EPOCH soon\n", ErrValue, "access.conf:4: ACCESS_EXPIRE_EPOCH:"},
		{"SOURCE ANY\nGPG_ALLOW_NO_PW Y\n", ErrStanza, "access.conf:1: SOURCE: GnuPG stanza #1 (SOURCE ANY) checks signatures but lists no signer; add GPG_REMOTE_ID"},
		{"SOURCE ANY\n" + keys + "GPG_REMOTE_ID 1234ABC\n", ErrValue, "access.conf:4: GPG_REMOTE_ID: \"1234ABC\" is not a list of key IDs"},
		{"SOURCE ANY\n" + keys + "GPG_FINGERPRINT_ID 1234ABCD\n", ErrValue, "access.conf:4: GPG_FINGERPRINT_ID: \"1234ABCD\" is not a list of fingerprints"},
		{"SOURCE ANY\n" + keys + "GPG_ALLOW_NO_PW maybe\n", ErrValue, "access.conf:4: GPG_ALLOW_NO_PW: \"maybe\" is not Y or N"},
		{"SOURCE ANY\n" + keys + "GPG_DECRYPT_PW __CHANGEME__\n", ErrValue, "access.conf:4: GPG_DECRYPT_PW: no passphrase"},
		{"SOURCE ANY\nHMAC_KEY samepw\nGPG_DECRYPT_PW samepw\nGPG_REMOTE_ID 1234ABCD\n", ErrValue, "access.conf:3: GPG_DECRYPT_PW: the HMAC key equals GPG_DECRYPT_PW"},
		{"SOURCE ANY\n" + keys + "CMD_CYCLE_OPEN /bin/true\n", ErrValue, "access.conf:4: CMD_CYCLE_OPEN:"},
		{"SOURCE ANY\n" + keys + "FORCE_NAT 10.0.0.5\n", ErrValue, "access.conf:4: FORCE_NAT: \"10.0.0.5\" is not \"<ip> <port>\""},
		{"SOURCE ANY\n" + keys + "FORCE_NAT 10.0.0.5 0\n", ErrValue, "access.conf:4: FORCE_NAT: port \"0\" is not 1..65535"},
		{"SOURCE ANY\n" + keys + "FORCE_SNAT host\n", ErrValue, "access.conf:4: FORCE_SNAT:"},
		{"SOURCE ANY\n" + keys + "FORWARD_ALL maybe\n", ErrValue, "access.conf:4: FORWARD_ALL:"},
		{"SOURCE ANY\n" + keys + "DISABLE_DNAT maybe\n", ErrValue, "access.conf:4: DISABLE_DNAT:"},
		{"SOURCE ANY\n" + keys + "KEY\n", ErrSyntax, "access.conf:4: KEY: no value after the name"},
		{"SOURCE ANY\n" + keys + "%include other.conf\n", ErrInclude, "access.conf:4: %include: cannot read other.conf"},
	}
	for _, tt := range tests {
		_, _, err := ParseAccess("access.conf", []byte(tt.conf), Options{})
		if err == nil || !errors.Is(err, tt.sentinel) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q:\n err = %v\nwant prefix %q (%v)", tt.conf, err, tt.want, tt.sentinel)
		}
	}
}

func TestParseAccessMultiple(t *testing.T) {
	st, _, err := ParseAccess("a", []byte("SOURCE 10.0.0.1\n"+keys+"SOURCE ANY\nKEY other\nREQUIRE_USERNAME bob\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Num != 1 || st[1].Num != 2 || st[1].Line != 4 || st[1].RequireUsername != "bob" || st[0].RequireUsername != "" {
		t.Fatalf("stanzas %+v %+v", st[0], st[1])
	}
}

// writeFiles creates files (mode 0600) under a temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestIncludes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"access.conf": "SOURCE 10.0.0.1\n" + keys + "%include sub/one.conf\nREQUIRE_USERNAME alice\n%include_folder d\n",
		"sub/one.conf": "SOURCE 10.0.0.2\n%include_keys ../keys/k2\n" +
			"%include two.conf\n",
		"sub/two.conf":   "SOURCE 10.0.0.3\n" + keys,
		"keys/k2":        "# keys only\nKEY: k2key\nHMAC_KEY_BASE64 aG1hYzI=\nOPEN_PORTS tcp/1\n",
		"d/b.conf":       "SOURCE 10.0.0.5\n" + keys,
		"d/a.conf":       "SOURCE 10.0.0.4\n" + keys,
		"d/ignored.txt":  "SOURCE 10.0.0.9\n" + keys,
		"d/.hidden.conf": "SOURCE 10.0.0.9\n" + keys,
	})
	st, warns, err := LoadAccess(filepath.Join(dir, "access.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for _, s := range st {
		srcs = append(srcs, s.SourceText)
	}
	if got := strings.Join(srcs, " "); got != "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5" {
		t.Fatalf("load order %s", got)
	}
	// After an %include, the including file's lines go on applying to its own stanza.
	if st[0].RequireUsername != "alice" || st[1].RequireUsername != "" {
		t.Errorf("REQUIRE_USERNAME went to the wrong stanza")
	}
	if string(st[1].Keys.Key) != "k2key" || string(st[1].Keys.HMACKey) != "hmac2" || len(st[1].OpenPorts) != 0 {
		t.Errorf("include_keys: %+v", st[1].Keys)
	}
	if o := st[1].Where["KEY"]; o.File != filepath.Join(dir, "keys/k2") || o.Line != 2 {
		t.Errorf("include_keys origin %+v", o)
	}
	if st[2].File != filepath.Join(dir, "sub/two.conf") || st[3].Num != 4 {
		t.Errorf("stanza file/num: %s #%d", st[2].File, st[3].Num)
	}
	found := false
	for _, w := range warns {
		if strings.Contains(w.String(), "k2:4: OPEN_PORTS: only KEY, KEY_BASE64, HMAC_KEY and HMAC_KEY_BASE64 are taken") {
			found = true
		}
	}
	if !found {
		t.Errorf("no warning for OPEN_PORTS in the keys file: %v", warns)
	}

	// The folder loader gives the same a, b order.
	st, _, err = LoadAccessFolder(filepath.Join(dir, "d"), Options{})
	if err != nil || len(st) != 2 || st[0].SourceText != "10.0.0.4" {
		t.Fatalf("LoadAccessFolder: %v %v", st, err)
	}
	srv := &Server{AccessFolder: filepath.Join(dir, "d")}
	if st, _, err := srv.LoadAccess(Options{}); err != nil || len(st) != 2 {
		t.Errorf("Server.LoadAccess with ACCESS_FOLDER: %v", err)
	}
}

func TestIncludeDepth(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"l1.conf":     "SOURCE ANY\n" + keys + "%include l2.conf\n",
		"l2.conf":     "%include l3.conf\n",
		"l3.conf":     "SOURCE 10.0.0.3\n" + keys,
		"deep1":       "%include deep2\n",
		"deep2":       "%include deep3\n",
		"deep3":       "\n%include l3.conf\n",
		"loop":        "SOURCE ANY\n" + keys + "%include loop\n",
		"dirinc":      "%include_folder sub\n",
		"sub/x.conf":  "%include_folder ../sub2\n",
		"sub2/y.conf": "%include_folder ../sub3\n",
	})
	if st, _, err := LoadAccess(filepath.Join(dir, "l1.conf"), Options{}); err != nil || len(st) != 2 {
		t.Errorf("3 levels must load: %v", err)
	}
	for file, want := range map[string]string{
		"deep1":  "deep3:2: %include: refusing to nest access files more than 3 deep",
		"loop":   "loop:4: %include: refusing to nest",
		"dirinc": "y.conf:1: %include_folder: refusing to nest",
	} {
		_, _, err := LoadAccess(filepath.Join(dir, file), Options{})
		if err == nil || !errors.Is(err, ErrInclude) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", file, err, want)
		}
	}
}

func TestPermissionWarnings(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"access.conf":  "SOURCE ANY\n%include_keys keys\n",
		"keys":         keys,
		"fwknopd.conf": "PCAP_INTF lo\n",
	})
	os.Chmod(filepath.Join(dir, "keys"), 0o644)
	os.Chmod(filepath.Join(dir, "fwknopd.conf"), 0o640)
	_, warns, err := LoadAccess(filepath.Join(dir, "access.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(warns, filepath.Join(dir, "keys")+": permissions 0644 let group or other users access it; chmod 600") {
		t.Errorf("no permission warning for the keys file: %v", warns)
	}
	if hasWarning(warns, "access.conf: permissions") {
		t.Errorf("warning for a 0600 file: %v", warns)
	}
	_, warns, err = LoadServer(filepath.Join(dir, "fwknopd.conf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasWarning(warns, "fwknopd.conf: permissions 0640") {
		t.Errorf("no permission warning for fwknopd.conf: %v", warns)
	}
	if _, _, err := LoadServer(filepath.Join(dir, "missing.conf"), Options{}); err == nil {
		t.Error("missing file accepted")
	}
	if _, _, err := LoadAccess(dir, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as access file: %v", err)
	}
}

func hasWarning(warns []Warning, sub string) bool {
	for _, w := range warns {
		if strings.Contains(w.String(), sub) {
			return true
		}
	}
	return false
}

func TestLoad(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"fwknopd.conf": "PCAP_INTF lo\nACCESS_FILE /nonexistent/access.conf\n",
		"access.conf":  "SOURCE ANY\n" + keys + "REQUIRE_SOURCE_ADDRESS Y\n",
		"bad.conf":     "SOURCE ANY\nKEY_BASE64 __CHANGEME__\n",
	})
	conf := filepath.Join(dir, "fwknopd.conf")
	if _, _, _, err := Load(conf, Options{}); err == nil || !strings.Contains(err.Error(), "/nonexistent/access.conf") {
		t.Errorf("missing access file: %v", err)
	}
	srv, st, warns, err := Load(conf, Options{Overrides: map[string]string{"ACCESS_FILE": filepath.Join(dir, "access.conf")}})
	if err != nil || srv.PcapIntf != "lo" || len(st) != 1 || len(warns) != 0 {
		t.Errorf("Load: %v %v %v %v", srv, st, warns, err)
	}
	_, _, _, err = Load(conf, Options{Overrides: map[string]string{"ACCESS_FILE": filepath.Join(dir, "bad.conf")}})
	if !errors.Is(err, ErrPlaceholder) {
		t.Errorf("bad access file: %v", err)
	}
}

package fwconf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// fwknopdDump runs the real `fwknopd -D` (Debian 2.6.10) on the files in a throwaway network
// namespace and returns its server settings, its access stanzas, and whether it accepted them.
func fwknopdDump(t *testing.T, ns *nstest.NS, conf, access string) (map[string]string, []map[string]string, bool) {
	t.Helper()
	cmd := ns.Command("fwknopd", "-c", conf, "-a", access, "-D")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, nil, false
	}
	server := map[string]string{}
	var stanzas []map[string]string
	srvLine := regexp.MustCompile(`^\s*\d+\.\s+(\S+)\s+=\s+'(.*)'$`)
	srcLine := regexp.MustCompile(`^SOURCE \(\d+\):\s+(.*)$`)
	accLine := regexp.MustCompile(`^\s*([A-Z_0-9 ()]+):\s+(.*)$`)
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		l := sc.Text()
		if m := srvLine.FindStringSubmatch(l); m != nil {
			server[m[1]] = strings.TrimSuffix(m[2], "<not set>")
		} else if m := srcLine.FindStringSubmatch(l); m != nil {
			stanzas = append(stanzas, map[string]string{"SOURCE": m[1]})
		} else if m := accLine.FindStringSubmatch(l); m != nil && len(stanzas) > 0 {
			stanzas[len(stanzas)-1][strings.TrimSpace(m[1])] = strings.TrimSuffix(m[2], "<not set>")
		}
	}
	return server, stanzas, true
}

// TestIntegrationFwknopdAgrees parses configurations with both fwknopd 2.6.10 and fwconf and
// compares the effective values, and the accept/refuse verdicts.
func TestIntegrationFwknopdAgrees(t *testing.T) {
	nstest.Require(t, "fwknopd")
	ns := nstest.New(t)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := write("fwknopd.conf", `PCAP_INTF                   vsrv;
ENABLE_UDP_SERVER           Y;
UDPSERV_PORT                62202
MAX_SPA_PACKET_AGE          60
ENABLE_SPA_PACKET_AGING     y
FWKNOP_RUN_DIR              `+dir+`/run
DIGEST_FILE                 $FWKNOP_RUN_DIR/dc.cache
PCAP_FILTER                 udp port 62202 or udp port 62203  ;
FLUSH_IPT_AT_INIT           Y
FLUSH_IPT_AT_EXIT           N
ENABLE_DESTINATION_RULE     N
`)
	keysFile := write("keys", "KEY_BASE64 Zndrbm9wdGVzdDI=\nHMAC_KEY_BASE64 aG1hY3Rlc3QyMjI=\n")
	write("inc.conf", "SOURCE: 192.168.7.0/24\n%include_keys "+keysFile+"\nMAX_FW_TIMEOUT 100\n")
	access := write("access.conf", `# test stanzas
SOURCE              10.0.0.0/8, 192.168.1.7/255.255.255.0
OPEN_PORTS          tcp/22, udp/53
KEY                 fwknoptest
HMAC_KEY            hmactest
HMAC_DIGEST_TYPE    sha384
FW_ACCESS_TIMEOUT   15
REQUIRE_USERNAME    root
REQUIRE_SOURCE      Y
ACCESS_EXPIRE       12/31/2030
%include `+filepath.Join(dir, "inc.conf")+`
SOURCE ANY
KEY_BASE64          AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
ENCRYPTION_MODE     legacy
ACCESS_EXPIRE_EPOCH 1924905600
`)
	fwSrv, fwSt, ok := fwknopdDump(t, ns, conf, access)
	if !ok {
		t.Fatal("fwknopd refused the test configuration")
	}
	srv, _, err := LoadServer(conf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"PCAP_INTF", "PCAP_FILTER", "ENABLE_UDP_SERVER", "UDPSERV_PORT", "MAX_SPA_PACKET_AGE",
		"ENABLE_SPA_PACKET_AGING", "ENABLE_DIGEST_PERSISTENCE", "DIGEST_FILE", "FWKNOP_RUN_DIR", "FWKNOP_PID_FILE",
		"FLUSH_IPT_AT_INIT", "FLUSH_IPT_AT_EXIT", "ENABLE_DESTINATION_RULE", "FWKNOP_CONF_DIR", "PCAP_DISPATCH_COUNT"} {
		// 2.6.10 keeps trailing blanks (PCAP_FILTER here); fwconf trims them as 2.6.11 does.
		if got, _ := srv.value(name); got != strings.TrimRight(fwSrv[name], " \t") {
			t.Errorf("%s: fwconf %q, fwknopd %q", name, got, fwSrv[name])
		}
	}
	st, _, err := LoadAccess(access, Options{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != len(fwSt) {
		t.Fatalf("fwconf %d stanzas, fwknopd %d", len(st), len(fwSt))
	}
	for i, s := range st {
		fw := fwSt[i]
		mine := map[string]string{
			"SOURCE":                 s.SourceText,
			"OPEN_PORTS":             s.Raw["OPEN_PORTS"],
			"KEY_LEN":                strconv.Itoa(len(s.Keys.Key)),
			"HMAC_KEY_LEN":           strconv.Itoa(len(s.Keys.HMACKey)),
			"FW_ACCESS_TIMEOUT":      strconv.Itoa(int(s.FWAccessTimeout.Seconds())),
			"MAX_FW_TIMEOUT":         strconv.Itoa(int(s.MaxFWTimeout.Seconds())),
			"REQUIRE_USERNAME":       s.RequireUsername,
			"REQUIRE_SOURCE_ADDRESS": map[bool]string{true: "Yes", false: "No"}[s.RequireSourceAddress],
			"ACCESS_EXPIRE":          "",
		}
		if s.Keys.HMACKey != nil {
			mine["HMAC_DIGEST_TYPE"] = strconv.Itoa(int(s.Keys.HMACType))
		}
		if !s.AccessExpire.IsZero() {
			mine["ACCESS_EXPIRE"] = s.AccessExpire.UTC().Format("Mon Jan _2 15:04:05 2006")
		}
		for k, v := range mine {
			if fw[k] != v {
				t.Errorf("stanza #%d %s: fwconf %q, fwknopd %q", i+1, k, v, fw[k])
			}
		}
	}

	// Verdicts: what fwknopd refuses, fwconf refuses, and the reverse, except for the
	// documented differences.
	cases := []struct {
		access string
		same   bool // false: a deliberate difference, asserted below
	}{
		{"SOURCE ANY\nKEY abc\n", true},
		{"SOURCE ANY\nKEY same\nHMAC_KEY same\n", true},
		{"SOURCE ANY\nKEY_BASE64 __CHANGEME__\nHMAC_KEY_BASE64 __CHANGEME__\n", true},
		{"SOURCE ANY\nKEY abc\nHMAC_KEY __CHANGEME__\n", true},
		{"SOURCE 10.0.0.0/33\nKEY a\n", true},
		{"SOURCE ANY\nKEY_BASE64 not*b64\n", true},
		{"SOURCE ANY\nOPEN_PORTS tcp/22\n", true},
		{"SOURCE ANY\nKEY abc\nENCRYPTION_MODE foo\n", true},
		{"SOURCE ANY\nKEY abc\nOPEN_PORTS icmp/2\n", true},
		{"SOURCE ANY\nKEY abc\nHMAC_DIGEST_TYPE sha224\n", true},
		{"SOURCE ANY\nKEY abc\nFW_ACCESS_TIMEOUT 9999999999\n", true},
		{"SOURCE ANY\nKEY abc\nACCESS_EXPIRE never\n", true},
		{"# nothing\n", true},
		{"SOURCE: 10.1.1.1, 10.2.0.0/16\nKEY: abc\nHMAC_KEY: hmac\nOPEN_PORTS tcp/22,udp/1194\n", true},
		// sesame refuses non-contiguous masks fwknopd accepts.
		{"SOURCE 1.2.3.4/255.0.255.0\nKEY abc\n", false},
		// GnuPG: a stanza needs a signer list unless GPG_DISABLE_SIG Y; GPG_REMOTE_ID without
		// GnuPG keys is harmless.
		{"SOURCE ANY\nKEY abc\nGPG_REMOTE_ID 1234ABCD\n", true},
		{"SOURCE ANY\nGPG_ALLOW_NO_PW Y\n", true},
		{"SOURCE ANY\nGPG_ALLOW_NO_PW Y\nGPG_DISABLE_SIG Y\n", true},
		{"SOURCE ANY\nGPG_DECRYPT_PW pw\nGPG_FINGERPRINT_ID 4517B33E0B11F039FBCEC5035F32373D48290C42\n", true},
	}
	for i, c := range cases {
		a := write(fmt.Sprintf("case%d.conf", i), c.access)
		_, _, fwOK := fwknopdDump(t, ns, conf, a)
		_, _, err := LoadAccess(a, Options{})
		if mineOK := err == nil; (mineOK == fwOK) != c.same {
			t.Errorf("%q: fwknopd accepts=%v, fwconf err=%v", c.access, fwOK, err)
		}
	}

	// Include depth: fwknopd stops at 3 levels, so does fwconf.
	write("d3.conf", "SOURCE 10.0.0.3\nKEY abc\n")
	write("d2.conf", "%include "+filepath.Join(dir, "d3.conf")+"\n")
	write("d1.conf", "%include "+filepath.Join(dir, "d2.conf")+"\n")
	for _, top := range []string{"d1.conf", "d2.conf"} {
		p := filepath.Join(dir, top)
		_, _, fwOK := fwknopdDump(t, ns, conf, p)
		_, _, err := LoadAccess(p, Options{})
		if fwOK != (err == nil) {
			t.Errorf("%s: fwknopd accepts=%v, fwconf err=%v", top, fwOK, err)
		}
	}

	// 2.6.10 keeps trailing blanks in values; fwconf trims them as 2.6.11 does.
	a := write("trail.conf", "SOURCE ANY\nKEY fwknoptest   \n")
	_, fwSt, _ = fwknopdDump(t, ns, conf, a)
	st, _, err = LoadAccess(a, Options{})
	if err != nil || len(fwSt) != 1 || fwSt[0]["KEY_LEN"] != "13" || len(st[0].Keys.Key) != 10 {
		t.Errorf("trailing blanks: fwknopd KEY_LEN %v, fwconf %v (%v)", fwSt, st, err)
	}
}

// TestDebianShippedFiles reads the files Debian's fwknop-server installs, when present.
func TestDebianShippedFiles(t *testing.T) {
	const conf, access = "/etc/fwknop/fwknopd.conf", "/etc/fwknop/access.conf"
	if _, err := os.Stat(access); err != nil {
		if nstest.InCI() {
			t.Fatalf("fwknop-server is not installed: %v", err)
		}
		t.Skip("fwknop-server is not installed")
	}
	if _, err := os.Open(access); err != nil {
		t.Skipf("cannot read %s: %v", access, err)
	}
	srv, warns, err := LoadServer(conf, Options{})
	if err != nil {
		t.Fatalf("shipped fwknopd.conf: %v", err)
	}
	for _, w := range warns {
		if !strings.Contains(w.Msg, "permissions") && !strings.Contains(w.Msg, "owned by") {
			t.Errorf("unexpected warning: %v", w)
		}
	}
	if srv.PcapIntf != "eth0" || srv.DigestFile != "/run/fwknop/digest.cache" || srv.AccessFile != access {
		t.Errorf("defaults: %v", srv)
	}
	_, _, err = LoadAccess(access, Options{})
	if err == nil || !strings.Contains(err.Error(), "__CHANGEME__") || !strings.Contains(err.Error(), "sesame keygen") ||
		!regexp.MustCompile(`^/etc/fwknop/access\.conf:\d+: (HMAC_)?KEY_BASE64: `).MatchString(err.Error()) {
		t.Errorf("shipped access.conf: err = %v, want the __CHANGEME__ refusal with file:line", err)
	}
}

// TestIntegrationFwknopdSyntaxCompat pins fwknopd 2.6.10's behaviour on the points where
// sesame follows it (a $NAME it cannot expand, a name without a value in fwknopd.conf, a
// relative FWKNOP_RUN_DIR, CRLF line ends) and where sesame deliberately differs (relative
// includes, a byte-order mark), next to what fwconf does.
func TestIntegrationFwknopdSyntaxCompat(t *testing.T) {
	nstest.Require(t, "fwknopd")
	ns := nstest.New(t)
	dir := writeFiles(t, map[string]string{
		"access.conf":   "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n",
		"rel.conf":      "SOURCE ANY\n%include_keys sub/keys\n",
		"sub/keys":      "KEY_BASE64 Zndrbm9wdGVzdA==\nHMAC_KEY_BASE64 aG1hY3Rlc3Q=\n",
		"crlf.conf":     "SOURCE ANY\r\nKEY fwknoptest\r\nHMAC_KEY hmactest\r\nFW_ACCESS_TIMEOUT 15\r\n",
		"bomacc.conf":   bom + "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n",
		"conf/bom.conf": bom + "PCAP_INTF vsrv\r\nMAX_SPA_PACKET_AGE 60\r\n",
	})
	path := func(n string) string { return filepath.Join(dir, n) }
	write := func(name, text string) string {
		if err := os.WriteFile(path(name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path(name)
	}
	access := path("access.conf")

	// $NAME: fwknopd's LOCALE after the line, and fwconf's.
	for i, v := range []string{"$FWKNOP_RUN_DIR/x", "$PCAP_INTF$PCAP_INTF", "$lower", "$/x", "$NOPE/x", "$Ab", "$_X", "$", "$ENABLE_UDP_SERVER"} {
		conf := write(fmt.Sprintf("var%d.conf", i), "PCAP_INTF lo\nFWKNOP_RUN_DIR /r\nLOCALE "+v+"\n")
		fw, _, ok := fwknopdDump(t, ns, conf, access)
		srv, _, err := LoadServer(conf, Options{})
		if !ok || err != nil || fw["LOCALE"] != srv.Raw["LOCALE"] {
			t.Errorf("LOCALE %s: fwknopd %q (ok %v), fwconf %q (%v)", v, fw["LOCALE"], ok, srv.Raw["LOCALE"], err)
		}
	}
	// A name without a value: fwknopd.conf goes on.
	conf := write("bare.conf", "PCAP_INTF lo\nNFQ_CHAIN\nMAX_SPA_PACKET_AGE 30\n")
	fw, _, ok := fwknopdDump(t, ns, conf, access)
	if srv, _, err := LoadServer(conf, Options{}); !ok || err != nil || fw["MAX_SPA_PACKET_AGE"] != "30" || srv.MaxSPAPacketAge.Seconds() != 30 {
		t.Errorf("bare name: fwknopd ok %v %v, fwconf %v", ok, fw["MAX_SPA_PACKET_AGE"], err)
	}
	// A relative FWKNOP_RUN_DIR: both refuse.
	conf = write("relrun.conf", "PCAP_INTF lo\nFWKNOP_RUN_DIR run\n")
	if _, _, ok := fwknopdDump(t, ns, conf, access); ok {
		t.Error("fwknopd accepted a relative FWKNOP_RUN_DIR")
	}
	if _, _, err := LoadServer(conf, Options{}); err == nil || !strings.Contains(err.Error(), conf+":2: FWKNOP_RUN_DIR: ") {
		t.Errorf("fwconf: %v", err)
	}
	// CRLF: both read it alike.
	plain := write("plain.conf", "PCAP_INTF lo\n")
	_, fwSt, ok := fwknopdDump(t, ns, plain, path("crlf.conf"))
	st, _, err := LoadAccess(path("crlf.conf"), Options{})
	if !ok || err != nil || len(fwSt) != 1 || fwSt[0]["KEY_LEN"] != "10" || fwSt[0]["FW_ACCESS_TIMEOUT"] != "15" ||
		len(st[0].Keys.Key) != 10 || st[0].FWAccessTimeout.Seconds() != 15 {
		t.Errorf("CRLF access.conf: fwknopd %v (ok %v), fwconf %v (%v)", fwSt, ok, st, err)
	}
	// A byte-order mark: fwknopd takes it for part of the first name (the line is lost, an
	// access.conf has no SOURCE); fwconf skips it.
	fw, _, ok = fwknopdDump(t, ns, path("conf/bom.conf"), access)
	srv, _, err := LoadServer(path("conf/bom.conf"), Options{})
	if !ok || fw["PCAP_INTF"] != "eth0" || fw["MAX_SPA_PACKET_AGE"] != "60" || err != nil || srv.PcapIntf != "vsrv" {
		t.Errorf("BOM fwknopd.conf: fwknopd PCAP_INTF %q (ok %v), fwconf %v (%v)", fw["PCAP_INTF"], ok, srv, err)
	}
	if _, _, ok := fwknopdDump(t, ns, plain, path("bomacc.conf")); ok {
		t.Error("fwknopd accepted an access.conf starting with a byte-order mark")
	}
	if _, _, err := LoadAccess(path("bomacc.conf"), Options{}); err != nil {
		t.Errorf("fwconf: BOM access.conf: %v", err)
	}
	// Relative %include_keys: fwknopd opens it from its working directory, fwconf beside the
	// including file.
	elsewhere := t.TempDir()
	for _, cwd := range []string{dir, elsewhere} {
		cmd := ns.Command("fwknopd", "-c", plain, "-a", path("rel.conf"), "-D")
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		if fwOK := err == nil && strings.Contains(string(out), "KEY_LEN:  10"); fwOK != (cwd == dir) {
			t.Errorf("fwknopd from %s: accepted %v:\n%s", cwd, fwOK, out)
		}
		if st, _, err := LoadAccess(path("rel.conf"), Options{cwd: cwd}); err != nil || len(st[0].Keys.Key) != 10 {
			t.Errorf("fwconf from %s: %v", cwd, err)
		}
	}
}

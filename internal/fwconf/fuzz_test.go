package fwconf

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// stripComments drops comment lines, which name the source file and line.
func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

var serverSeeds = []string{
	"",
	"PCAP_INTF vsrv;\nENABLE_UDP_SERVER Y\nFWKNOP_RUN_DIR /tmp/r\nDIGEST_FILE $FWKNOP_RUN_DIR/dc\n",
	"MAX_SPA_PACKET_AGE 0\n",
	"SESAME_GUARD_PORTS tcp/22, udp/53\nSESAME_HOST_CHAIN nft inet filter input\nSESAME_REPLAY_MARGIN 5\n",
	"SESAME_MD5_LISTEN [::]:2222\nSESAME_MD5_UPSTREAM 127.0.0.1:22\n",
	"SESAME_FLEET_REDIS rediss://gw:pw@10.0.0.9:6380/1\nSESAME_FLEET_KEY_FILE /k\nSESAME_FLEET_ON_ERROR local\nSESAME_FLEET_TIMEOUT 50\nSESAME_FLEET_TLS_CA /ca\n",
	"VERBOSE Y\nPCAP_FILTER udp port 1 ; x\r\n# c\n; c\n",
	"IPT_INPUT_ACCESS ACCEPT,filter,INPUT,1,FWKNOP_INPUT,1\nX $\n",
	"PCAP_INTF $PCAP_INTF\n",
	"\xef\xbb\xbfPCAP_INTF vsrv\r\nFWKNOP_RUN_DIR /r\r\nDIGEST_FILE $FWKNOP_RUN_DIR/d\r\nLOCALE $lower\r\nNFQ_CHAIN\r\n",
	"FWKNOP_RUN_DIR run\nENABLE_IPT_LOCAL_NAT Y\nSNAT_TRANSLATE_IP x\nLOCALE $NOPE\n",
}

var accessSeeds = []string{
	"SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\n",
	"SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\nSESAME_MD5 Y\n",
	"SOURCE: 10.0.0.0/8, 1.2.3.4/255.255.0.0, fd00::/8\nKEY_BASE64 Zndrbm9wdGVzdA==\nHMAC_KEY_BASE64 aG1hY3Rlc3Q\nOPEN_PORTS tcp/22\n",
	"SOURCE ANY\nKEY k\nENCRYPTION_MODE legacy\nACCESS_EXPIRE 01/02/2030\nACCESS_EXPIRE_EPOCH 5\nDESTINATION ANY, 10.0.0.1\n",
	"SOURCE ANY\nKEY_BASE64 __CHANGEME__\n",
	"%include x\nSOURCE ANY\n%include_keys y\n%include_folder z\n",
	"SOURCE ANY\nKEY a\nREQUIRE_USERNAME bob smith\nFW_ACCESS_TIMEOUT 0\nMAX_FW_TIMEOUT 8388608\nRESTRICT_PORTS udp/0\n",
	"\xef\xbb\xbfSOURCE: 10.0.0.0/8\r\nKEY fwknoptest\r\nHMAC_KEY hmactest\r\n\r\nSOURCE ANY\r\nKEY_BASE64 __CHANGEME__\r\nHMAC_KEY\r\n",
}

// FuzzLexLine: the line lexer never panics and its value never holds a terminator.
func FuzzLexLine(f *testing.F) {
	for _, s := range append(serverSeeds, accessSeeds...) {
		for _, l := range strings.Split(s, "\n") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, line string) {
		name, value, ok, _ := lexLine(line)
		if ok && (name == "" || value == "" || strings.ContainsAny(value, ";\r\n") || strings.Trim(value, " \t\v\f") != value) {
			t.Fatalf("lexLine(%q) = %q, %q", line, name, value)
		}
	})
}

// FuzzParseServer: never panics; an accepted configuration dumps to text that parses back to
// the same configuration.
func FuzzParseServer(f *testing.F) {
	for _, s := range serverSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, err := ParseServer("f", data, Options{})
		if err != nil {
			var e *Error
			if !asError(err, &e) || e.File != "f" {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			return
		}
		var dump bytes.Buffer
		DumpServer(&dump, s)
		s2, _, err := ParseServer("f", dump.Bytes(), Options{})
		if err != nil {
			t.Fatalf("dump does not parse: %v\n%s", err, dump.String())
		}
		if s.String() != s2.String() {
			t.Fatalf("round trip changed the config:\n%s\n%s", s, s2)
		}
	})
}

// FuzzParseAccess: never panics; accepted stanzas dump (with keys) to text that parses back to
// the same stanzas.
func FuzzParseAccess(f *testing.F) {
	for _, s := range accessSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{Location: time.UTC}
		st, _, err := ParseAccess("a", data, opts)
		if err != nil {
			var e *Error
			if !asError(err, &e) || e.File == "" {
				t.Fatalf("error %v is not an *Error naming the file", err)
			}
			return
		}
		var d1, d2 bytes.Buffer
		DumpAccess(&d1, st, DumpOptions{ShowKeys: true})
		st2, _, err := ParseAccess("a", d1.Bytes(), opts)
		if err != nil {
			t.Fatalf("dump does not parse: %v\n%s", err, d1.String())
		}
		DumpAccess(&d2, st2, DumpOptions{ShowKeys: true})
		if stripComments(d1.String()) != stripComments(d2.String()) {
			t.Fatalf("round trip changed the stanzas:\n%s\n%s", d1.String(), d2.String())
		}
	})
}

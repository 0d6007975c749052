package fwconf

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

func warned(warns []Warning, file string, line int, name, text string) bool {
	return slices.ContainsFunc(warns, func(w Warning) bool {
		return w.File == file && w.Line == line && w.Var == name && strings.Contains(w.Msg, text)
	})
}

// Relative %include and %include_keys paths are read beside the including file, whatever the
// working directory, with a warning naming the file fwknopd would read instead.
func TestRelativeIncludes(t *testing.T) {
	elsewhere := t.TempDir()
	dir := writeFiles(t, map[string]string{
		"access.conf":  "SOURCE ANY\n%include_keys sub/keys\n%include sub/inc.conf\n",
		"sub/keys":     "KEY_BASE64 Zndrbm9wdGVzdA==\nHMAC_KEY_BASE64 aG1hY3Rlc3Q=\n",
		"sub/inc.conf": "SOURCE 10.0.0.5\nKEY k2\nHMAC_KEY h2\n",
	})
	access := filepath.Join(dir, "access.conf")
	st, warns, err := LoadAccess(access, Options{cwd: elsewhere})
	if err != nil || len(st) != 2 || string(st[0].Keys.Key) != "fwknoptest" || st[1].SourceText != "10.0.0.5" {
		t.Fatalf("stanzas %v, err %v", st, err)
	}
	for line, name := range map[int]string{2: "%include_keys", 3: "%include"} {
		if !warned(warns, access, line, name, "fwknopd would read "+filepath.Join(elsewhere, "sub")) {
			t.Errorf("no warning for line %d naming fwknopd's path: %v", line, warns)
		}
	}
	// Started from the file's own directory both read the same file: no warning.
	_, warns, _ = LoadAccess(access, Options{cwd: dir})
	if slices.ContainsFunc(warns, func(w Warning) bool { return strings.Contains(w.Msg, "relative path") }) {
		t.Errorf("warning although both read the same file: %v", warns)
	}
}

// A $NAME that fwknopd cannot expand makes it ignore the line; sesame warns with file:line and
// ignores it too. '$' before anything but A-Z or '_' is kept as written.
func TestVariableReferences(t *testing.T) {
	tests := []struct {
		value string
		want  string // "" = line ignored
	}{
		{"$FWKNOP_RUN_DIR/x", "/r/x"},
		{"$FWKNOP_RUN_DIRx", "/rx"},
		{"$PCAP_INTF$PCAP_INTF", "lo$PCAP_INTF"},
		{"$PCAP_INTF2", "lo2"},
		{"$lower", "$lower"},
		{"$/x", "$/x"},
		{"$$", "$$"},
		{"a$PCAP_INTF", "a$PCAP_INTF"},
		{"$NOPE/x", ""},
		{"$Ab", ""},
		{"$_X", ""},
		{"$", ""},
		{"$ENABLE_UDP_SERVER", ""}, // a variable left at its default is not "set earlier"
	}
	for _, tt := range tests {
		s, warns, err := ParseServer("f.conf", []byte("PCAP_INTF lo\nFWKNOP_RUN_DIR /r\nLOCALE "+tt.value+"\n"), Options{})
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		got, set := s.Raw["LOCALE"]
		if tt.want == "" {
			if set || !warned(warns, "f.conf", 3, "LOCALE", "is not set earlier in the file; line ignored") {
				t.Errorf("%q: LOCALE %q (set %v), warnings %v; want the line ignored with a warning", tt.value, got, set, warns)
			}
		} else if got != tt.want {
			t.Errorf("%q: LOCALE %q, want %q", tt.value, got, tt.want)
		}
	}
}

// A name without a value is ignored with a warning in fwknopd.conf (fwknopd goes on) and is an
// error in access.conf (fwknopd stops).
func TestNameWithoutValue(t *testing.T) {
	s, warns, err := ParseServer("f.conf", []byte("PCAP_INTF\nNFQ_CHAIN\n"), Options{})
	if err != nil || s.PcapIntf != "eth0" || !warned(warns, "f.conf", 2, "NFQ_CHAIN", "no value after the name; line ignored") {
		t.Errorf("fwknopd.conf: %v %v %v", s, warns, err)
	}
	_, _, err = ParseAccess("a.conf", []byte("SOURCE ANY\nKEY k\nHMAC_KEY\n"), Options{})
	if !errors.Is(err, ErrSyntax) || !strings.HasPrefix(err.Error(), "a.conf:3: HMAC_KEY: no value") {
		t.Errorf("access.conf: %v", err)
	}
}

// A UTF-8 byte-order mark and CRLF line ends are read in both files.
func TestBOMAndCRLF(t *testing.T) {
	for _, prefix := range []string{"", bom} {
		conf := prefix + "PCAP_INTF vsrv\r\n# comment\r\n\r\nMAX_SPA_PACKET_AGE 60;\r\nFWKNOP_RUN_DIR /tmp/r\r\nDIGEST_FILE $FWKNOP_RUN_DIR/d\r\n"
		s, warns, err := ParseServer("f.conf", []byte(conf), Options{})
		if err != nil || len(warns) != 0 || s.PcapIntf != "vsrv" || s.MaxSPAPacketAge.Seconds() != 60 || s.DigestFile != "/tmp/r/d" {
			t.Errorf("fwknopd.conf (mark %q): %v, warnings %v, err %v", prefix, s, warns, err)
		}
		access := prefix + "SOURCE: 10.0.0.0/8\r\nKEY fwknoptest \r\nHMAC_KEY_BASE64 aG1hY3Rlc3Q=\r\nOPEN_PORTS tcp/22\r\n\r\nSOURCE ANY\r\nKEY other\r\nHMAC_KEY hmac2\r\nREQUIRE_SOURCE_ADDRESS Y\r\n"
		st, _, err := ParseAccess("a.conf", []byte(access), Options{})
		if err != nil || len(st) != 2 || string(st[0].Keys.Key) != "fwknoptest" || string(st[0].Keys.HMACKey) != "hmactest" ||
			st[0].SourceText != "10.0.0.0/8" || len(st[0].OpenPorts) != 1 || !st[1].RequireSourceAddress || st[1].Line != 6 {
			t.Errorf("access.conf (mark %q): %v, err %v", prefix, st, err)
		}
	}
	// Only a mark at the very start is skipped.
	if _, warns, _ := ParseServer("f.conf", []byte("VERBOSE 1\n"+bom+"PCAP_INTF x\n"), Options{}); !warned(warns, "f.conf", 2, bom+"PCAP_INTF", "unknown variable") {
		t.Errorf("a mark inside the file: %v", warns)
	}
}

// Every refused variable of a file is reported in one run, each with file, line and fix.
func TestAllErrorsInOneRun(t *testing.T) {
	conf := "ENABLE_IPT_FORWARDING x\nPCAP_INTF vsrv\nENABLE_IPT_OUTPUT Y\nUDPSERV_PORT 0\nFWKNOP_RUN_DIR run\nAFL_PKT_FILE /x\n"
	_, _, err := ParseServer("f.conf", []byte(conf), Options{})
	for _, want := range []string{"f.conf:1: ENABLE_IPT_FORWARDING: ", "f.conf:3: ENABLE_IPT_OUTPUT: ", "f.conf:4: UDPSERV_PORT: ",
		"f.conf:5: FWKNOP_RUN_DIR: ", "f.conf:6: AFL_PKT_FILE: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("fwknopd.conf errors lack %q:\n%v", want, err)
		}
	}
	access := "SOURCE ANY\nKEY_BASE64 __CHANGEME__\nHMAC_KEY_BASE64 __CHANGEME__\nFORCE_NAT 1.2.3.4\n" +
		"SOURCE 10.0.0.0/33\nKEY k\n" +
		"SOURCE ANY\nKEY k\nHMAC_KEY\nOPEN_PORTS icmp/1\n" +
		"SOURCE ANY\n" // no key: a stanza error, reported with the others
	_, _, err = ParseAccess("a.conf", []byte(access), Options{})
	want := []string{"a.conf:2: KEY_BASE64: still the shipped placeholder", "a.conf:3: HMAC_KEY_BASE64: still the shipped placeholder",
		"a.conf:4: FORCE_NAT: ", "a.conf:5: SOURCE: ", "a.conf:9: HMAC_KEY: no value", "a.conf:10: OPEN_PORTS: ", "a.conf:11: SOURCE: stanza #4"}
	if err == nil || strings.Count(err.Error(), "\n")+1 != len(want) {
		t.Fatalf("access.conf: want %d errors, got:\n%v", len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("access.conf errors lack %q:\n%v", w, err)
		}
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "a.conf" || e.Line != 2 || !errors.Is(err, ErrPlaceholder) || !errors.Is(err, ErrValue) {
		t.Errorf("errors.As/Is on the joined errors: %+v", e)
	}
}

// Variables at fwknopd's default (or that nothing reads while their switch is off) do not stop
// the server, even when sesame refuses other values.
func TestHarmlessDefaults(t *testing.T) {
	conf := "GPG_HOME_DIR /root/.gnupg\nGPG_EXE /usr/bin/gpg\nIPT_DNAT_ACCESS DNAT, nat, PREROUTING, 1, MINE, 1\nIPT_SNAT_ACCESS SNAT, nat, POSTROUTING, 1, MINE, 1\n" +
		"ENABLE_NFQ_CAPTURE Y\nIPT_FORWARD_ACCESS ACCEPT, filter, FORWARD, 1, FWKNOP_FORWARD, 1\n"
	defaults := ""
	for name, v := range Variables {
		if v.Scope&InServer != 0 && v.Support == DefaultOnly {
			defaults += name + " " + v.Default + "\n"
		}
	}
	if _, _, err := ParseServer("f.conf", []byte(defaults), Options{}); err != nil {
		t.Errorf("fwknopd.conf defaults: %v", err)
	}
	if _, warns, err := ParseServer("f.conf", []byte(conf), Options{}); err != nil {
		t.Errorf("fwknopd.conf: %v", err)
	} else if !warned(warns, "f.conf", 3, "IPT_DNAT_ACCESS", "while ENABLE_IPT_FORWARDING is N") ||
		!warned(warns, "f.conf", 4, "IPT_SNAT_ACCESS", "while ENABLE_IPT_SNAT is N") {
		t.Errorf("warnings %v", warns)
	}
	access := "SOURCE ANY\nKEY k\nHMAC_KEY h\nCMD_CYCLE_TIMER 0\n"
	for name, v := range Variables {
		if v.Scope&InAccess != 0 && v.Support == DefaultOnly {
			access += name + " " + v.Default + "\n"
		}
	}
	if _, _, err := ParseAccess("a.conf", []byte(access), Options{}); err != nil {
		t.Errorf("access.conf: %v", err)
	}
	// With their switches on, both are refused, each with its line.
	_, _, err := ParseServer("f.conf", []byte("ENABLE_IPT_FORWARDING Y\nENABLE_IPT_SNAT Y\nIPT_DNAT_ACCESS DNAT, nat, PREROUTING, 1, MINE, 1\nIPT_SNAT_ACCESS SNAT, nat, POSTROUTING, 1, MINE, 1\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), "f.conf:3: IPT_DNAT_ACCESS") || !strings.Contains(err.Error(), "f.conf:4: IPT_SNAT_ACCESS") {
		t.Errorf("forwarding on: %v", err)
	}
}

// uncommented returns Debian's shipped file with every commented "#NAME value" line
// uncommented, written to dir; skipped (failed under CI) without fwknop-server.
func uncommented(t *testing.T, shipped, dir string) (path string, text string) {
	t.Helper()
	data, err := os.ReadFile(shipped)
	if err != nil {
		if nstest.InCI() {
			t.Fatalf("fwknop-server is not installed: %v", err)
		}
		t.Skipf("fwknop-server is not installed: %v", err)
	}
	text = regexp.MustCompile(`(?m)^#([A-Z%])`).ReplaceAllString(string(data), "$1")
	path = filepath.Join(dir, filepath.Base(shipped))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, text
}

// lineOf is the 1-based number of the first line of text starting with prefix.
func lineOf(t *testing.T, text, prefix string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return i + 1
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return 0
}

// Debian's shipped fwknopd.conf and access.conf with all their commented defaults uncommented:
// fwknopd.conf starts (only warnings), and access.conf is refused for exactly its three
// placeholders, all reported in one run with file, line and fix.
func TestDebianFilesUncommented(t *testing.T) {
	dir := t.TempDir()
	conf, ctext := uncommented(t, "/etc/fwknop/fwknopd.conf", dir)
	access, atext := uncommented(t, "/etc/fwknop/access.conf", dir)
	srv, warns, err := LoadServer(conf, Options{})
	if err != nil {
		t.Fatalf("uncommented fwknopd.conf: %v", err)
	}
	if srv.RunDir != "/var/run/fwknop" || srv.DigestFile != "/var/run/fwknop/digest.cache" {
		t.Errorf("settings: %v", srv)
	}
	if l := lineOf(t, ctext, "NFQ_CHAIN"); !warned(warns, conf, l, "NFQ_CHAIN", "no value") {
		t.Errorf("no warning for the bare NFQ_CHAIN line %d: %v", l, warns)
	}
	_, _, err = LoadAccess(access, Options{})
	if err == nil {
		t.Fatal("uncommented access.conf accepted")
	}
	msgs := strings.Split(err.Error(), "\n")
	want := []string{"KEY_BASE64", "HMAC_KEY_BASE64", "GPG_DECRYPT_PW"}
	if len(msgs) != len(want) {
		t.Fatalf("want %d errors, got:\n%v", len(want), err)
	}
	for i, name := range want {
		prefix := access + ":" + strconv.Itoa(lineOf(t, atext, name+" ")) + ": " + name + ": "
		if !strings.HasPrefix(msgs[i], prefix) || !strings.Contains(msgs[i], "; ") {
			t.Errorf("error %d = %q, want prefix %q and a fix", i, msgs[i], prefix)
		}
	}
}

// A FIFO named as a configuration file is refused at once, not waited on.
func TestFIFORefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo.conf")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := LoadServer(path, Options{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("LoadServer(FIFO) = %v, want 'not a regular file'", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("LoadServer blocked on a FIFO")
	}
}

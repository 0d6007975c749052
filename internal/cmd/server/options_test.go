package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// confFiles writes a minimal fwknopd.conf (plus extra lines) and access.conf in a new
// directory and returns their paths.
func confFiles(t *testing.T, extra string) (dir, conf, access string) {
	t.Helper()
	dir = t.TempDir()
	conf, access = filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	if err := os.WriteFile(conf, []byte("PCAP_INTF lo;\nFWKNOP_RUN_DIR "+dir+";\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(access, []byte("SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\nOPEN_PORTS tcp/22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, conf, access
}

// Refusals fwknopd makes (checked against fwknopd 2.6.10 by TestIntegrationOptionsLikeFwknopd):
// exit 1 and a message naming the option and the fix.
func TestOptionRefusals(t *testing.T) {
	dir, conf, access := confFiles(t, "")
	rel, _, _ := confFiles(t, "")
	os.WriteFile(filepath.Join(rel, "fwknopd.conf"), []byte("PCAP_INTF lo;\nFWKNOP_RUN_DIR run;\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-K", "-R"}, "mutually exclusive"},
		{[]string{"-D", "-S"}, "mutually exclusive"},
		{[]string{"--access-folder", ""}, "--access-folder: empty path"},
		{[]string{"-r", "run", "--exit-parse-config"}, `command line: FWKNOP_RUN_DIR: "run" is not an absolute path`},
		{[]string{"-c", filepath.Join(rel, "fwknopd.conf"), "--exit-parse-config"}, `fwknopd.conf:2: FWKNOP_RUN_DIR: "run" is not an absolute path`},
		{[]string{"-O", filepath.Join(dir, "missing.conf"), "--exit-parse-config"}, "-O/--override-config " + filepath.Join(dir, "missing.conf")},
		{[]string{"--gpg-home-dir", filepath.Join(dir, "nothing"), "--exit-parse-config"}, "--gpg-home-dir"},
		{[]string{"--gpg-exe", filepath.Join(dir, "nothing"), "--exit-parse-config"}, "--gpg-exe"},
		{[]string{"--sudo-exe", conf, "--exit-parse-config"}, "--sudo-exe " + conf + ": not an executable file"},
		{[]string{"-A"}, "--afl-fuzzing is not supported yet"},
		{[]string{"--dump-serv-err-codes"}, "--dump-serv-err-codes is not supported yet"},
		{[]string{"--fault-injection-tag", "x"}, "--fault-injection-tag is not supported yet"},
		{[]string{"-C", "-1"}, "-C/--packet-limit"},
	} {
		args := append([]string{"-c", conf, "-a", access}, c.args...)
		if c.args[0] == "-c" {
			args = append([]string{"-a", access}, c.args...)
		}
		code, out, errOut := run(args...)
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.args, code, out, errOut, c.want)
		}
	}
	if code, _, errOut := run("--no-such-flag"); code != 2 || !strings.Contains(errOut, "unknown flag") {
		t.Errorf("an option fwknopd lacks too: exit %d, %q", code, errOut)
	}
}

// Options fwknopd has and sesame accepts with no effect, or with one.
func TestOptionsAccepted(t *testing.T) {
	dir, conf, access := confFiles(t, "")
	for _, args := range [][]string{
		{"--no-ipt-check-support"}, {"--no-firewd-check-support"}, {"-l", "C"}, {"--syslog-enable"},
		{"--pcap-any-direction"}, {"--gpg-home-dir", dir}, {"--gpg-exe", "/bin/sh"}, {"--sudo-exe", "/bin/sh"},
	} {
		all := append([]string{"-c", conf, "-a", access, "--exit-parse-config"}, args...)
		if code, out, errOut := run(all...); code != 0 || !strings.Contains(out, "configuration OK") {
			t.Errorf("%q: exit %d, %q %q", args, code, out, errOut)
		}
	}
	o, _, err := parseFlags([]string{"-c", conf, "-a", access, "--pcap-any-direction", "-l", "de_DE.UTF-8", "--gpg-home-dir", dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := loadSettings(o)
	if err != nil {
		t.Fatal(err)
	}
	if !s.anyDirection || s.locale != "de_DE.UTF-8" || s.sc.GPGHomeDir != dir {
		t.Errorf("anyDirection %v, locale %q, GPG_HOME_DIR %q", s.anyDirection, s.locale, s.sc.GPGHomeDir)
	}
	if s.syslogIdentity != "fwknopd" || s.syslogFacility != "LOG_DAEMON" {
		t.Errorf("syslog defaults %q %q", s.syslogIdentity, s.syslogFacility)
	}
}

// -O files apply over fwknopd.conf in order (later wins), and the command line over them all,
// as in fwknopd.
func TestOverrideConfig(t *testing.T) {
	dir, conf, access := confFiles(t, "UDPSERV_PORT 1000;\nSYSLOG_FACILITY LOG_LOCAL1;\n")
	ov1, ov2 := filepath.Join(dir, "ov1.conf"), filepath.Join(dir, "ov2.conf")
	os.WriteFile(ov1, []byte("PCAP_INTF ov1;\nUDPSERV_PORT 1111;\n"), 0o600)
	os.WriteFile(ov2, []byte("PCAP_INTF ov2;\nSYSLOG_IDENTITY spa;\n"), 0o600)
	load := func(args ...string) *settings {
		t.Helper()
		o, _, err := parseFlags(append([]string{"-c", conf, "-a", access}, args...), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := loadSettings(o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := load("-O", ov1+","+ov2)
	if s.pcapIntf != "ov2" || s.udpPort != 1111 || s.syslogIdentity != "spa" || s.syslogFacility != "LOG_LOCAL1" {
		t.Errorf("-O: intf %q port %d syslog %q %q", s.pcapIntf, s.udpPort, s.syslogIdentity, s.syslogFacility)
	}
	if s := load("-O", ov1+","+ov2, "-i", "cmdline"); s.pcapIntf != "cmdline" {
		t.Errorf("-i with -O: intf %q", s.pcapIntf)
	}
	os.WriteFile(ov2, []byte("SYSLOG_FACILITY LOG_NOPE;\n"), 0o600)
	if code, _, errOut := run("-c", conf, "-a", access, "-O", ov2, "--exit-parse-config"); code != 1 || !strings.Contains(errOut, "SYSLOG_FACILITY") {
		t.Errorf("bad facility: %d %q", code, errOut)
	}
}

// fwknopd runs -K, -R, -S and --fw-list* and exits, whatever --exit-parse-config says; -D
// dumps and exits 0.
func TestExitParseConfigOrder(t *testing.T) {
	_, conf, access := confFiles(t, "SESAME_TABLE sesame_optorder_test;\n")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-K"}, 1, "no running server"},
		{[]string{"-R"}, 1, "no running server"},
		{[]string{"-S"}, 1, "No running sesame server"},
		{[]string{"-D"}, 0, "Current fwknopd config settings:"},
	} {
		code, out, errOut := run(append([]string{"-c", conf, "-a", access, "--exit-parse-config"}, c.args...)...)
		if code != c.code || !strings.Contains(out+errOut, c.want) || strings.Contains(out, "configuration OK") {
			t.Errorf("%q --exit-parse-config: exit %d, %q %q; want exit %d and %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
}

// --exit-parse-digest-cache loads DIGEST_FILE, skips corrupt lines (exit 0, as fwknopd) and
// reports the count.
func TestExitParseDigestCache(t *testing.T) {
	dir, conf, access := confFiles(t, "")
	digest := filepath.Join(dir, "digest.cache")
	os.WriteFile(digest, []byte("# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n"+
		"rVUlFOXmS4wIV/tlu/cYZbv1r9NiK8Vee/9XYQNEf58 17 10.99.0.2 55383 0.0.0.0 62201 1795432102\n"+
		"garbage line here\n"), 0o600)
	code, out, errOut := run("-c", conf, "-a", access, "--exit-parse-digest-cache")
	if code != 0 || !strings.Contains(out, "Skipped 1 invalid digest file entry") ||
		!strings.Contains(out, "Using Digest Cache: '"+digest+"' (entry count = 1)") || !strings.Contains(out, "Digest cache parsed, exiting.") {
		t.Errorf("exit %d, %q %q", code, out, errOut)
	}
	os.Remove(digest)
	if code, out, _ := run("-c", conf, "-a", access, "--exit-parse-digest-cache"); code != 0 || !strings.Contains(out, "(entry count = 0)") {
		t.Errorf("missing file: exit %d, %q", code, out)
	}
	if _, err := os.Stat(digest); err != nil {
		t.Errorf("a missing digest file is created, as fwknopd does: %v", err)
	}
}

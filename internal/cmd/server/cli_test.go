package server

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = Main(args, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestKeyGen(t *testing.T) {
	code, out, errOut := run("--key-gen")
	m := regexp.MustCompile(`^KEY_BASE64: (\S+)\nHMAC_KEY_BASE64: (\S+)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("code %d, out %q, err %q", code, out, errOut)
	}
	k, err1 := base64.StdEncoding.DecodeString(m[1])
	h, err2 := base64.StdEncoding.DecodeString(m[2])
	if err1 != nil || err2 != nil || len(k) != 32 || len(h) != 64 {
		t.Errorf("key %d bytes (%v), hmac %d bytes (%v)", len(k), err1, len(h), err2)
	}
	if code, _, _ := run("--key-gen", "--key-len", "33"); code == 0 {
		t.Error("--key-len 33 accepted")
	}
	if _, out, _ := run("--key-gen", "--hmac-digest-type", "sha512"); !regexp.MustCompile(`HMAC_KEY_BASE64: \S{172}`).MatchString(out) {
		t.Errorf("sha512 key: %q", out)
	}
}

func TestFlagsAndConfig(t *testing.T) {
	if code, out, _ := run("-V"); code != 0 || !strings.Contains(out, "fwknopd") {
		t.Errorf("-V: %d %q", code, out)
	}
	if code, out, _ := run("-h"); code != 0 || !strings.Contains(out, "--exit-parse-config") {
		t.Errorf("-h: %d %q", code, out)
	}
	if code, _, _ := run("--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	dir := t.TempDir()
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	os.WriteFile(conf, []byte("FWKNOP_RUN_DIR "+dir+";\nENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n"), 0o600)
	os.WriteFile(access, []byte("SOURCE 10.0.0.0/8\nKEY secret\nHMAC_KEY hmacsecret\nOPEN_PORTS tcp/22\n"), 0o600)
	code, out, errOut := run("-c", conf, "-a", access, "--exit-parse-config")
	if code != 0 || !strings.Contains(out, "1 access stanza") {
		t.Errorf("--exit-parse-config: %d %q %q", code, out, errOut)
	}
	code, out, _ = run("-c", conf, "-a", access, "-D")
	if code != 0 || !strings.Contains(out, "SOURCE (1):  10.0.0.0/8\n") || !strings.Contains(out, " 19. ENABLE_UDP_SERVER            =  'Y'\n") ||
		strings.Contains(out, "hmacsecret") || strings.Contains(out, "udp:62201") {
		t.Errorf("-D: %d %q", code, out)
	}
	// -v -D adds sesame's own view: what it derives, and the files as it would write them.
	code, out, _ = run("-c", conf, "-a", access, "-D", "-v")
	if code != 0 || !strings.Contains(out, "SOURCE 10.0.0.0/8") || !strings.Contains(out, "udp:62201") ||
		strings.Contains(out, "hmacsecret") {
		t.Errorf("-v -D: %d %q", code, out)
	}
	// -i overrides PCAP_INTF and -U forces UDP mode, as in fwknopd.
	o := &options{configFile: conf, accessFile: access, intf: "eth9"}
	s, err := loadSettings(o)
	if err != nil || s.pcapIntf != "eth9" || !s.udpServer || s.pidFile == "" {
		t.Errorf("settings %+v, %v", s, err)
	}
	code, out, _ = run("-c", conf, "-a", access, "-S")
	if code != 1 || !strings.Contains(out, "No running") {
		t.Errorf("-S: %d %q", code, out)
	}
	// A broken access.conf is refused with file:line.
	os.WriteFile(access, []byte("SOURCE 10.0.0.0/8\nKEY secret\nFW_ACCESS_TIMEOUT soon\n"), 0o600)
	code, _, errOut = run("-c", conf, "-a", access, "--exit-parse-config")
	if code == 0 || !strings.Contains(errOut, "access.conf:3") {
		t.Errorf("bad access.conf: %d %q", code, errOut)
	}
}

func TestPIDFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run", "x.pid")
	remove, err := writePID(p)
	if err != nil {
		t.Fatal(err)
	}
	if pid, _ := readPID(p); pid != os.Getpid() {
		t.Errorf("readPID = %d", pid)
	}
	if _, err := writePID(p); err == nil { // the lock is held (per open file, so even by us)
		t.Error("writePID over a held PID file succeeded")
	}
	remove()
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("PID file not removed: %v", err)
	}
	os.WriteFile(p, []byte("1\n"), 0o600) // names a live pid but nobody holds it: stale
	if pid, err := readPID(p); pid != 0 || err != nil {
		t.Errorf("readPID of a stale file = %d, %v", pid, err)
	}
	remove, err = writePID(p)
	if err != nil {
		t.Fatalf("stale PID file: %v", err)
	}
	remove()
}

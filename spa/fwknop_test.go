package spa

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Vectors are generated with Debian's fwknop client (fwknop -T -B FILE -v): go test ./spa
// -run TestFwknopVectors -update regenerates testdata/fwknop-vectors.json.
var update = flag.Bool("update", false, "regenerate testdata/fwknop-vectors.json with the real fwknop client")

const vectorsFile = "testdata/fwknop-vectors.json"

// vector is one packet made by the real client, with the field values it printed.
type vector struct {
	Name       string
	Args       []string
	Key        string // raw, or base64 when KeyB64
	KeyB64     bool
	HMACKey    string
	HMACKeyB64 bool
	HMACType   string // "" = no HMAC
	Mode       string
	Wire       string
	Fields     map[string]string // fwknop's -v dump, first block
}

// vectorCase describes how to run the client for one vector.
type vectorCase struct {
	name, key, hmacKey, hmacType, mode string
	keyB64, hmacKeyB64                 bool
	extra                              []string
}

var vectorCases = []vectorCase{
	{name: "cbc_sha256_hmac_sha256", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc"},
	{name: "cbc_no_hmac", key: "fwknoptest", mode: "cbc"},
	{name: "ecb", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "ecb"},
	{name: "cfb", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cfb"},
	{name: "ofb", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "ofb"},
	{name: "ctr", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "ctr"},
	{name: "legacy", key: "fwknoptest", mode: "legacy"},
	{name: "legacy_long_key", key: "0123456789abcdefghij", mode: "legacy"},
	{name: "digest_md5", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "md5"}},
	{name: "digest_sha1", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "sha1"}},
	{name: "digest_sha384", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "sha384"}},
	{name: "digest_sha512", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "sha512"}},
	{name: "digest_sha3_256", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "sha3_256"}},
	{name: "digest_sha3_512", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-m", "sha3_512"}},
	{name: "hmac_md5", key: "fwknoptest", hmacKey: "hmactest", hmacType: "md5", mode: "cbc"},
	{name: "hmac_sha1", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha1", mode: "cbc"},
	{name: "hmac_sha384", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha384", mode: "cbc"},
	{name: "hmac_sha512", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha512", mode: "cbc"},
	{name: "hmac_sha3_256", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha3_256", mode: "cbc"},
	{name: "hmac_sha3_512", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha3_512", mode: "cbc"},
	{name: "base64_keys", key: "jphMJlN9xwQ0nlm4jqzjYXa7SEbrCAwUFoxFQEleocc=", keyB64: true,
		hmacKey: "AQjJEg0K5gnJ2tv4D0S+8Pq3pSg1ylrvZQEqUPOlnUOgjXlDo66vBQp5bMkS0HjCZGyh4wVmU9vWg0PBCOjzog==", hmacKeyB64: true,
		hmacType: "sha256", mode: "cbc"},
	{name: "key_32_bytes", key: "0123456789abcdef0123456789abcdef", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc"},
	{name: "type0_command", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"--server-cmd", "echo fwknop-vector"}},
	{name: "type2_nat", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-N", "10.99.0.5:22"}},
	{name: "type3_timeout", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-f", "60"}},
	{name: "type4_nat_timeout", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-N", "10.99.0.5:2222", "-f", "45"}},
	{name: "type5_nat_local", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"--nat-local"}},
	{name: "type6_nat_local_timeout", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"--nat-local", "-f", "65536"}},
	{name: "multi_port_user", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha512", mode: "ctr",
		extra: []string{"-A", "tcp/22,udp/53,tcp/65535", "-U", "a-very-long_user.name~29chars"}},
	{name: "source_allow_ip", key: "fwknoptest", hmacKey: "hmactest", hmacType: "sha256", mode: "cbc", extra: []string{"-s"}},
}

// fwknopArgs builds the client command line for c (without -B).
func fwknopArgs(c vectorCase) []string {
	args := []string{"-T", "--no-save-args", "--no-rc-file", "-v", "-D", "10.99.0.1", "-M", c.mode}
	if !contains(c.extra, "-A") {
		args = append(args, "-A", "tcp/22")
	}
	if !contains(c.extra, "-s") {
		args = append(args, "-a", "10.99.0.2")
	}
	if !contains(c.extra, "-U") {
		args = append(args, "-U", "root")
	}
	if c.keyB64 {
		args = append(args, "--key-base64-rijndael", c.key)
	} else {
		args = append(args, "--key-rijndael", c.key)
	}
	if c.hmacType != "" {
		args = append(args, "--use-hmac", "--hmac-digest-type", c.hmacType)
		if c.hmacKeyB64 {
			args = append(args, "--key-base64-hmac", c.hmacKey)
		} else {
			args = append(args, "--key-hmac", c.hmacKey)
		}
	}
	return append(args, c.extra...)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// requireFwknop returns the client's path; without it the test skips, or fails under CI.
func requireFwknop(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("fwknop")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("fwknop client not installed (apt-get install fwknop-client): %v", err)
		}
		t.Skipf("fwknop client not installed: %v", err)
	}
	return p
}

// runFwknop runs the real client for c and returns the vector it produced.
func runFwknop(t *testing.T, bin string, c vectorCase) vector {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "spa.pkt")
	args := append(fwknopArgs(c), "-B", out)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		t.Fatalf("fwknop %s: %v\n%s", strings.Join(args, " "), err, buf.String())
	}
	wire, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return vector{
		Name: c.name, Args: fwknopArgs(c), Key: c.key, KeyB64: c.keyB64, HMACKey: c.hmacKey,
		HMACKeyB64: c.hmacKeyB64, HMACType: c.hmacType, Mode: c.mode,
		Wire: strings.TrimSpace(string(wire)), Fields: parseDump(buf.String()),
	}
}

// parseDump reads the first "SPA Field Values" block of fwknop -v output into name → value.
func parseDump(s string) map[string]string {
	f := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "SPA Field Values") {
			if in {
				break
			}
			in = true
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			if len(f) > 0 && strings.TrimSpace(line) == "" {
				break
			}
			continue
		}
		f[strings.TrimSpace(k)] = v
	}
	return f
}

// keys returns the Keys a server stanza would hold for v.
func (v vector) keys(t *testing.T) Keys {
	t.Helper()
	k, err := DecodeKey(v.Key, v.KeyB64)
	if err != nil {
		t.Fatal(err)
	}
	mode, err := ParseMode(v.Mode)
	if err != nil {
		t.Fatal(err)
	}
	keys := Keys{Key: k, Mode: mode}
	if v.HMACType != "" {
		if keys.HMACKey, err = DecodeKey(v.HMACKey, v.HMACKeyB64); err != nil {
			t.Fatal(err)
		}
		if keys.HMACType, err = ParseDigestType(v.HMACType); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// checkFields compares a decoded message with the client's dump.
func checkFields(t *testing.T, m *Message, f map[string]string) {
	t.Helper()
	num := func(s string) string { n, _, _ := strings.Cut(s, " "); return n }
	nul := func(s string) string {
		if s == "<NULL>" {
			return ""
		}
		return s
	}
	got := map[string]string{
		"Random Value":    m.Random,
		"Username":        m.Username,
		"Timestamp":       strconv.FormatInt(m.Timestamp, 10),
		"FKO Version":     m.Version,
		"Message Type":    strconv.Itoa(int(m.Type)) + " (" + m.Type.String() + ")",
		"Message String":  m.Message,
		"Nat Access":      m.NATAccess,
		"Server Auth":     m.ServerAuth,
		"Client Timeout":  strconv.FormatUint(uint64(m.ClientTimeout), 10),
		"Digest Type":     num(f["Digest Type"]),
		"SPA Data Digest": m.Digest,
	}
	want := map[string]string{
		"Random Value": f["Random Value"], "Username": f["Username"], "Timestamp": f["Timestamp"],
		"FKO Version": f["FKO Version"], "Message Type": f["Message Type"],
		"Message String": f["Message String"], "Nat Access": nul(f["Nat Access"]),
		"Server Auth": nul(f["Server Auth"]), "Client Timeout": f["Client Timeout"],
		"Digest Type": strconv.Itoa(int(m.DigestType)), "SPA Data Digest": f["SPA Data Digest"],
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("%s: decoded %q, fwknop printed %q", k, got[k], want[k])
		}
	}
	if d := f["Digest Type"]; !strings.Contains(d, "("+m.DigestType.String()+")") {
		t.Errorf("digest type %v, fwknop printed %q", m.DigestType, d)
	}
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	b, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < len(vectorCases) {
		t.Fatalf("%s has %d vectors, want %d", vectorsFile, len(vs), len(vectorCases))
	}
	return vs
}

// TestFwknopVectorsUpdate regenerates the recorded vectors when -update is given.
func TestFwknopVectorsUpdate(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate " + vectorsFile)
	}
	bin := requireFwknop(t)
	var vs []vector
	for _, c := range vectorCases {
		vs = append(vs, runFwknop(t, bin, c))
	}
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vectorsFile, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

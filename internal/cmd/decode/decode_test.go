package decode

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
)

const vectorsPath = "../../fwknoptest/" + fwknoptest.VectorsFile

// keyFlags returns decode flags for v, with the key forms the recorded case used.
func keyFlags(t *testing.T, v fwknoptest.Vector) []string {
	t.Helper()
	return keyFlagsOf(v)
}

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// Every recorded real-client packet decodes, and the dump sesame prints parses to exactly
// the fields the client printed (types, mode, HMAC, encoded data included).
func TestDumpMatchesClient(t *testing.T) {
	vs, err := fwknoptest.LoadVectors(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		code, out, errs := run(t, "  "+v.Wire+"\n", keyFlags(t, v)...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", v.Name, code, errs)
			continue
		}
		d, err := fwknoptest.ParseDump(out)
		if err != nil {
			t.Errorf("%s: %v\n%s", v.Name, err, out)
			continue
		}
		if d != v.Fields {
			t.Errorf("%s: dump\n got %+v\nwant %+v", v.Name, d, v.Fields)
		}
		if !strings.Contains(out, "  Replay Digest: ") {
			t.Errorf("%s: no replay digest line", v.Name)
		}
	}
}

func TestJSON(t *testing.T) {
	vs, err := fwknoptest.LoadVectors(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"client_timeout", "digest", "digest_type", "message", "message_type",
		"nat_access", "random_value", "replay_digest", "server_auth", "timestamp", "username", "version"}
	for _, v := range vs {
		path := filepath.Join(t.TempDir(), "pkt")
		if err := os.WriteFile(path, []byte(v.Wire+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errs := run(t, "", append(keyFlags(t, v), "--json", path)...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", v.Name, code, errs)
		}
		if strings.Count(out, "\n") != 1 {
			t.Errorf("%s: JSON output is not one line: %q", v.Name, out)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(out), &obj); err != nil {
			t.Fatalf("%s: %v: %s", v.Name, err, out)
		}
		var keys []string
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, wantKeys) {
			t.Fatalf("%s: keys %v, want %v", v.Name, keys, wantKeys)
		}
		f := v.Fields
		nullable := func(s string) any {
			if s == "" {
				return nil
			}
			return s
		}
		want := map[string]any{
			"random_value": f.Random, "username": f.Username, "timestamp": float64(f.Timestamp),
			"version": f.Version, "message_type": float64(f.MessageType), "message": f.Message,
			"nat_access": nullable(f.NATAccess), "server_auth": nullable(f.ServerAuth),
			"client_timeout": float64(f.ClientTimeout), "digest_type": f.DigestName,
			"digest": f.Digest, "replay_digest": obj["replay_digest"],
		}
		if !reflect.DeepEqual(obj, want) {
			t.Errorf("%s: JSON\n got %v\nwant %v", v.Name, obj, want)
		}
		// The replay digest is over the trimmed wire bytes (what fwknopd caches).
		if rd, _ := obj["replay_digest"].(string); len(rd) != 43 {
			t.Errorf("%s: replay digest %q", v.Name, rd)
		}
	}
}

// Each failed check exits 1 with exactly one line naming it.
func TestFailures(t *testing.T) {
	vs, err := fwknoptest.LoadVectors(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var v fwknoptest.Vector
	for _, x := range vs {
		if x.HMACType == "sha256" && x.Mode != "legacy" {
			v = x
			break
		}
	}
	flags := keyFlags(t, v)
	w := v.Wire
	for _, tc := range []struct {
		name, wire string
		flags      []string
		want       string
	}{
		{"tampered", w[:60] + string("AB"[map[bool]int{true: 1}[w[60] == 'A']]) + w[61:], flags, "sesame decode: HMAC mismatch\n"},
		{"short", w[:100], flags, "sesame decode: packet too short: packet of 100 bytes (min 140)\n"},
		{"prefix", "U2FsdGVkX1" + w, flags, "sesame decode: packet starts with a prefix"},
		{"not-base64", w[:50] + "*" + w[51:], flags, "sesame decode: packet is not base64"},
		{"inner-newline", w[:50] + "\n" + w[50:], flags, "sesame decode: packet is not base64"},
		{"wrong-hmac-key", w, replace(flags, "hmac"), "sesame decode: HMAC mismatch\n"},
		{"wrong-key", w, replace(flags, "rijndael"), "sesame decode: decryption failed"},
		{"hmac-absent-expected", w, append(flags, "--hmac-digest-type", "sha512"), "sesame decode: HMAC mismatch\n"},
	} {
		code, out, errs := run(t, tc.wire, tc.flags...)
		if code != 1 || out != "" || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.name, code, out, errs, tc.want)
		}
	}
}

// replace swaps the key of the given kind ("rijndael" or "hmac") for another key.
func replace(flags []string, kind string) []string {
	out := append([]string{}, flags...)
	for i := range out {
		if out[i] == "--key-"+kind {
			out[i+1] = "another-key"
		}
		if out[i] == "--key-base64-"+kind {
			out[i+1] = base64.StdEncoding.EncodeToString([]byte("another-key"))
		}
	}
	return out
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a key is needed"},
		{[]string{"--key-rijndael", "a", "--key-base64-rijndael", "YQ=="}, "not both"},
		{[]string{"--key-rijndael", "a", "-M", "pcbc"}, "encryption mode"},
		{[]string{"--key-rijndael", "a", "--hmac-digest-type", "sha2"}, "hmac-digest-type"},
		{[]string{"--key-rijndael", strings.Repeat("k", 33)}, "invalid key"},
		{[]string{"--key-rijndael", "a", "x", "y"}, "one packet file"},
		{[]string{"--key-rijndael", "a"}, "no packet"},
		{[]string{"--bogus"}, "unknown flag"},
	} {
		code, _, errs := run(t, " \n", tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, _ := run(t, "", "--help"); code != 0 {
		t.Errorf("--help exit %d", code)
	}
}

// TestIntegrationRealPacket decodes a fresh packet from the real fwknop client through the
// sesame binary (stdin), and checks the printed dump against the client's own.
func TestIntegrationRealPacket(t *testing.T) {
	nstest.Require(t, "fwknop", "go")
	res := fwknoptest.Client(t, "-A", "tcp/22,udp/53", "-a", "10.99.0.2", "-U", "bob", "-f", "90",
		"--use-hmac", "--key-base64-rijndael", "c2VzYW1lLWRlY29kZS10ZXN0LWtleQ==",
		"--key-hmac", "decode-hmac", "--hmac-digest-type", "sha3_512", "-m", "sha384", "-M", "ctr")
	cmd := exec.Command(nstest.Binary(t), "decode", "--key-base64-rijndael", "c2VzYW1lLWRlY29kZS10ZXN0LWtleQ==",
		"--key-hmac", "decode-hmac", "--hmac-digest-type", "SHA3_512", "-M", "CTR")
	cmd.Stdin = strings.NewReader(res.Wire + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame decode: %v\n%s", err, out)
	}
	d, err := fwknoptest.ParseDump(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if d != res.Dump {
		t.Fatalf("sesame decode dump\n got %+v\nwant %+v", d, res.Dump)
	}
}

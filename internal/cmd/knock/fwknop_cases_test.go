package knock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/spa"
)

var update = flag.Bool("update", false, "rerun Debian's fwknop for the client cases and rewrite testdata/fwknop-client.json")

const fixture = "testdata/fwknop-client.json"

// clientCase is one command line (with an rc file, stdin and a key on file descriptor 3) given
// to fwknop 2.6.10 and to sesame knock. Both run with -T -B, so nothing is sent; the outcome
// compared is whether it worked and what the packet says (see outcome).
type clientCase struct {
	name  string
	rc    string // ~/.fwknoprc ("" = none)
	mode  os.FileMode
	args  []string // placeholders: HOME (the home directory), FD (3), WGET (a fake wget)
	stdin string
	fd    string // what descriptor FD (3) holds
	// differs, when set, is why sesame deliberately differs from fwknop here, and want is
	// sesame's outcome.
	differs, want string
	// note is text sesame's stderr must contain (HOME: the home directory).
	note string
	// showRC adds stanza s1 of the rc file (--save-rc-stanza) to the outcome.
	showRC bool
}

// keyCandidates are the keys the cases use, tried to decode a packet.
var keyCandidates = [][2]string{{"abc", ""}, {"abc", "hm"}, {"abc", "hmactest"}, {"abc def", ""}, {"xyz", ""}, {"abc", "hm two"}}

// fakeWget prints an address that tells which command line it was given.
const fakeWget = `#!/bin/sh
case "$*" in
"-U Fwknop/2.6.10 --secure-protocol=auto --quiet -O - https://www.cipherdyne.org/cgi-bin/myip") echo 198.51.100.1 ;;
"--secure-protocol=auto --quiet -O - https://www.cipherdyne.org/cgi-bin/myip") echo 198.51.100.2 ;;
"-U ua1 --secure-protocol=auto --quiet -O - https://example.org/ip") echo 198.51.100.3 ;;
*) echo 198.51.100.9 ;;
esac
`

var baseArgs = []string{"-D", "10.0.0.9", "-A", "tcp/22", "-a", "10.0.0.2"}

func withBase(extra ...string) []string { return append(append([]string{}, baseArgs...), extra...) }

var clientCases = []clientCase{
	// rc file lines fwknop accepts.
	{name: "inlineComments", rc: "[s]\nSPA_SERVER 10.0.0.9\nACCESS tcp/22  # ssh\nFW_TIMEOUT 45 # seconds\nALLOW_IP 10.0.0.2;\nKEY abc\n", args: []string{"-n", "s"}},
	{name: "colonForm", rc: "[s]\nSPA_SERVER: 10.0.0.9\nACCESS: tcp/22\nALLOW_IP: 10.0.0.2\nKEY_BASE64: YWJj\nHMAC_KEY_BASE64: aG1hY3Rlc3Q=\n", args: []string{"-n", "s"}},
	{name: "keyCutAtBlank", note: "HOME/.fwknoprc line 2: KEY is \"abc\": the text \"def\" after it is ignored", rc: "[s]\nKEY abc def\n", args: withBase("-n", "s")},
	{name: "hmacKeyWithoutUseHMAC", rc: "[default]\nHMAC_KEY hmactest\nUSE_HMAC N\n", args: withBase("--key-rijndael", "abc")},
	{name: "hmacTypeInRCAlone", rc: "[default]\nHMAC_DIGEST_TYPE sha512\n", args: withBase("--key-rijndael", "abc")},
	{name: "gpgSettingsUnused", rc: "[default]\nGPG_RECIPIENT someone\nGPG_SIGNER me\nUSE_GPG_AGENT Y\n", args: withBase("--key-rijndael", "abc")},
	{name: "verbose2", rc: "[default]\nVERBOSE 2\n", args: withBase("--key-rijndael", "abc")},
	{name: "linesBeforeSections", note: "HOME/.fwknoprc:1: SPA_SERVER_PORT is outside any [stanza]", rc: "SPA_SERVER_PORT 5\n[default\n[s]\nKEY abc\n", args: withBase("-n", "s")},
	{name: "badLineInOtherStanza", rc: "[other]\nKEY\n[s]\nKEY abc\n", args: withBase("-n", "s")},
	// rc file lines fwknop refuses ("Parameter error", "Invalid entry").
	{name: "unknownVariable", note: "parameter error in HOME/.fwknoprc line 2 ([default]): FOO \"bar\": unknown variable", rc: "[default]\nFOO bar\n", args: withBase("--key-rijndael", "abc")},
	{name: "verbose100", note: "line 2 ([default]): VERBOSE \"100\": want 0..4", rc: "[default]\nVERBOSE 100\n", args: withBase("--key-rijndael", "abc")},
	{name: "protoInvalid", note: "SPA_SERVER_PROTO \"invalid\"", rc: "[default]\nSPA_SERVER_PROTO invalid\n", args: withBase("--key-rijndael", "abc")},
	{name: "portTooBig", rc: "[default]\nSPA_SERVER_PORT 70000\n", args: withBase("--key-rijndael", "abc")},
	{name: "timeoutTooBig", rc: "[default]\nFW_TIMEOUT 65537\n", args: withBase("--key-rijndael", "abc")},
	{name: "allowIPBogus", rc: "[default]\nALLOW_IP bogus\n", args: withBase("--key-rijndael", "abc")},
	{name: "keyNotBase64", rc: "[default]\nKEY_BASE64 !!\n", args: withBase("--key-rijndael", "abc")},
	{name: "doubleColon", note: "SPA_SERVER: \"10.0.0.9\": unknown variable", rc: "[default]\nSPA_SERVER:: 10.0.0.9\n", args: withBase("--key-rijndael", "abc")},
	{name: "useGPG", note: "needs --gpg-recipient-key", rc: "[default]\nUSE_GPG Y\n", args: withBase("--key-rijndael", "abc")},
	{name: "valueMissing", note: "HOME/.fwknoprc:2: \"KEY\" is not \"VARIABLE value\"", rc: "[s]\nKEY\n", args: withBase("-n", "s", "--key-rijndael", "abc")},
	{name: "spoofSourceInRCWithUDP", note: "-Q/SPOOF_SOURCE_IP needs -P udpraw", rc: "[default]\nSPOOF_SOURCE_IP 10.9.9.9\n", args: withBase("--key-rijndael", "abc")},
	{name: "lowercaseName", rc: "[default]\nfw_timeout 30\n", args: withBase("--key-rijndael", "abc"),
		differs: "sesame reads variable names in any case", want: "ok msg=10.0.0.2,tcp/22 type=3 timeout=30 hmac=none key=\"abc\""},
	{name: "portNotNumber", rc: "[default]\nSPA_SERVER_PORT abc\n", args: withBase("--key-rijndael", "abc"),
		differs: "fwknop reads a word as port 0; sesame names the line", want: "fail", note: "SPA_SERVER_PORT \"abc\": want a number in 0..65535"},
	{name: "hmacKeyFileMissing", note: "--get-hmac-key/HMAC_KEY_FILE", rc: "[default]\nHMAC_KEY_FILE HOME/none\n", args: withBase("--key-rijndael", "abc"),
		differs: "fwknop then sends no HMAC, which the server drops; sesame never sends less protection than the rc file asks for", want: "fail"},
	// HMAC switches.
	{name: "hmacDigestTypeAlone", note: "HMAC is on (--use-hmac, USE_HMAC or --hmac-digest-type) but no HMAC key", args: withBase("--key-rijndael", "abc", "--hmac-digest-type", "sha512")},
	{name: "hmacDigestTypeWithKey", args: withBase("--key-rijndael", "abc", "--hmac-digest-type", "sha512", "--key-hmac", "hm")},
	// --stdin and --fd read one line, for the key no option gives.
	{name: "stdinOneLine", stdin: "abc\nhm\n", args: withBase("--stdin")},
	{name: "stdinHMACKey", stdin: "hm\n", args: withBase("--stdin", "--use-hmac", "--key-rijndael", "abc")},
	{name: "stdinBothKeys", note: "--stdin reads one key, the Rijndael key", stdin: "abc\nhm\n", args: withBase("--stdin", "--use-hmac")},
	{name: "stdinEmpty", args: withBase("--stdin"), differs: "fwknop builds a packet with an empty key; sesame refuses",
		want: "fail", note: "--stdin: no key read"},
	{name: "stdinBlanks", stdin: "abc def\n", args: withBase("--stdin")},
	{name: "fdHMACKey", fd: "hm\n", args: withBase("--fd", "FD", "--use-hmac", "--key-rijndael", "abc")},
	{name: "fdHMACKeyByDigestType", fd: "hm\n", args: withBase("--fd", "FD", "--hmac-digest-type", "sha384", "--key-rijndael", "abc")},
	{name: "fdRijndaelKey", fd: "abc\n", args: withBase("--fd", "FD")},
	{name: "fdNotNeeded", fd: "xyz\n", args: withBase("--fd", "FD", "--key-rijndael", "abc")},
	// The allow-IP: the last of -a and -s, and an address beats -R.
	{name: "allowThenSource", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-a", "10.0.0.2", "-s", "--key-rijndael", "abc"}},
	{name: "sourceThenAllow", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-s", "-a", "10.0.0.3", "--key-rijndael", "abc"}},
	{name: "rcAllowIPThenR", rc: "[default]\nALLOW_IP 10.0.0.4\n", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-R", "--key-rijndael", "abc"}},
	{name: "rcResolveThenS", rc: "[default]\nALLOW_IP resolve\n", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-s", "--key-rijndael", "abc"}},
	// -R through wget (-w, --use-wget-user-agent, -u).
	{name: "wgetCmd", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-R", "-w", "WGET", "--key-rijndael", "abc"}},
	{name: "wgetUserAgent", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-R", "-w", "WGET", "--use-wget-user-agent", "--key-rijndael", "abc"}},
	{name: "wgetOwnUA", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-R", "-w", "WGET", "-u", "ua1", "--resolve-url", "https://example.org/ip", "--key-rijndael", "abc"}},
	{name: "resolveHTTPOnlyHTTPS", note: "is an https URL", args: []string{"-D", "10.0.0.9", "-A", "tcp/22", "-R", "--resolve-http-only", "--resolve-url", "https://127.0.0.1/ip", "--key-rijndael", "abc"}},
	// Transports.
	{name: "proxyThenUDP", note: "-P udp after -H", args: withBase("--key-rijndael", "abc", "-H", "10.0.0.8:3128", "-P", "udp")},
	{name: "udpThenProxy", args: withBase("--key-rijndael", "abc", "-P", "udp", "-H", "10.0.0.8:3128")},
	{name: "tcpraw", args: withBase("--key-rijndael", "abc", "-P", "tcpraw")},
	{name: "spoofUDPRaw", args: withBase("--key-rijndael", "abc", "-P", "udpraw", "-Q", "10.9.9.9")},
	{name: "spoofICMP", args: withBase("--key-rijndael", "abc", "-P", "icmp", "--spoof-src", "10.9.9.9")},
	{name: "spoofUDP", note: "-Q/SPOOF_SOURCE_IP needs -P udpraw, tcpraw or icmp", args: withBase("--key-rijndael", "abc", "-Q", "10.9.9.9")},
	{name: "spoofBogus", args: withBase("--key-rijndael", "abc", "-P", "udpraw", "-Q", "bogus")},
	{name: "spoofIPv6", args: withBase("--key-rijndael", "abc", "-P", "udpraw", "-Q", "::1")},
	// Validation of the command line.
	{name: "noRCFileWithName", note: "-n x needs the rc file; drop --no-rc-file", args: withBase("--key-rijndael", "abc", "--no-rc-file", "-n", "x")},
	{name: "keyLenHuge", note: "--key-len 999999: must be in [1-128]", args: withBase("--key-rijndael", "abc", "--key-len", "999999")},
	{name: "missingStanza", rc: "[s]\nKEY abc\n", args: withBase("-n", "nope")},
	{name: "rcFileCreated", note: "created HOME/new-rc", args: withBase("--key-rijndael", "abc", "--rc-file", "HOME/new-rc")},
	{name: "noHomeDirNeedsRCFile", note: "--no-home-dir: give --rc-file PATH or --no-rc-file", args: withBase("--key-rijndael", "abc", "--no-home-dir")},
	// Key generation.
	{name: "keygenHMACLenZero", note: "--hmac-key-len 0: must be in [1-128]", args: []string{"-k", "--hmac-key-len", "0"}},
	{name: "keygenKeyLen33", args: []string{"-k", "--key-len", "33"}},
	{name: "keygenLooseRC", note: "chmod 600 HOME/.fwknoprc", rc: "[default]\nHMAC_DIGEST_TYPE md5\n", mode: 0o644, args: []string{"-k"}},
	{name: "keygenGPGDefault", rc: "[default]\nGPG_RECIPIENT someone\n", args: []string{"-k"}},
	{name: "keygenUnusableDefault", note: "ignored for key generation", rc: "[default]\nFOO bar\n", args: []string{"-k"},
		differs: "key generation does not need the rc file, so sesame warns and prints keys", want: "keys hmac=64"},
	{name: "keyFileLoose", note: "HOME/keys has mode 0644", args: withBase("-G", "HOME/keys"), rc: ""},
}

// allCases are the recorded cases: clientCases and gpgCases (which need gpg: without it they
// skip, or fail under CI=true).
func allCases() []clientCase {
	return append(append([]clientCase{}, clientCases...), gpgCases...)
}

// outcome summarises a run: "fail", "keys hmac=<HMAC key bytes>" for -k, or "ok" with the
// packet's message, type, client timeout, HMAC type and the keys that decode it.
func outcome(t testing.TB, c clientCase, code int, stdout, home string) string {
	o := packetOutcome(t, code, stdout, filepath.Join(home, "pkt"))
	if c.showRC {
		o += "\n" + strings.ReplaceAll(savedStanza(t, filepath.Join(home, ".fwknoprc")), home, "HOME")
	}
	return o
}

func packetOutcome(t testing.TB, code int, stdout, pkt string) string {
	if code != 0 {
		return "fail"
	}
	if i := strings.Index(stdout, "HMAC_KEY_BASE64: "); i >= 0 {
		k := strings.Fields(stdout[i+len("HMAC_KEY_BASE64: "):])[0]
		b, _ := spa.DecodeKey(k, true)
		return fmt.Sprintf("keys hmac=%d", len(b))
	}
	wire, err := os.ReadFile(pkt)
	if err != nil {
		return "ok, no packet"
	}
	w := []byte(strings.TrimSpace(string(wire)))
	if g := gpgOutcome(t, w); g != "" {
		return g
	}
	for _, k := range keyCandidates {
		types := []spa.DigestType{0}
		if k[1] != "" {
			types = []spa.DigestType{spa.SHA256, spa.SHA512, spa.SHA384, spa.SHA1, spa.MD5}
		}
		for _, ht := range types {
			keys := spa.Keys{Key: []byte(k[0]), HMACType: ht}
			if k[1] != "" {
				keys.HMACKey = []byte(k[1])
			}
			m, err := spa.Decode(w, keys)
			if err != nil {
				continue
			}
			s := fmt.Sprintf("ok msg=%s type=%d", m.Message, int(m.Type))
			if m.ClientTimeout != 0 {
				s += fmt.Sprintf(" timeout=%d", m.ClientTimeout)
			}
			hmac := "none"
			if ht != 0 {
				hmac = ht.String()
			}
			s += fmt.Sprintf(" hmac=%s key=%q", hmac, k[0])
			if k[1] != "" {
				s += fmt.Sprintf(" hmackey=%q", k[1])
			}
			return s
		}
	}
	return "ok, packet decodes with no candidate key"
}

// prepare makes the case's home directory and files and returns the arguments with the
// placeholders filled in (fd is the descriptor number to use for FD).
func (c clientCase) prepare(t *testing.T, fd string) (home string, a []string, fdFile *os.File) {
	home = t.TempDir()
	if c.rc != "" {
		mode := c.mode
		if mode == 0 {
			mode = 0o600
		}
		p := filepath.Join(home, ".fwknoprc")
		os.WriteFile(p, []byte(gpgPlaceholders(t, strings.ReplaceAll(c.rc, "HOME/", home+"/"), false)), mode)
		os.Chmod(p, mode)
	}
	if c.name == "keyFileLoose" {
		os.WriteFile(filepath.Join(home, "keys"), []byte("10.0.0.9: abc\n"), 0o644)
	}
	wget := filepath.Join(home, "wget")
	os.WriteFile(wget, []byte(fakeWget), 0o755)
	if c.fd != "" {
		p := filepath.Join(home, "fd")
		os.WriteFile(p, []byte(c.fd), 0o600)
		var err error
		if fdFile, err = os.Open(p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fdFile.Close() })
		if fd == "" {
			fd = fmt.Sprint(fdFile.Fd())
		}
	}
	for _, x := range c.args {
		x = gpgPlaceholders(t, strings.ReplaceAll(x, "HOME", home), false)
		switch x {
		case "FD":
			x = fd
		case "WGET":
			x = wget
		}
		a = append(a, x)
	}
	a = append([]string{"--no-save-args", "-T", "-B", filepath.Join(home, "pkt")}, a...)
	return home, a, fdFile
}

// runFwknop runs Debian's fwknop for c and returns its outcome.
func runFwknop(t *testing.T, c clientCase) string {
	home, a, fdFile := c.prepare(t, "3")
	if c.isGPG() {
		// gpg-agent caches passphrases: start each fwknop run without one.
		ga, gb := gpgHomes(t)
		for _, h := range []string{ga.Dir, gb.Dir} {
			exec.Command("gpgconf", "--homedir", h, "--kill", "gpg-agent").Run()
		}
	}
	cmd := exec.Command("fwknop", a...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	cmd.Stdin = strings.NewReader(c.stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if fdFile != nil {
		cmd.ExtraFiles = []*os.File{fdFile}
	}
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return outcome(t, c, code, out.String(), home)
}

// runSesame runs sesame knock in-process for c and returns its outcome, stderr and home.
func runSesame(t *testing.T, c clientCase) (string, string, string) {
	home, a, _ := c.prepare(t, "")
	var out, errb bytes.Buffer
	now := func() time.Time { return time.Unix(1795432440, 0) }
	if c.isGPG() {
		now = time.Now // OpenPGP keys made now are not valid at a fixed past time
	}
	cl := &cli{stdin: strings.NewReader(c.stdin), stdout: &out, stderr: &errb, sender: &fakeSender{},
		home: func() (string, error) { return home, nil },
		env: knock.Env{Now: now, Username: func() string { return "sesame" },
			Resolve: func(context.Context, string, string) (netip.Addr, error) {
				return netip.Addr{}, errors.New("no network in this test")
			}}}
	code := cl.run(context.Background(), a)
	return outcome(t, c, code, out.String(), home), errb.String(), home
}

// TestFwknopClientCases compares sesame knock with fwknop 2.6.10 on the cases above. The
// fwknop outcomes are recorded in testdata/fwknop-client.json; -update reruns fwknop.
func TestFwknopClientCases(t *testing.T) {
	recorded := map[string]string{}
	if *update {
		if _, err := exec.LookPath("fwknop"); err != nil {
			t.Fatal("-update needs Debian's fwknop")
		}
		for _, c := range allCases() {
			recorded[c.name] = runFwknop(t, c)
		}
		b, _ := json.MarshalIndent(recorded, "", "  ")
		if err := os.WriteFile(fixture, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		b, err := os.ReadFile(fixture)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &recorded); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, c := range allCases() {
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			fw, ok := recorded[c.name]
			if !ok {
				t.Fatalf("no recorded fwknop outcome; run go test -run TestFwknopClientCases -update")
			}
			want := fw
			if c.differs != "" {
				if fw == c.want {
					t.Errorf("marked as a difference (%s), but fwknop now agrees: %s", c.differs, fw)
				}
				want = c.want
			}
			got, stderr, home := runSesame(t, c)
			if got != want {
				t.Errorf("sesame: %s\n  want: %s (fwknop: %s)\nstderr: %s", got, want, fw, stderr)
			}
			if note := strings.ReplaceAll(c.note, "HOME", home); !strings.Contains(stderr, note) {
				t.Errorf("stderr lacks %q:\n%s", note, stderr)
			}
		})
	}
	var stale []string
	for n := range recorded {
		if !seen[n] {
			stale = append(stale, n)
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("recorded cases without a test: %v (run with -update)", stale)
	}
}

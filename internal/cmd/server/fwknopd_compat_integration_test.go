package server

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// runIn runs name with args in ns and returns its exit code and combined output.
func runIn(t *testing.T, ns *nstest.NS, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ee.ExitCode() > 0:
		return ee.ExitCode(), string(out)
	}
	t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	return 0, ""
}

// The real fwknopd 2.6.10 and sesame, given the same files and options, agree on accepting
// or refusing each option combination (exit 0 or not); only options that parse and exit are
// given to fwknopd (in a namespace of its own, so nothing it does reaches the host).
func TestIntegrationOptionsLikeFwknopd(t *testing.T) {
	nstest.Require(t, "fwknopd")
	t.Parallel()
	ns := nstest.New(t)
	bin := nstest.Binary(t)
	dir := t.TempDir()
	conf, access, ov := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf"), filepath.Join(dir, "ov.conf")
	sesametest.WriteFile(t, conf, "PCAP_INTF lo;\nFWKNOP_RUN_DIR "+dir+";\n")
	sesametest.WriteFile(t, access, "SOURCE 10.0.0.0/8, 192.168.1.1\nOPEN_PORTS tcp/22, udp/53\nKEY_BASE64 Zm9vYmFy\nHMAC_KEY_BASE64 YmFyYmF6\n"+
		"REQUIRE_USERNAME bob\n\nSOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\nREQUIRE_SOURCE_ADDRESS Y\nFW_ACCESS_TIMEOUT 10\n")
	sesametest.WriteFile(t, ov, "PCAP_INTF lo;\nUDPSERV_PORT 1111;\n")
	missing := filepath.Join(dir, "missing")
	for _, args := range [][]string{
		{"--exit-parse-config"},
		{"-K", "-R"},
		{"-D", "-S"},
		{"--access-folder=", "--exit-parse-config"},
		{"-r", "run", "--exit-parse-config"},
		{"-O", missing, "--exit-parse-config"},
		{"-O", ov, "--exit-parse-config"},
		{"--gpg-home-dir", missing, "--exit-parse-config"},
		{"--gpg-exe", missing, "--exit-parse-config"},
		{"--sudo-exe", missing, "--exit-parse-config"},
		{"--no-ipt-check-support", "--exit-parse-config"},
		{"--no-firewd-check-support", "--exit-parse-config"},
		{"-l", "C", "--exit-parse-config"},
		{"--syslog-enable", "--exit-parse-config"},
		{"--pcap-any-direction", "--exit-parse-config"},
		{"--exit-parse-digest-cache"},
		{"-C", "-1", "--exit-parse-config"},
		{"-A"},
		{"--fault-injection-tag", "x", "--exit-parse-config"},
		{"-D", "--exit-parse-config"},
	} {
		all := append([]string{"-c", conf, "-a", access}, args...)
		fc, fout := runIn(t, ns, "fwknopd", all...)
		sc, sout := runIn(t, ns, bin, append([]string{"server"}, all...)...)
		if (fc == 0) != (sc == 0) {
			t.Errorf("%q: fwknopd exit %d, sesame exit %d\nfwknopd: %s\nsesame: %s", args, fc, sc, fout, sout)
		}
	}

	// -D: the same lines in the same order, but for sesame's own variables and the values
	// that differ on purpose (README).
	_, fout := runIn(t, ns, "fwknopd", "-c", conf, "-a", access, "-O", ov, "-D")
	_, sout := runIn(t, ns, bin, "server", "-c", conf, "-a", access, "-O", ov, "-D")
	differ := []string{"OVERRIDE_CONFIG", "EXIT_AT_INTF_DOWN", "FLUSH_IPT_AT_INIT", "FLUSH_IPT_AT_EXIT"}
	keep := func(out string) []string {
		var ls []string
		for _, l := range strings.Split(out, "\n") {
			skip := strings.Contains(l, "SESAME_") || strings.HasPrefix(l, "[*]") || strings.HasPrefix(l, "Warning:")
			for _, d := range differ {
				skip = skip || strings.Contains(l, ". "+d+" ")
			}
			if !skip {
				ls = append(ls, l)
			}
		}
		return ls
	}
	f, s := keep(fout), keep(sout)
	if len(f) < 90 {
		t.Fatalf("fwknopd -D gave %d lines:\n%s", len(f), fout)
	}
	for i := range max(len(f), len(s)) {
		var fl, sl string
		if i < len(f) {
			fl = f[i]
		}
		if i < len(s) {
			sl = s[i]
		}
		if fl != sl {
			t.Errorf("-D line %d: fwknopd %q, sesame %q", i, fl, sl)
		}
	}
	if t.Failed() {
		t.Logf("fwknopd -D:\n%s\nsesame -D:\n%s", fout, sout)
	}
	os.Remove(filepath.Join(dir, "fwknopd.pid"))
}

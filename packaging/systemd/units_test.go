package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// maxExposure is the most "systemd-analyze security" may rate the server unit (0-10; OK is
// below 5). The unit rates 2.1: a change that loosens the sandbox fails here first.
const maxExposure = 2.5

// installRoot builds a root directory for systemd-analyze --root: the system's own units
// (targets the units order against), /usr/bin/sesame and /bin/kill (verify checks that
// ExecStart and ExecReload are executable), the units in /etc/systemd/system, and a shield
// instance's environment file. dropIns maps a drop-in path below /etc/systemd/system to its
// text.
func installRoot(t *testing.T, dropIns map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "bin", "etc/systemd/system", "etc/sesame", "usr/lib/systemd"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copy the system's units: %v\n%s", err, out)
	}
	copyFile(t, "/bin/true", filepath.Join(root, "usr/bin/sesame"), 0o755)
	copyFile(t, "/bin/kill", filepath.Join(root, "bin/kill"), 0o755)
	units, err := filepath.Glob("sesame-*.s*")
	if err != nil || len(units) != 3 {
		t.Fatalf("units: %v %v", units, err)
	}
	for _, u := range units {
		copyFile(t, u, filepath.Join(root, "etc/systemd/system", u), 0o644)
	}
	writeFile(t, filepath.Join(root, "etc/sesame/shield-2222.conf"), "SHIELD_ARGS=--upstream 127.0.0.1:22\n")
	for p, text := range dropIns {
		p = filepath.Join(root, "etc/systemd/system", p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, text)
	}
	return root
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// verify runs systemd-analyze verify on the units: it must exit 0 and say nothing (it
// reports unknown keys and bad values as warnings, with exit status 0).
func verify(t *testing.T, root string, units ...string) {
	t.Helper()
	args := append([]string{"verify", "--man=no", "--root=" + root}, units...)
	out, err := exec.Command("systemd-analyze", args...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
	}
}

var exposureLine = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9.]+) (\S+)`)

// security returns the exposure and rating word of "systemd-analyze security --offline".
func security(t *testing.T, root, unit string) (float64, string) {
	t.Helper()
	out, err := exec.Command("systemd-analyze", "security", "--offline=yes", "--no-pager", "--root="+root, unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security %s: %v\n%s", unit, err, out)
	}
	m := exposureLine.FindStringSubmatch(string(out))
	if m == nil || m[1] != unit {
		t.Fatalf("systemd-analyze security %s: no exposure line\n%s", unit, out)
	}
	v, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, m[3]
}

func requireAnalyze(t *testing.T) {
	t.Helper()
	nstest.Require(t, "systemd-analyze")
}

// TestUnitsVerify checks the three units with systemd-analyze verify, also with the command
// execution drop-in in force in full (its commented sudo block uncommented).
func TestUnitsVerify(t *testing.T) {
	requireAnalyze(t)
	verify(t, installRoot(t, nil), "sesame-server.service", "sesame-shield@2222.socket", "sesame-shield@2222.service")

	b, err := os.ReadFile("sesame-server-command-exec.conf")
	if err != nil {
		t.Fatal(err)
	}
	full := regexp.MustCompile(`(?m)^#([A-Z][A-Za-z]+=)`).ReplaceAllString(string(b), "$1")
	root := installRoot(t, map[string]string{"sesame-server.service.d/command-exec.conf": full})
	verify(t, root, "sesame-server.service")
	if v, _ := security(t, root, "sesame-server.service"); v <= maxExposure {
		t.Errorf("the command-exec drop-in did not loosen the sandbox (exposure %.1f): is it applied?", v)
	}
}

// TestUnitsVerifyCatches is the control: verify does complain about a bad unit.
func TestUnitsVerifyCatches(t *testing.T) {
	requireAnalyze(t)
	root := installRoot(t, map[string]string{"sesame-server.service.d/bad.conf": "[Service]\nProtectHome=maybe\nTyp=notify\n"})
	out, _ := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "sesame-server.service").CombinedOutput()
	if !strings.Contains(string(out), "bad.conf:2") || !strings.Contains(string(out), "bad.conf:3") {
		t.Errorf("verify said nothing of the bad drop-in:\n%s", out)
	}
}

// TestUnitsSecurity checks that systemd-analyze rates the server unit OK or better, and
// the shield no worse.
func TestUnitsSecurity(t *testing.T) {
	requireAnalyze(t)
	root := installRoot(t, nil)
	for _, unit := range []string{"sesame-server.service", "sesame-shield@2222.service"} {
		v, level := security(t, root, unit)
		t.Logf("%s: exposure %.1f %s", unit, v, level)
		switch level {
		case "OK", "SAFE", "PERFECT":
		default:
			t.Errorf("%s: rated %s (%.1f), want OK or better", unit, level, v)
		}
		if v > maxExposure {
			t.Errorf("%s: exposure %.1f, want at most %.1f", unit, v, maxExposure)
		}
	}
}

// TestSysusers checks that systemd-sysusers reads sesame.sysusers.conf and would create the
// units' user and group.
func TestSysusers(t *testing.T) {
	nstest.Require(t, "systemd-sysusers")
	root := t.TempDir()
	for _, d := range []string{"etc", "usr/lib/sysusers.d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc/passwd"), "")
	writeFile(t, filepath.Join(root, "etc/group"), "")
	copyFile(t, "sesame.sysusers.conf", filepath.Join(root, "usr/lib/sysusers.d/sesame.conf"), 0o644)
	out, err := exec.Command("systemd-sysusers", "--dry-run", "--root="+root).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'sesame'") || strings.Contains(string(out), "sesame.conf:") {
		t.Errorf("systemd-sysusers: %v\n%s", err, out)
	}
}

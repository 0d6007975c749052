package deb

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// run runs a command and returns its combined output, failing the test on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// status returns dpkg's status and version of pkg ("" when dpkg does not know it).
func status(pkg string) string {
	out, _ := exec.Command("dpkg-query", "-W", "-f=${Status} ${Version}", pkg).Output()
	return string(out)
}

// TestIntegrationPackage builds the package with scripts/package, requires lintian to report
// no error or warning, installs it next to Debian's fwknop-client and fwknop-server, runs
// "sesame --version" and the fwknopd name, then purges it and checks that none of its files,
// its state directory or its systemd bookkeeping is left and that the fwknop packages are as
// they were. The sesame system user stays after the purge, as Debian policy has it; the test
// deletes it afterwards if it made it. The package is purged even when the test fails.
func TestIntegrationPackage(t *testing.T) {
	nstest.Require(t, "dpkg", "dpkg-deb", "dpkg-query", "lintian", "git", "go", "systemd-sysusers", "man")
	fwknop := []string{"fwknop-client", "fwknop-server"}
	before := map[string]string{}
	for _, p := range append(fwknop, "sesame") {
		before[p] = status(p)
	}
	for _, p := range fwknop {
		if !strings.HasPrefix(before[p], "install ok installed") {
			if nstest.InCI() {
				t.Fatalf("%s is not installed (%q): scripts/setup installs it", p, before[p])
			}
			t.Skipf("needs %s installed", p)
		}
	}
	if strings.Contains(before["sesame"], "installed") {
		t.Fatalf("a sesame package is already installed (%s): this test would replace and purge it", before["sesame"])
	}
	verifyBefore := map[string]string{}
	for _, p := range fwknop {
		out, _ := exec.Command("dpkg", "--verify", p).CombinedOutput()
		verifyBefore[p] = string(out)
	}
	_, userErr := exec.Command("getent", "passwd", "sesame").Output()
	hadUser := userErr == nil

	dir := t.TempDir()
	cmd := exec.Command("../../scripts/package", dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, errText(err))
	}
	deb := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`/sesame_[0-9][0-9A-Za-z.+~]*-1_[a-z0-9]+\.deb$`).MatchString(deb) {
		t.Fatalf("scripts/package printed %q", deb)
	}

	lint, _ := exec.Command("lintian", "--pedantic", "--display-info", deb).CombinedOutput()
	for _, l := range strings.Split(string(lint), "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "W: ") {
			t.Errorf("lintian: %s", l)
		}
	}
	t.Logf("lintian:\n%s", lint)

	t.Cleanup(func() {
		if strings.Contains(status("sesame"), "installed") || status("sesame") != "" {
			if out, err := exec.Command("dpkg", "--purge", "sesame").CombinedOutput(); err != nil {
				t.Errorf("cleanup: dpkg --purge sesame: %v\n%s", err, out)
			}
		}
		if !hadUser {
			if _, err := exec.Command("getent", "passwd", "sesame").Output(); err == nil {
				if out, err := exec.Command("userdel", "sesame").CombinedOutput(); err != nil {
					t.Errorf("cleanup: userdel sesame: %v\n%s", err, out)
				}
			}
		}
	})
	run(t, "dpkg", "-i", deb)
	files := strings.Fields(run(t, "dpkg-query", "-L", "sesame"))

	// Next to fwknop: no file of sesame's is one of theirs, and their binaries are theirs.
	theirs := map[string]bool{}
	for _, p := range fwknop {
		for _, f := range strings.Fields(run(t, "dpkg-query", "-L", p)) {
			theirs[f] = true
		}
	}
	for _, f := range files {
		if fi, err := os.Lstat(f); err == nil && !fi.IsDir() && theirs[f] {
			t.Errorf("%s belongs to sesame and to a fwknop package", f)
		}
	}
	if v := run(t, "/usr/sbin/fwknopd", "-V"); strings.Contains(v, "sesame") {
		t.Errorf("/usr/sbin/fwknopd -V says %q: it is no longer Debian's", v)
	}

	// The package runs, under both names.
	deVersion := strings.TrimSpace(run(t, "dpkg-query", "-W", "-f=${Version}", "sesame"))
	rev := regexp.MustCompile(`[0-9a-f]{12}`).FindString(deVersion)
	if v := run(t, "sesame", "--version"); !strings.HasPrefix(v, "sesame v") || (rev != "" && !strings.Contains(v, rev)) {
		t.Errorf("sesame --version = %q, package version %s", v, deVersion)
	}
	if v := run(t, "/usr/lib/sesame/fwknop-names/fwknopd", "-V"); !strings.Contains(v, "sesame server") || !strings.Contains(v, "fwknopd") {
		t.Errorf("fwknop-names/fwknopd -V = %q", v)
	}
	if v := run(t, "/usr/lib/sesame/fwknop-names/fwknop", "-V"); !strings.Contains(v, "sesame knock") {
		t.Errorf("fwknop-names/fwknop -V = %q", v)
	}
	if _, err := exec.Command("getent", "passwd", "sesame").Output(); err != nil {
		t.Errorf("postinst made no sesame user: %v", err)
	}
	for _, page := range []string{"sesame", "sesame-server", "sesame.conf"} {
		if p := strings.TrimSpace(run(t, "man", "-w", page)); !strings.HasPrefix(p, "/usr/share/man/") {
			t.Errorf("man -w %s = %q", page, p)
		}
	}
	os.MkdirAll("/var/lib/sesame", 0o700) // what the unit's StateDirectory= makes; purge removes it

	run(t, "dpkg", "--purge", "sesame")
	if s := status("sesame"); strings.Contains(s, "installed") && !strings.HasPrefix(s, "unknown ok not-installed") {
		t.Errorf("after purge dpkg says %q", s)
	}
	for _, f := range append(files, "/var/lib/sesame", "/var/lib/systemd/deb-systemd-helper-enabled/sesame-server.service.dsh-also") {
		fi, err := os.Lstat(f)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			if owner, err := exec.Command("dpkg-query", "-S", f).Output(); err == nil && len(owner) > 0 {
				continue // a directory another package owns too (/usr/bin, /etc/fail2ban/filter.d)
			}
			if entries, _ := os.ReadDir(f); len(entries) > 0 && !strings.HasPrefix(f, "/var/lib/sesame") {
				continue // a directory others put files in, not dpkg's to remove
			}
		}
		t.Errorf("%s is left after the purge", f)
	}
	for _, p := range fwknop {
		if s := status(p); s != before[p] {
			t.Errorf("%s: status %q before, %q after", p, before[p], s)
		}
		out, _ := exec.Command("dpkg", "--verify", p).CombinedOutput()
		if string(out) != verifyBefore[p] {
			t.Errorf("dpkg --verify %s changed:\nbefore %s\nafter %s", p, verifyBefore[p], out)
		}
	}
	if _, err := exec.Command("getent", "passwd", "sesame").Output(); err == nil {
		t.Log("the sesame user stays after the purge (Debian policy); the test removes it if it made it")
	}
}

// errText returns the stderr of a failed command, if it was captured.
func errText(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

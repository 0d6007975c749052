package failclosed

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

const safeConf = "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n"

// noFirewall fails t if a server that refused to start left anything in ns's ruleset.
func noFirewall(t *testing.T, ns *nstest.NS) {
	t.Helper()
	if ts := tables(t, ns); len(ts) != 0 {
		t.Errorf("a server that refused to start touched the firewall: %v", ts)
	}
}

// TestIntegrationUnsafeRunDir: a run directory another user can change is refused, with the
// fix, before anything is written or the firewall is touched.
func TestIntegrationUnsafeRunDir(t *testing.T) {
	nstest.Require(t, "nft")
	for _, c := range []struct {
		name  string
		spoil func(dir string) error
		fix   string
	}{
		{"writable-by-others", func(dir string) error { return os.Chmod(dir, 0o777) }, "chmod"},
		{"writable-by-group", func(dir string) error { return os.Chmod(dir, 0o770) }, "chmod"},
		{"owned-by-another-user", func(dir string) error { return os.Chown(dir, 65534, 65534) }, "chown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			f := writeFiles(t, safeConf, stanza(30))
			if err := c.spoil(f.run); err != nil {
				t.Fatal(err)
			}
			out := runFail(t, ns, f)
			t.Logf("refused: %s", strings.TrimSpace(out))
			for _, want := range []string{"unsafe path " + f.run, "fix: " + c.fix} {
				if !strings.Contains(out, want) {
					t.Errorf("refusal does not say %q:\n%s", want, out)
				}
			}
			if ents, _ := os.ReadDir(f.run); len(ents) != 0 {
				t.Errorf("files written into the unsafe directory: %v", ents)
			}
			noFirewall(t, ns)
		})
	}
}

// TestIntegrationPlantedLinks: a symbolic link planted at the pid file's, the digest file's or
// the ledger's path is refused, and the file it points to is left untouched.
func TestIntegrationPlantedLinks(t *testing.T) {
	nstest.Require(t, "nft")
	for _, name := range []string{"sesame.pid", "digest.cache", "sesame-sesame.ledger"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := nstest.New(t)
			f := writeFiles(t, safeConf, stanza(30))
			victim := filepath.Join(f.dir, "victim")
			content := []byte("root must not write here\n")
			if err := os.WriteFile(victim, content, 0o644); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(victim, old, old); err != nil {
				t.Fatal(err)
			}
			planted := filepath.Join(f.run, name)
			if err := os.Symlink(victim, planted); err != nil {
				t.Fatal(err)
			}
			out := runFail(t, ns, f)
			t.Logf("refused: %s", strings.TrimSpace(out))
			if !strings.Contains(out, planted) || !strings.Contains(out, "symbolic link") {
				t.Errorf("refusal does not name the link:\n%s", out)
			}
			got, err := os.ReadFile(victim)
			st, serr := os.Stat(victim)
			if err != nil || serr != nil || !bytes.Equal(got, content) || !st.ModTime().Equal(old) || st.Mode().Perm() != 0o644 {
				t.Errorf("the link's target changed: %q %v %v", got, err, serr)
			}
			if dst, err := os.Readlink(planted); err != nil || dst != victim {
				t.Errorf("the planted link changed: %q %v", dst, err)
			}
			noFirewall(t, ns)
		})
	}
}

// TestIntegrationShorterKnock: a knock for 5 s after one for 100 s leaves the longer grant.
func TestIntegrationShorterKnock(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: safeConf, Access: stanza(30)})
	knock(t, cli, nstest.SrvIP4, nstest.CliIP4, "-f", "100")
	waitDial(t, cli, sshAddr, true, 3*time.Second)
	knock(t, cli, nstest.SrvIP4, nstest.CliIP4, "-f", "5")
	d.WaitLog(t, 2, 3*time.Second, "access granted", "src="+nstest.CliIP4)
	left := d.FWList(t)[nstest.CliIP4+" tcp/22"]
	if left < 90*time.Second || left > 100*time.Second {
		t.Fatalf("--fw-list: %v left after -f 100 then -f 5, want about 100 s:\n%s", left, d.Ctl(t, "--fw-list"))
	}
	t.Logf("%v left", left)
}

package shield_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationSSH runs real OpenSSH through the shield: sshd -i per connection on the
// server (--exec), and sesame connect as the client's ProxyCommand.
func TestIntegrationSSH(t *testing.T) {
	nstest.Require(t, "ssh", "sshd", "ssh-keygen")
	srv, cli := nstest.Pair(t)
	dir := t.TempDir()
	for _, k := range []string{"hostkey", "clientkey"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, _ := os.ReadFile(filepath.Join(dir, "clientkey.pub"))
	os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600)
	// sshd insists on its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
	sshd, _ := exec.LookPath("sshd")
	kf := keyFile(t, "base64:c3NoIG92ZXIgbWQ1\n")
	startShield(t, srv, "--listen", ":2222", "--key-file", kf, "--exec", "--",
		sshd, "-i", "-f", "/dev/null", "-h", filepath.Join(dir, "hostkey"),
		"-o", "AuthorizedKeysFile="+filepath.Join(dir, "authorized_keys"),
		"-o", "StrictModes=no", "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "LogLevel=ERROR")

	ssh := func(proxy string) (string, error) {
		return run(t, cli.Command("ssh", "-F", "/dev/null", "-i", filepath.Join(dir, "clientkey"),
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=2", "-o", "ProxyCommand="+proxy,
			"-p", "2222", "root@"+nstest.SrvIP4, "echo", "hello-over-ssh"), nil, 15*time.Second)
	}
	out, err := ssh(sesameBin(t) + " connect --key-file " + kf + " %h %p")
	if err != nil || strings.TrimSpace(out) != "hello-over-ssh" {
		t.Errorf("ssh through the shield: %q, %v", out, err)
	}
	if out, err := ssh(sesameBin(t) + " connect --key wrong --timeout 1s %h %p"); err == nil {
		t.Errorf("ssh with a wrong MD5 key worked: %q", out)
	}
}

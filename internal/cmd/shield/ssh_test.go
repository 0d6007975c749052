package shield_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationSSH runs real OpenSSH through the shield: sshd -i per connection on the
// server (--exec), and sesame connect as the client's ProxyCommand.
func TestIntegrationSSH(t *testing.T) {
	nstest.Require(t, "ssh", "sshd", "ssh-keygen")
	srv, cli := nstest.Pair(t)
	keys := sesametest.NewSSHKeys(t, "["+nstest.SrvIP4+"]:2222")
	sesametest.RunSSHDir(t) // sshd insists on its privilege separation directory.
	sshd, _ := exec.LookPath("sshd")
	kf := keyFile(t, "base64:c3NoIG92ZXIgbWQ1\n")
	startShield(t, srv, "--listen", ":2222", "--key-file", kf, "--exec", "--",
		sshd, "-i", "-f", "/dev/null", "-h", keys.HostKey,
		"-o", "AuthorizedKeysFile="+keys.AuthorizedKeys,
		"-o", "StrictModes=no", "-o", "PidFile=none", "-o", "UsePAM=no", "-o", "LogLevel=ERROR")

	ssh := func(proxy string) (string, error) {
		return run(t, keys.SSH(cli, []string{"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=2",
			"-o", "ProxyCommand=" + proxy, "-p", "2222"}, "root@"+nstest.SrvIP4, "echo", "hello-over-ssh"), nil, 15*time.Second)
	}
	out, err := ssh(sesameBin(t) + " connect --key-file " + kf + " %h %p")
	if err != nil || strings.TrimSpace(out) != "hello-over-ssh" {
		t.Errorf("ssh through the shield: %q, %v", out, err)
	}
	if out, err := ssh(sesameBin(t) + " connect --key wrong --timeout 1s %h %p"); err == nil {
		t.Errorf("ssh with a wrong MD5 key worked: %q", out)
	}
}

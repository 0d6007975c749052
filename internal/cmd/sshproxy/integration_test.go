package sshproxy

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationSSHBehindFwknopd: a real sshd listens on 10.99.0.1:22 in a server namespace
// whose INPUT policy is DROP, guarded by the real fwknopd (UDP-server mode). From the client
// namespace, "ssh -o ProxyCommand='sesame ssh-proxy %h %p'" must knock with the rc stanza whose
// SPA_SERVER is the host, get in, and run a command.
func TestIntegrationSSHBehindFwknopd(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables", "sshd", "ssh", "ssh-keygen", "nc")
	srvNS, cliNS := nstest.Pair(t)
	for _, rule := range [][]string{
		{"-A", "INPUT", "-i", "lo", "-j", "ACCEPT"},
		{"-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-A", "INPUT", "-p", "udp", "--dport", "62201", "-j", "ACCEPT"},
		{"-P", "INPUT", "DROP"},
	} {
		srvNS.Run(t, "iptables", rule...)
	}
	keyB64, hmacB64 := "c2VzYW1lLXNzaC1wcm94eS1rZXk=", "c2VzYW1lLXNzaC1wcm94eS1obWFjLWtleQ=="
	srv := fwknoptest.StartServer(t, srvNS, fwknoptest.ServerOptions{Access: "SOURCE ANY\nKEY_BASE64 " + keyB64 +
		"\nHMAC_KEY_BASE64 " + hmacB64 + "\nOPEN_PORTS tcp/22\nREQUIRE_SOURCE_ADDRESS Y\nFW_ACCESS_TIMEOUT 30\n"})

	// sshd with a throwaway host key and an authorized user key.
	sshd := sesametest.StartSSHD(t, srvNS, sesametest.NewSSHKeys(t, nstest.SrvIP4), nstest.SrvIP4)

	// Closed before the knock.
	if out, err := cliNS.Command("nc", "-z", "-w", "1", nstest.SrvIP4, "22").CombinedOutput(); err == nil {
		t.Fatalf("port 22 reachable before any knock: %s", out)
	}

	// The client's ~/.fwknoprc, written by sesame knock itself.
	home := saveStanza(t, cliNS, keyB64, hmacB64)

	sshViaProxy(t, cliNS, sshd, home, "fwknopd", srv.Log)
	rules := strings.Join(srv.InputRules(t), "\n")
	if !strings.Contains(rules, "-s "+nstest.CliIP4+"/32 -p tcp -m tcp --dport 22") {
		t.Errorf("fwknopd rule missing:\n%s", rules)
	}
}

// saveStanza writes the client's ~/.fwknoprc in a new home directory with "sesame knock -n box
// --save-rc-stanza -T" (tcp/22 on nstest.SrvIP4 for nstest.CliIP4, HMAC, base64 keys) and
// returns that directory.
func saveStanza(t *testing.T, cli *nstest.NS, keyB64, hmacB64 string) (home string) {
	t.Helper()
	home = t.TempDir()
	if out, err := cli.Command("env", "HOME="+home, nstest.Binary(t), "knock", "-n", "box", "-D", nstest.SrvIP4, "-A", "tcp/22",
		"-a", nstest.CliIP4, "--use-hmac", "--key-base64-rijndael", keyB64, "--key-base64-hmac", hmacB64,
		"--save-rc-stanza", "-T").CombinedOutput(); err != nil {
		t.Fatalf("save stanza: %v\n%s", err, out)
	}
	return home
}

// sshViaProxy runs "echo sesame-ssh-ok" as root on sshd from cli with HOME=home, through
// ProxyCommand "sesame ssh-proxy -v %h %p", and fails t (showing sshd's log and the guard's,
// named guard) unless it prints sesame-ssh-ok.
func sshViaProxy(t *testing.T, cli *nstest.NS, sshd *sesametest.SSHD, home, guard string, guardLog func() string) {
	t.Helper()
	start := time.Now()
	ssh := sshd.SSH(cli, []string{"-o", "ProxyCommand=" + nstest.Binary(t) + " ssh-proxy -v %h %p", "-o", "ConnectTimeout=20"},
		"root@"+nstest.SrvIP4, "echo", "sesame-ssh-ok")
	ssh.Env = append(os.Environ(), "HOME="+home)
	out, err := ssh.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil || !strings.Contains(string(out), "sesame-ssh-ok") {
		t.Fatalf("ssh through sesame ssh-proxy: %v\n%s\nsshd:\n%s\n%s:\n%s", err, out, sshd.Log(), guard, guardLog())
	}
	t.Logf("ssh via ssh-proxy ran a command in %v; proxy said: %s", elapsed, strings.TrimSpace(string(out)))
}

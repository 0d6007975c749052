package sshproxy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationSSHBehindFwknopd: a real sshd listens on 10.99.0.1:22 in a server namespace
// whose INPUT policy is DROP, guarded by the real fwknopd (UDP-server mode). From the client
// namespace, "ssh -o ProxyCommand='sesame ssh-proxy %h %p'" must knock with the rc stanza whose
// SPA_SERVER is the host, get in, and run a command.
func TestIntegrationSSHBehindFwknopd(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables", "sshd", "ssh", "ssh-keygen", "nc")
	bin := nstest.Binary(t)
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		// sshd's privilege separation directory (systemd creates it for the service).
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove("/run/sshd") })
	}
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
	dir := t.TempDir()
	for _, k := range []string{"host_key", "user_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	userPub, _ := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	hostPub, _ := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("authorized_keys", string(userPub))
	knownHosts := write("known_hosts", nstest.SrvIP4+" "+string(hostPub))
	conf := write("sshd_config", fmt.Sprintf("Port 22\nListenAddress %s\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\n"+
		"StrictModes no\nUseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n",
		nstest.SrvIP4, filepath.Join(dir, "host_key"), filepath.Join(dir, "sshd.pid"), filepath.Join(dir, "authorized_keys")))
	var sshdLog bytes.Buffer
	sshd := srvNS.Command("/usr/sbin/sshd", "-D", "-e", "-f", conf)
	sshd.Stdout, sshd.Stderr = &sshdLog, &sshdLog
	srvNS.Start(t, sshd)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := srvNS.Do(t, func() error {
			c, err := net.DialTimeout("tcp", nstest.SrvIP4+":22", 200*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening: %v\n%s", err, sshdLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Closed before the knock.
	if out, err := cliNS.Command("nc", "-z", "-w", "1", nstest.SrvIP4, "22").CombinedOutput(); err == nil {
		t.Fatalf("port 22 reachable before any knock: %s", out)
	}

	// The client's ~/.fwknoprc, written by sesame knock itself.
	home := t.TempDir()
	if out, err := cliNS.Command("env", "HOME="+home, bin, "knock", "-n", "box", "-D", nstest.SrvIP4, "-A", "tcp/22",
		"-a", nstest.CliIP4, "--use-hmac", "--key-base64-rijndael", keyB64, "--key-base64-hmac", hmacB64,
		"--save-rc-stanza", "-T").CombinedOutput(); err != nil {
		t.Fatalf("save stanza: %v\n%s", err, out)
	}

	start := time.Now()
	ssh := cliNS.Command("env", "HOME="+home, "ssh", "-F", "/dev/null",
		"-o", "ProxyCommand="+bin+" ssh-proxy -v %h %p",
		"-o", "UserKnownHostsFile="+knownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=20", "-i", filepath.Join(dir, "user_key"),
		"root@"+nstest.SrvIP4, "echo", "sesame-ssh-ok")
	out, err := ssh.CombinedOutput()
	elapsed := time.Since(start)
	if err != nil || !strings.Contains(string(out), "sesame-ssh-ok") {
		t.Fatalf("ssh through sesame ssh-proxy: %v\n%s\nsshd:\n%s\nfwknopd:\n%s", err, out, sshdLog.String(), srv.Log())
	}
	t.Logf("ssh via ssh-proxy ran a command in %v; proxy said: %s", elapsed, strings.TrimSpace(string(out)))
	rules := strings.Join(srv.InputRules(t), "\n")
	if !strings.Contains(rules, "-s "+nstest.CliIP4+"/32 -p tcp -m tcp --dport 22") {
		t.Errorf("fwknopd rule missing:\n%s", rules)
	}
}

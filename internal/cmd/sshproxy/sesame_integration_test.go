package sshproxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationSesameSSHBehindSesame: a real sshd listens on 10.99.0.1:22 in a server
// namespace where sesame's own server (UDP-server mode, SESAME_GUARD_PORTS tcp/22) keeps port
// 22 closed. From the client namespace, "ssh -o ProxyCommand='sesame ssh-proxy %h %p'" must
// knock with the ~/.fwknoprc stanza that "sesame knock --save-rc-stanza" wrote, get in, and run
// a command.
func TestIntegrationSesameSSHBehindSesame(t *testing.T) {
	nstest.Require(t, "nft", "sshd", "ssh", "ssh-keygen")
	t.Parallel()
	bin := nstest.Binary(t)
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
		// sshd's privilege separation directory (systemd creates it for the service).
		if err := os.Mkdir("/run/sshd", 0o755); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
	}
	srvNS, cliNS := nstest.Pair(t)
	keyB64, hmacB64 := "c2VzYW1lLWUyZS1zc2gta2V5", "c2VzYW1lLWUyZS1zc2gtaG1hYy1rZXk="
	srv := startSesame(t, srvNS, "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n", "SOURCE ANY\nKEY_BASE64 "+keyB64+
		"\nHMAC_KEY_BASE64 "+hmacB64+"\nOPEN_PORTS tcp/22\nREQUIRE_SOURCE_ADDRESS Y\nFW_ACCESS_TIMEOUT 30\n")

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
	ssh22 := nstest.SrvIP4 + ":22"
	for deadline := time.Now().Add(5 * time.Second); ; { // from inside: loopback is not guarded
		if dialErr(t, srvNS, ssh22, 200*time.Millisecond) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening:\n%s", sshdLog.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Closed from the client before the knock.
	var ne net.Error
	if err := dialErr(t, cliNS, ssh22, 500*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("port 22 from the client before any knock: %v, want a timeout", err)
	}

	// The client's ~/.fwknoprc, written by sesame knock itself.
	home := t.TempDir()
	if out, err := cliNS.Command("env", "HOME="+home, bin, "knock", "-n", "box", "-D", nstest.SrvIP4, "-A", "tcp/22",
		"-a", nstest.CliIP4, "--use-hmac", "--key-base64-rijndael", keyB64, "--key-base64-hmac", hmacB64,
		"--save-rc-stanza", "-T").CombinedOutput(); err != nil {
		t.Fatalf("save stanza: %v\n%s", err, out)
	}
	if len(srv.grantLines()) != 0 {
		t.Fatalf("-T knocked:\n%s", srv.log())
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
		t.Fatalf("ssh through sesame ssh-proxy: %v\n%s\nsshd:\n%s\nsesame server:\n%s", err, out, sshdLog.String(), srv.log())
	}
	t.Logf("ssh via ssh-proxy ran a command in %v; proxy said: %s", elapsed, strings.TrimSpace(string(out)))
	if g := srv.grantLines(); len(g) != 1 || !strings.Contains(g[0], " src="+nstest.CliIP4+" ") ||
		!strings.Contains(g[0], " allow="+nstest.CliIP4+" ") || !strings.Contains(g[0], " ports=tcp/22 ") ||
		!strings.Contains(g[0], " timeout=30s ") {
		t.Errorf("want one grant of tcp/22 to %s for 30 s, got:\n%s", nstest.CliIP4, srv.log())
	}
}

// sesameProc is a "sesame server -f" started in a namespace by startSesame.
type sesameProc struct{ logPath string }

func (s *sesameProc) log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// grantLines returns the log's "access granted" lines.
func (s *sesameProc) grantLines() []string {
	var out []string
	for _, l := range strings.Split(s.log(), "\n") {
		if strings.Contains(l, `msg="access granted"`) {
			out = append(out, l)
		}
	}
	return out
}

// startSesame writes fwknopd.conf (serverConf after the run-dir settings) and access.conf,
// starts sesame server in ns (stopped by PID at cleanup: SIGTERM, then SIGKILL) and waits until
// it logs that it started. (A minimal copy of internal/cmd/server's test harness.)
func startSesame(t *testing.T, ns *nstest.NS, serverConf, accessConf string) *sesameProc {
	t.Helper()
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	full := fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n%s",
		run, run, run, serverConf)
	for path, text := range map[string]string{conf: full, access: accessConf} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &sesameProc{logPath: filepath.Join(dir, "sesame.log")}
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command(nstest.Binary(t), "server", "-f", "-c", conf, "-a", access)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sesame server: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.log(), "sesame server started"); {
		select {
		case <-done:
			t.Fatalf("sesame server exited at start:\n%s", s.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sesame server did not start:\n%s", s.log())
		}
	}
	return s
}

// dialErr tries one TCP connection from ns to addr and returns the dial error.
func dialErr(t *testing.T, ns *nstest.NS, addr string, timeout time.Duration) error {
	t.Helper()
	var derr error
	if err := ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			c.Close()
		}
		derr = err
		return nil
	}); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return derr
}

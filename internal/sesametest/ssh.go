package sesametest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// RunSSHDir creates /run/sshd, the privilege separation directory that sshd insists on
// (systemd makes it for the service), if it is missing. It never removes it: it is a standard
// runtime directory, and another package's test may be running sshd at the same moment.
func RunSSHDir(t testing.TB) {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd privilege separation directory: %v", err)
	}
}

// SSHKeys is a throwaway OpenSSH set-up in a temporary directory: an ed25519 host key and
// user key (no passphrase), authorized_keys holding the user key, and known_hosts holding the
// host key for one host name.
type SSHKeys struct {
	Dir            string
	HostKey        string // private key path; HostKey+".pub" is the public key
	UserKey        string // private key path; UserKey+".pub" is the public key
	AuthorizedKeys string
	KnownHosts     string
}

// NewSSHKeys makes the keys with ssh-keygen and writes known_hosts for host, as ssh looks it
// up: "10.99.0.1" for port 22, "[10.99.0.1]:2222" for another port.
func NewSSHKeys(t testing.TB, host string) *SSHKeys {
	t.Helper()
	nstest.Require(t, "ssh-keygen")
	dir := t.TempDir()
	k := &SSHKeys{Dir: dir, HostKey: filepath.Join(dir, "host_key"), UserKey: filepath.Join(dir, "user_key"),
		AuthorizedKeys: filepath.Join(dir, "authorized_keys"), KnownHosts: filepath.Join(dir, "known_hosts")}
	for _, p := range []string{k.HostKey, k.UserKey} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", filepath.Base(p), "-f", p).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	userPub, err := os.ReadFile(k.UserKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	hostPub, err := os.ReadFile(k.HostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, k.AuthorizedKeys, string(userPub))
	WriteFile(t, k.KnownHosts, host+" "+string(hostPub))
	return k
}

// SSH returns an ssh command, to run in ns, that logs in to dest ("root@10.99.0.1") with the
// user key and runs remote: no config file (-F /dev/null), batch mode, and the host key
// checked strictly against KnownHosts. opts ("-p", "2222", "-o", "ProxyCommand=...") go
// before dest.
func (k *SSHKeys) SSH(ns *nstest.NS, opts []string, dest string, remote ...string) *exec.Cmd {
	args := []string{"-F", "/dev/null", "-i", k.UserKey, "-o", "UserKnownHostsFile=" + k.KnownHosts,
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"}
	args = append(append(append(args, opts...), dest), remote...)
	return ns.Command("ssh", args...)
}

// SSHD is a real OpenSSH server ("sshd -D -e") running inside a namespace.
type SSHD struct {
	*SSHKeys
	Addr    string // host:22
	Config  string // sshd_config path
	LogPath string // sshd's output
}

// StartSSHD runs sshd in ns on ip port 22 with k's host key, accepting k's user key for any
// user (root included; no passwords, no PAM), and waits up to 5 s until it accepts
// connections from inside ns. sshd is stopped by PID at cleanup.
func StartSSHD(t testing.TB, ns *nstest.NS, k *SSHKeys, ip string) *SSHD {
	t.Helper()
	nstest.Require(t, "sshd")
	RunSSHDir(t)
	s := &SSHD{SSHKeys: k, Addr: net.JoinHostPort(ip, "22"), Config: filepath.Join(k.Dir, "sshd_config"),
		LogPath: filepath.Join(k.Dir, "sshd.log")}
	WriteFile(t, s.Config, fmt.Sprintf("Port 22\nListenAddress %s\nHostKey %s\nPidFile %s\nAuthorizedKeysFile %s\n"+
		"StrictModes no\nUseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"+
		"KbdInteractiveAuthentication no\nUsePAM no\n",
		ip, k.HostKey, filepath.Join(k.Dir, "sshd.pid"), k.AuthorizedKeys))
	logf, err := os.Create(s.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := ns.Command("/usr/sbin/sshd", "-D", "-e", "-f", s.Config)
	cmd.Stdout, cmd.Stderr = logf, logf
	ns.Start(t, cmd)
	// From inside ns: loopback traffic is never guarded.
	for deadline := time.Now().Add(5 * time.Second); Dial(t, ns, s.Addr, 200*time.Millisecond) != Open; {
		if time.Now().After(deadline) {
			t.Fatalf("sshd not listening on %s:\n%s", s.Addr, s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Log returns sshd's output so far.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

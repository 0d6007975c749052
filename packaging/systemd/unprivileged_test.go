package systemd

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
)

// The uid and gid the server runs as: no passwd entry is needed, as under the unit.
const testUID = 64123

// TestIntegrationUnprivileged runs "sesame server" as sesame-server.service runs it: a
// non-root uid holding only CAP_NET_ADMIN and CAP_NET_RAW (ambient), no new privileges, in
// sniff mode, with -r, -d and -p pointing at directories that uid owns (as RuntimeDirectory
// and StateDirectory make them), on a host whose own firewall drops by default. It checks
// the process's credentials, that a knock opens the guarded port through the host
// firewall, that root's -S and --fw-list reach the server, that SIGHUP reloads, that the
// files land where the unit lets it write, and that SIGTERM stops it cleanly.
func TestIntegrationUnprivileged(t *testing.T) {
	nstest.Require(t, "nft", "setpriv")
	srvNS, cliNS := nstest.Pair(t)
	sesametest.Listen(t, srvNS, ":22", sesametest.Banner)
	// A host firewall that drops by default, as many servers have: the server must find it
	// and hook its grants into it, which needs reading the host's ruleset as that uid.
	srvNS.Run(t, "nft", "add table inet host { chain input { type filter hook input priority 0; policy drop; ct state established,related accept; iif lo accept; udp dport 62201 accept; }; }")

	// /tmp/X (root 0755): bin/sesame, etc/ (configuration), run/ and state/ (owned by the uid).
	base, err := os.MkdirTemp("", "sesame-unit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	dirs := map[string]bool{"bin": false, "etc": false, "run": true, "state": true}
	for d, owned := range dirs {
		p := filepath.Join(base, d)
		mode := os.FileMode(0o755)
		if owned {
			mode = 0o700
		}
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if owned {
			chown(t, p)
		}
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "bin/sesame")
	copyFile(t, nstest.Binary(t), bin, 0o755)
	keys := spa.Keys{Key: []byte("unit-test-key"), HMACKey: []byte("unit-test-hmac")}
	conf, access := filepath.Join(base, "etc/fwknopd.conf"), filepath.Join(base, "etc/access.conf")
	for p, text := range map[string]string{
		conf:   fmt.Sprintf("PCAP_INTF %s;\n", srvNS.Ifc),
		access: fmt.Sprintf("SOURCE ANY\nOPEN_PORTS tcp/22\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 30\n", keys.Key, keys.HMACKey),
	} {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		chown(t, p)
	}
	run, state := filepath.Join(base, "run"), filepath.Join(base, "state")

	cmd := srvNS.Command("setpriv", "--reuid="+fmt.Sprint(testUID), "--regid="+fmt.Sprint(testUID), "--clear-groups",
		"--inh-caps=-all,+net_admin,+net_raw", "--ambient-caps=-all,+net_admin,+net_raw",
		"--bounding-set=-all,+net_admin,+net_raw", "--no-new-privs",
		bin, "server", "-f", "-c", conf, "-a", access, "-r", run, "-d", filepath.Join(state, "digest.cache"),
		"-p", filepath.Join(run, "sesame.pid"))
	log := &logLines{}
	cmd.Stdout, cmd.Stderr = log, log
	srvNS.Start(t, cmd)
	exited := make(chan struct{})
	go func() { cmd.Process.Wait(); close(exited) }() // Start's cleanup waits through cmd.Wait too
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", log)
		}
	})
	log.wait(t, exited, "sesame server started")

	// The process is the server itself (ip netns exec and setpriv exec), with only the two
	// capabilities.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	const caps = "0000000000003000" // CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
	for _, want := range []string{fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", testUID, testUID, testUID, testUID),
		"CapEff:\t" + caps, "CapPrm:\t" + caps, "CapAmb:\t" + caps, "CapBnd:\t" + caps, "NoNewPrivs:\t1"} {
		if !strings.Contains(string(status), want+"\n") {
			t.Errorf("/proc/PID/status lacks %q:\n%s", want, status)
		}
	}

	ssh := nstest.SrvIP4 + ":22"
	if r := sesametest.Dial(t, cliNS, ssh, 300*time.Millisecond); r != sesametest.Timeout {
		t.Fatalf("guarded port before a knock: %v", r)
	}
	m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: nstest.CliIP4 + ",tcp/22"}
	w, err := spa.Encode(&m, keys, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := cliNS.Do(t, func() error {
		c, err := net.Dial("udp", nstest.SrvIP4+":62201")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(w))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	log.wait(t, exited, `msg="access granted"`)
	if !opens(t, cliNS, ssh, 3*time.Second) {
		t.Errorf("the granted port stays closed: the host firewall's drop policy was not hooked (hooks= in the log)")
	}

	// The operator, as root, asks for the unit's server's status and grants.
	for args, want := range map[string]string{"-S": fmt.Sprintf("(pid=%d)", cmd.Process.Pid), "--fw-list": nstest.CliIP4 + " tcp/22 expires in"} {
		ctl := srvNS.Command(bin, "server", "-c", conf, "-a", access, "-r", run, "-p", filepath.Join(run, "sesame.pid"), args)
		if out, err := ctl.CombinedOutput(); err != nil || !strings.Contains(string(out), want) {
			t.Errorf("root: sesame server %s: %v, want %q in:\n%s", args, err, want, out)
		}
	}

	cmd.Process.Signal(syscall.SIGHUP)
	log.wait(t, exited, "reload")

	for _, f := range []string{filepath.Join(run, "sesame.pid"), filepath.Join(run, "sesame-sesame.ledger"), filepath.Join(state, "digest.cache")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Errorf("%v (files in run: %v, state: %v)", err, ls(run), ls(state))
			continue
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != testUID || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: uid %d mode %v, want uid %d and no group/other access", f, uid, fi.Mode(), testUID)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	log.wait(t, exited, "sesame server stopped")
	for _, l := range log.lines() {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, "permission denied") || strings.Contains(l, "operation not permitted") {
			t.Errorf("error in the log: %s", l)
		}
	}
}

// opens reports whether addr accepts a connection from ns within timeout.
func opens(t *testing.T, ns *nstest.NS, addr string, timeout time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if sesametest.Dial(t, ns, addr, 300*time.Millisecond) == sesametest.Open {
			return true
		}
	}
	return false
}

func chown(t *testing.T, p string) {
	t.Helper()
	if err := os.Chown(p, testUID, testUID); err != nil {
		t.Fatal(err)
	}
}

func ls(dir string) []string {
	es, _ := os.ReadDir(dir)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// logLines collects a process's output.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logLines) lines() []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l.String()))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// wait waits until a line contains sub, failing t if the process exits first or 10 s pass.
func (l *logLines) wait(t *testing.T, exited <-chan struct{}, sub string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(l.String(), sub) {
		select {
		case <-exited:
			if strings.Contains(l.String(), sub) {
				return
			}
			t.Fatalf("server exited before logging %q:\n%s", sub, l)
		case <-deadline:
			t.Fatalf("no %q in the log within 10 s:\n%s", sub, l)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

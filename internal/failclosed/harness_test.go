package failclosed

import (
	"bytes"
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
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// Test keys of every stanza, and the addresses of the topology.
const (
	testKey  = "failclosedkey"
	testHMAC = "failclosedhmac"

	sshAddr = nstest.SrvIP4 + ":22" // the guarded service, as the client reaches it
	outSrv  = "10.98.0.1"           // the server on the outsider's veth
	outCli  = "10.98.0.2"           // the outsider
	outAddr = outSrv + ":22"        // the guarded service, as the outsider reaches it

	grantSecs = 120 // FW_ACCESS_TIMEOUT of the client's one knock: longer than any row
)

// stanza is an access.conf stanza for the test keys with the given extra lines.
func stanza(timeout int, extra ...string) string {
	return fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT %d\n%s\n", testKey, testHMAC, timeout,
		strings.Join(extra, "\n"))
}

// knock runs Debian's fwknop in ns: open tcp/22 on dst for allow, with extra arguments.
func knock(t *testing.T, ns *nstest.NS, dst, allow string, extra ...string) {
	t.Helper()
	args := append([]string{"--use-hmac", "--key-rijndael", testKey, "--key-hmac", testHMAC, "--no-rc-file",
		"--no-save-args", "-A", "tcp/22", "-a", allow, "-D", dst}, extra...)
	cmd := ns.Command("fwknop", args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fwknop %v: %v\n%s", args, err, out)
	}
}

// outsider makes a namespace on its own veth to srv (outCli -> outSrv); it never knocks.
func outsider(t *testing.T, srv *nstest.NS) *nstest.NS {
	t.Helper()
	ns := nstest.New(t)
	nstest.Connect(t, srv, ns, []string{outSrv + "/24"}, []string{outCli + "/24"})
	return ns
}

// files is a server's configuration laid out as sesametest.StartServer lays it out, for runs
// that are expected to fail (StartServer fails the test when the server exits).
type files struct {
	dir, run, conf, access string
}

func writeFiles(t *testing.T, conf, access string) files {
	t.Helper()
	dir := t.TempDir()
	f := files{dir: dir, run: filepath.Join(dir, "run"), conf: filepath.Join(dir, "fwknopd.conf"),
		access: filepath.Join(dir, "access.conf")}
	if err := os.Mkdir(f.run, 0o700); err != nil {
		t.Fatal(err)
	}
	sesametest.WriteFile(t, f.conf, fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n%s",
		f.run, f.run, f.run, conf))
	sesametest.WriteFile(t, f.access, access)
	return f
}

// runFail runs "sesame server -f" with f in ns and expects it to exit non-zero within 10 s. It
// returns the output; a server that keeps running is stopped by PID and fails t.
func runFail(t *testing.T, ns *nstest.NS, f files) string {
	t.Helper()
	var out bytes.Buffer
	cmd := ns.Command(nstest.Binary(t), "server", "-f", "-c", f.conf, "-a", f.access)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("sesame server exited 0, want a refusal:\n%s", out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		t.Fatalf("sesame server still running after 10 s, want a refusal:\n%s", out.String())
	}
	return out.String()
}

// ctl runs "sesame server -c CONF -a ACCESS args..." in ns and returns its stdout, stderr and
// error (a control command that may be refused).
func ctl(t *testing.T, ns *nstest.NS, conf, access string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := ns.Command(nstest.Binary(t), append([]string{"server", "-c", conf, "-a", access}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// tables lists the nftables tables in ns ("inet sesame", "ip filter", ...).
func tables(t *testing.T, ns *nstest.NS) map[string]bool {
	t.Helper()
	m := map[string]bool{}
	for _, l := range strings.Split(ns.Run(t, "nft", "list", "tables"), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "table" {
			m[f[1]+" "+f[2]] = true
		}
	}
	return m
}

// nftTry runs nft with args in ns and returns its output and error (for commands that must be
// refused).
func nftTry(ns *nstest.NS, args ...string) (string, error) {
	out, err := ns.Command("nft", args...).CombinedOutput()
	return string(out), err
}

// nftLoad loads a ruleset with nft -f.
func nftLoad(t *testing.T, ns *nstest.NS, ruleset string) {
	t.Helper()
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s\n%s", err, out, ruleset)
	}
}

// iptRestore loads an iptables-save text with iptables-nft-restore (which replaces the tables
// it names, as netfilter-persistent and ufw do).
func iptRestore(t *testing.T, ns *nstest.NS, save string) {
	t.Helper()
	cmd := ns.Command("iptables-nft-restore", "-w")
	cmd.Stdin = strings.NewReader(save)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("iptables-nft-restore: %v\n%s\n%s", err, out, save)
	}
}

// hookMatch is how `nft list` prints sesame's accept-if-marked hook in a host chain (the
// iptables comment match does not show there).
const hookMatch = "meta mark & 0x10000000 == 0x10000000"

// hooked reports whether the host table ("ip filter", "inet firewalld") holds sesame's hook.
func hooked(t *testing.T, ns *nstest.NS, table string) bool {
	t.Helper()
	out, err := nftTry(ns, append([]string{"list", "table"}, strings.Fields(table)...)...)
	return err == nil && strings.Contains(out, hookMatch)
}

// link joins a and b with a veth pair named aIf (in a) and bIf (in b), with the addresses,
// brought up: for interfaces that must appear under a chosen name after the server starts.
func link(t *testing.T, a *nstest.NS, aIf, aAddr string, b *nstest.NS, bIf, bAddr string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", "name", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf,
		"netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	a.Run(t, "ip", "addr", "add", aAddr, "dev", aIf)
	b.Run(t, "ip", "addr", "add", bAddr, "dev", bIf)
	a.Run(t, "ip", "link", "set", aIf, "up")
	b.Run(t, "ip", "link", "set", bIf, "up")
	waitUp(t, a, aIf)
	waitUp(t, b, bIf)
}

// waitUp waits up to 5 s for ifc in ns to report the carrier (state UP).
func waitUp(t *testing.T, ns *nstest.NS, ifc string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", ns.Name, "-o", "link", "show", "dev", ifc).CombinedOutput()
		if strings.Contains(string(out), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("[%s] %s did not come up: %s", ns.Name, ifc, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lastLine returns the last log line of d containing every substring, "" if none.
func lastLine(d *sesametest.Server, substrs ...string) string {
	ls := d.LogLines(substrs...)
	if len(ls) == 0 {
		return ""
	}
	return ls[len(ls)-1]
}

// dial tries one TCP connection from ns to addr within timeout and reports whether it
// completed. A drop, a reset and an ICMP reject (firewalld's admin-prohibited gives
// EHOSTUNREACH) all count as shut.
func dial(t *testing.T, ns *nstest.NS, addr string, timeout time.Duration) bool {
	t.Helper()
	open := false
	if err := ns.Do(t, func() error {
		if c, err := net.DialTimeout("tcp", addr, timeout); err == nil {
			c.Close()
			open = true
		}
		return nil
	}); err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return open
}

// waitDial retries dial (300 ms each) until addr is open (open) or shut (two attempts in a row,
// so one lost SYN does not count as shut), and returns how long that took; it fails t after
// within.
func waitDial(t *testing.T, ns *nstest.NS, addr string, open bool, within time.Duration) time.Duration {
	t.Helper()
	start, streak := time.Now(), 0
	for {
		got := dial(t, ns, addr, 300*time.Millisecond)
		if got == open {
			if streak++; open || streak == 2 {
				return time.Since(start)
			}
			continue
		}
		streak = 0
		if time.Since(start) > within {
			t.Fatalf("%s from %s: still %s after %v", addr, ns.Name, map[bool]string{true: "open", false: "shut"}[got], within)
		}
		if got {
			time.Sleep(10 * time.Millisecond)
		} else {
			time.Sleep(time.Millisecond) // a reject answers at once: do not spin
		}
	}
}

package shield_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// Tests for issue 15: reloads near the key limit, unambiguous key files, listen
// families, the --exec cap and shutdown, errors that name the culprit, descriptors.

// hostTable returns n "10.B.x.y/32 KEY" lines.
func hostTable(b byte, from, n int, key string) string {
	var sb strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&sb, "10.%d.%d.%d/32 %s\n", b, i>>8, byte(i), key)
	}
	return sb.String()
}

// connectOK runs sesame connect from cli with key and reports whether the echo came back.
func connectOK(t *testing.T, cli *nstest.NS, key, host string) bool {
	t.Helper()
	out, err := run(t, cli.Command(sesameBin(t), "connect", "--key", key, "--timeout", "500ms", host, shieldP), strings.NewReader("ping\n"), 5*time.Second)
	return err == nil && out == "ping\n"
}

// TestIntegrationShieldReloadNearLimit: a SIGHUP reload that swaps half of a ~950-rule
// table (old and new together would not fit the kernel's ~960 keys) succeeds, the
// client's removed /32 falls back to the new catch-all; a reload beyond the limit
// leaves the previous keys in force and says so.
func TestIntegrationShieldReloadNearLimit(t *testing.T) {
	nstest.Require(t, "socat")
	srv, cli, kf, _ := setup(t)
	write := func(s string) {
		if err := os.WriteFile(kf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("any first-catch-all\n" + nstest.CliIP4 + " client-one\n" + hostTable(200, 0, 950, "old"))
	cmd, logs := startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", kf)
	if !connectOK(t, cli, "client-one", nstest.SrvIP4) {
		t.Fatal("client's own key before the reload")
	}
	write("any second-catch-all\n" + hostTable(200, 475, 475, "old") + hostTable(201, 0, 474, "new"))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the near-limit reload", func() bool {
		return strings.Contains(logs.String(), "keys reloaded") || strings.Contains(logs.String(), "reload failed")
	})
	if !strings.Contains(logs.String(), `msg="keys reloaded" rules=951`) {
		t.Fatalf("reload to a table that fits failed:\n%s", logs.String())
	}
	if !connectOK(t, cli, "second-catch-all", nstest.SrvIP4) {
		t.Error("the client's removed /32 did not fall back to the new catch-all key")
	}
	if connectOK(t, cli, "client-one", nstest.SrvIP4) {
		t.Error("the removed /32 key still works")
	}
	socat := func(key string) error {
		_, err := run(t, cli.Command("socat", "-", "TCP6:["+nstest.SrvIP6+"]:"+shieldP+",connect-timeout=0.5,setsockopt-listen="+socatBlob(10, key)), strings.NewReader("x"), 5*time.Second)
		return err
	}
	if err := socat("second-catch-all"); err != nil {
		t.Errorf("socat over IPv6 with the new catch-all: %v", err)
	}

	write("any third-catch-all\n" + nstest.CliIP4 + " client-three\n" + hostTable(202, 0, 1500, "x"))
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload", func() bool { return strings.Contains(logs.String(), "reload failed") })
	if !strings.Contains(logs.String(), "the kernel refused the new table; the previous keys are in force") {
		t.Errorf("refused reload not logged as such:\n%s", logs.String())
	}
	if !connectOK(t, cli, "second-catch-all", nstest.SrvIP4) || socat("second-catch-all") != nil {
		t.Error("the previous catch-all stopped working after a refused reload")
	}
	if connectOK(t, cli, "client-three", nstest.SrvIP4) || socat("third-catch-all") == nil {
		t.Error("a key of the refused table works")
	}
}

// TestIntegrationShieldKeyFileChecks: key files that read like a broken table, carry a
// BOM, or are FIFOs are refused at start, by the shield and by sesame connect, with the
// line number or the file type; the explicit raw: form makes a prefix-like key usable.
func TestIntegrationShieldKeyFileChecks(t *testing.T) {
	nstest.Require(t, "socat")
	srv, cli, _, _ := setup(t)
	bin := sesameBin(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	has := func(err error, want ...string) bool {
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		content string
		want    []string
	}{
		{"192.0.2.0/24\n", []string{"line 1: ", "192.0.2.0/24", "is a prefix with no key", "raw:"}},
		{"10.0.0.0/33 realkey\n", []string{"line 1: ", "10.0.0.0/33", "is not a valid address or prefix"}},
		{"\uFEFF" + theKey + "\n", []string{"line 1: the file starts with a UTF-8 byte-order mark"}},
		{"", []string{"named pipe (FIFO), not a regular file"}},
	} {
		kf := fifo
		if tc.content != "" {
			kf = keyFile(t, tc.content)
		}
		_, err := run(t, srv.Command(bin, "shield", "--listen", ":7001", "--upstream", upstream, "--key-file", kf), nil, 5*time.Second)
		if !has(err, tc.want...) {
			t.Errorf("shield with key file %q: %v; want %q", tc.content, err, tc.want)
		}
		_, err = run(t, cli.Command(bin, "connect", "--key-file", kf, nstest.SrvIP4, shieldP), nil, 5*time.Second)
		if !has(err, tc.want...) {
			t.Errorf("connect with key file %q: %v; want %q", tc.content, err, tc.want)
		}
	}
	startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", keyFile(t, "raw:192.0.2.0/24\n"))
	out, err := run(t, cli.Command("socat", "-", "TCP4:"+nstest.SrvIP4+":"+shieldP+",setsockopt-listen="+socatBlob(2, "192.0.2.0/24")), strings.NewReader("raw\n"), 5*time.Second)
	if err != nil || out != "raw\n" {
		t.Errorf("socat with the raw: key: %q, %v", out, err)
	}
}

// TestIntegrationShieldListenFamilies: 0.0.0.0:PORT is IPv4 only; [::]:PORT and :PORT
// take both families. socat signs as the client.
func TestIntegrationShieldListenFamilies(t *testing.T) {
	nstest.Require(t, "socat", "ss")
	srv, cli, kf, _ := setup(t)
	socat := func(family uint16, addr string) error {
		proto := map[uint16]string{2: "TCP4:", 10: "TCP6:"}[family]
		out, err := run(t, cli.Command("socat", "-", proto+addr+",connect-timeout=0.5,setsockopt-listen="+socatBlob(family, theKey)), strings.NewReader("fam\n"), 5*time.Second)
		if err == nil && out != "fam\n" {
			err = fmt.Errorf("echo %q", out)
		}
		return err
	}
	v4, v6 := nstest.SrvIP4+":"+shieldP, "["+nstest.SrvIP6+"]:"+shieldP
	for _, tc := range []struct {
		listen   string
		v6       bool
		ssListen string
	}{
		{"0.0.0.0:" + shieldP, false, "0.0.0.0:" + shieldP},
		{"[::]:" + shieldP, true, "*:" + shieldP},
		{":" + shieldP, true, "*:" + shieldP},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			cmd, _ := startShield(t, srv, "--listen", tc.listen, "--upstream", upstream, "--key-file", kf)
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Process.Wait() }()
			if ss := srv.Run(t, "ss", "-tlnH", "sport", "= :"+shieldP); !strings.Contains(ss, tc.ssListen) {
				t.Errorf("ss shows %q, want %s", ss, tc.ssListen)
			}
			if err := socat(2, v4); err != nil {
				t.Errorf("IPv4 client: %v", err)
			}
			if err := socat(10, v6); (err == nil) != tc.v6 {
				t.Errorf("IPv6 client: %v (IPv6 wanted: %v)", err, tc.v6)
			}
		})
	}
	var out bytes.Buffer
	c := srv.Command(sesameBin(t), "shield", "--help")
	c.Stdout, c.Stderr = &out, &out
	c.Run()
	if !strings.Contains(out.String(), "--listen 0.0.0.0:PORT listens on IPv4 only; [::]:PORT or :PORT on IPv4 and IPv6") {
		t.Errorf("--help does not explain the listen families:\n%s", out.String())
	}
}

// livingWith lists the pids of living processes whose command line contains marker.
func livingWith(marker string) map[int]int {
	out := map[int]int{} // pid -> ppid
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		st, err2 := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil || err2 != nil || !bytes.Contains(cl, []byte(marker)) {
			continue
		}
		f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(f) > 1 && f[0] != "Z" {
			out[pid], _ = strconv.Atoi(f[1])
		}
	}
	return out
}

// TestIntegrationShieldExecCapAndShutdown: with --exec --max-conns 2 a third client is
// reset (and sesame connect says so), and at SIGTERM every program, the process it moved
// to a session of its own, and the orphan of a double fork are gone within the grace
// period plus SIGKILL; the orphan was the shield's child (subreaper) meanwhile.
func TestIntegrationShieldExecCapAndShutdown(t *testing.T) {
	nstest.Require(t, "socat", "sh", "setsid", "sleep", "cat")
	srv, cli, kf, _ := setup(t)
	marker := fmt.Sprintf("77%d", os.Getpid())
	m1, m2 := marker+".1", marker+".2"
	script := `trap "" TERM; setsid sleep ` + m1 + ` & (sleep ` + m2 + ` &); echo ready; exec cat`
	cmd, logs := startShield(t, srv, "--listen", ":"+shieldP, "--key-file", kf, "--max-conns", "2", "--exec-grace", "300ms",
		"--exec", "--", "sh", "-c", script)
	t.Cleanup(func() {
		for pid := range livingWith(marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// Client one: socat, holding its stdin open.
	pr, pw := io.Pipe()
	defer pw.Close()
	sc := cli.Command("socat", "-", "TCP4:"+nstest.SrvIP4+":"+shieldP+",setsockopt-listen="+socatBlob(2, theKey))
	scOut := &syncBuffer{}
	sc.Stdin, sc.Stdout = pr, scOut
	cli.Start(t, sc)
	waitFor(t, "socat's program", func() bool { return strings.Contains(scOut.String(), "ready") })
	// Client two: in-process.
	var c net.Conn
	if err := cli.Do(t, func() (err error) {
		k, _ := tcpmd5.ParseKey(theKey)
		c, err = tcpmd5.Dial(context.Background(), "tcp4", nstest.SrvIP4+":"+shieldP, k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	// Client three is over the cap.
	_, err := run(t, cli.Command(sesameBin(t), "connect", "--key", theKey, nstest.SrvIP4, shieldP), strings.NewReader("x"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "reset the connection") {
		t.Errorf("third client over --max-conns 2: %v; want a reset reported", err)
	}
	if !strings.Contains(logs.String(), "connection limit reached") {
		t.Error("the limit was not logged")
	}
	shieldPID := cmd.Process.Pid
	waitFor(t, "both programs' descendants", func() bool {
		n1, n2 := 0, 0
		for pid, ppid := range livingWith(marker) {
			cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			switch {
			case !bytes.HasPrefix(cl, []byte("sleep\x00")):
				// the shield and sh carry the markers in their arguments
			case bytes.Contains(cl, []byte(m1)):
				n1++
			case bytes.Contains(cl, []byte(m2)) && ppid == shieldPID:
				n2++ // the double fork's orphan, adopted by the shield
			}
		}
		return n1 == 2 && n2 == 2
	})
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "the shield to exit", func() bool { return syscall.Kill(shieldPID, 0) != nil })
	t.Logf("shield exited %v after SIGTERM", time.Since(start))
	if left := livingWith(marker); len(left) > 0 {
		t.Errorf("processes left after the shield exited: %v", left)
	}
	if !strings.Contains(logs.String(), "grace period") {
		t.Error("no log line about killing after the grace period")
	}
}

// TestIntegrationConnectErrors: errors name the culprit. A black-holed server: the
// address and --timeout; a shield whose upstream is black-holed or down: the shield logs
// the upstream and resets the client, and sesame connect exits 1 saying so.
func TestIntegrationConnectErrors(t *testing.T) {
	srv, cli, kf, _ := setup(t)
	bin := sesameBin(t)
	_, err := run(t, cli.Command(bin, "connect", "--key", theKey, "--timeout", "300ms", nstest.SrvIP4, "7999"), strings.NewReader("x"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), "no answer from "+nstest.SrvIP4+":7999 within 300ms (--timeout)") {
		t.Errorf("black-holed server: %v", err)
	}
	// The upstream is a TCP-MD5 listener with another key: it ignores the shield's SYN.
	var hole net.Listener
	if err := srv.Do(t, func() (err error) {
		k, _ := tcpmd5.ParseKey("not shared")
		hole, err = tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:9100", tcpmd5.Any(k))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	for _, tc := range []struct{ upstream, logged string }{
		{"127.0.0.1:9100", "no answer within 300ms (--connect-timeout)"},
		{"127.0.0.1:9101", "connection refused"},
	} {
		t.Run(tc.upstream, func(t *testing.T) {
			cmd, logs := startShield(t, srv, "--listen", ":"+shieldP, "--upstream", tc.upstream, "--key-file", kf, "--connect-timeout", "300ms")
			defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Process.Wait() }()
			_, err := run(t, cli.Command(bin, "connect", "--key-file", kf, nstest.SrvIP4, shieldP), strings.NewReader("x"), 5*time.Second)
			if err == nil || !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(err.Error(), nstest.SrvIP4+":"+shieldP+" reset the connection") {
				t.Errorf("client: %v; want exit 1 with the reset", err)
			}
			waitFor(t, "the shield's log", func() bool {
				l := logs.String()
				return strings.Contains(l, "upstream unreachable") && strings.Contains(l, "upstream="+tc.upstream) && strings.Contains(l, tc.logged)
			})
		})
	}
}

// TestIntegrationShieldOutOfDescriptors: at RLIMIT_NOFILE the shield says so once, keeps
// the new connections queued, and serves again when descriptors are free; its
// "descriptors" line shows the limit.
func TestIntegrationShieldOutOfDescriptors(t *testing.T) {
	nstest.Require(t, "sh")
	srv, cli, kf, _ := setup(t)
	cmd := srv.Command("sh", "-c", `ulimit -n 40 && exec "$0" "$@"`, sesameBin(t), "shield", "--listen", ":"+shieldP,
		"--upstream", upstream, "--key-file", kf, "--max-conns", "1000", "--probe-interval", "50ms")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	srv.Start(t, cmd)
	waitFor(t, "shield to listen", func() bool { return strings.Contains(logs.String(), "shield listening") })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shield log:\n%s", logs.String())
		}
	})
	if !strings.Contains(logs.String(), "nofile_limit=40") {
		t.Errorf("the start line does not show the limit")
	}
	k, _ := tcpmd5.ParseKey(theKey)
	// About 15 connections fit in 40 descriptors; the shield may reset some of the
	// others (no descriptor for their upstream), so dial errors are fine here.
	var conns []net.Conn
	for range 25 {
		cli.Do(t, func() error {
			if c, err := tcpmd5.Dial(context.Background(), "tcp4", nstest.SrvIP4+":"+shieldP, k); err == nil {
				conns = append(conns, c)
			}
			return nil
		})
	}
	waitFor(t, "the out-of-descriptors message", func() bool { return strings.Contains(logs.String(), "out of file descriptors") })
	for _, c := range conns {
		c.Close()
	}
	msg := "after the stall\n"
	waitFor(t, "a session after the stall", func() bool {
		out, err := run(t, cli.Command(sesameBin(t), "connect", "--key-file", kf, "--timeout", "1s", nstest.SrvIP4, shieldP), strings.NewReader(msg), 5*time.Second)
		return err == nil && out == msg
	})
	waitFor(t, "descriptors free again", func() bool { return strings.Contains(logs.String(), "file descriptors are free again") })
	if n := strings.Count(logs.String(), "out of file descriptors"); n != 1 {
		t.Errorf("running out of descriptors was logged %d times, want once (then counted)", n)
	}
	waitFor(t, "a descriptors line", func() bool {
		return strings.Contains(logs.String(), "msg=descriptors") && strings.Contains(logs.String(), "nofile_limit=40")
	})
}

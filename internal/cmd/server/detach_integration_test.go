package server

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
)

func TestArgv0Detaches(t *testing.T) {
	for argv0, want := range map[string]bool{"fwknopd": true, "/usr/lib/sesame/fwknop-names/fwknopd": true,
		"sesame": false, "/usr/bin/sesame": false, "fwknop": false, "fwknopd.sh": false} {
		if argv0Detaches(argv0) != want {
			t.Errorf("argv0Detaches(%q) = %v", argv0, !want)
		}
	}
}

// pidfd opens pid as a pidfd (so signals cannot reach a recycled pid) and registers a cleanup
// that SIGKILLs it if it still runs when the test ends.
func pidfd(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) // ESRCH once it has exited
		unix.Close(fd)
	})
	return fd
}

// waitExit waits until the process of pidfd fd exits (the pidfd becomes readable).
func waitExit(t *testing.T, fd int, within time.Duration) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(within.Milliseconds()))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("process did not exit within %v (%v)", within, err)
		}
		return
	}
}

// Invoked as fwknopd without -f, sesame detaches as fwknopd does (Debian's unit is
// Type=forking): the command returns 0 only once the server runs with its guard in place, the
// PID file names the detached server, a second start fails with the running one's error
// (passed up by the child), and -K stops it.
func TestIntegrationDetachAsFwknopd(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	dir := t.TempDir()
	fwknopd := filepath.Join(dir, "fwknopd")
	if err := os.Symlink(nstest.Binary(t), fwknopd); err != nil {
		t.Fatal(err)
	}
	runDir, pidFile := filepath.Join(dir, "run"), filepath.Join(dir, "run", "fwknopd.pid")
	os.Mkdir(runDir, 0o700)
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	sesametest.WriteFile(t, conf, "FWKNOP_RUN_DIR "+runDir+";\nENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n")
	sesametest.WriteFile(t, access, accessStanza("10.99.0.0/24"))
	start := func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", srv.Name, fwknopd, "-c", conf, "-a", access)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := start()
	if err != nil {
		t.Fatalf("fwknopd (sesame) start: %v\n%s", err, out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("no PID file once the parent returned: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("PID file %q: %v", b, err)
	}
	fd := pidfd(t, pid)
	if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); !strings.HasPrefix(string(cmdline), fwknopd+"\x00") {
		t.Errorf("pid %d runs %q, want argv[0] %s", pid, cmdline, fwknopd)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("detached server: session %d (%v), want its own (%d)", sid, err, pid)
	}
	if _, err := os.Stat("/dev/log"); err != nil && !strings.Contains(out, "log is discarded") {
		t.Errorf("no /dev/log here, and the parent did not say the detached server's log is lost: %q", out)
	}
	// The child's start-up warnings reach whoever started it, syslog or not.
	if !strings.Contains(out, "allows any port (no OPEN_PORTS)") {
		t.Errorf("the start-up warning about a stanza without OPEN_PORTS did not reach the parent: %q", out)
	}
	// Ready means guarded: the table is there as the parent returns, and a knock is granted.
	srv.Run(t, "nft", "list", "set", "inet", "sesame", "guarded")
	if r := sesametest.Dial(t, cli, sshAddr4, 300*time.Millisecond); r != sesametest.Timeout {
		t.Errorf("guarded port before a knock: %v", r)
	}
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	sendUDP(t, cli, "", spaAddr4, encode(t, spa.Message{Message: nstest.CliIP4 + ",tcp/22"}, testKeys))
	sesametest.WaitDial(t, cli, sshAddr4, sesametest.Open, 2*time.Second)

	out, err = start()
	if err == nil || !strings.Contains(out, "another sesame server is running (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("second start: %v, %q; want the child's refusal naming pid %d", err, out, pid)
	}
	if all := srv.Run(t, fwknopd, "-c", conf, "-a", access, "--fw-list-all"); !strings.Contains(all, "# table inet sesame is complete") ||
		!strings.Contains(all, nstest.CliIP4+" tcp/22 expires in") || !strings.Contains(all, "# hooks: none") {
		t.Errorf("--fw-list-all:\n%s", all)
	}
	if st := srv.Run(t, fwknopd, "-c", conf, "-a", access, "-S"); !strings.Contains(st, "pid="+strconv.Itoa(pid)) {
		t.Errorf("-S: %q", st)
	}
	if k := srv.Run(t, fwknopd, "-c", conf, "-a", access, "-K"); !strings.Contains(k, "pid "+strconv.Itoa(pid)) {
		t.Errorf("-K: %q", k)
	}
	waitExit(t, fd, 5*time.Second)
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("PID file left after -K: %v", err)
	}
}

// A detached start that fails (an interface that does not exist) exits non-zero with the
// child's reason, naming -i/PCAP_INTF.
func TestIntegrationDetachFails(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	ns := nstest.New(t)
	dir := t.TempDir()
	fwknopd := filepath.Join(dir, "fwknopd")
	if err := os.Symlink(nstest.Binary(t), fwknopd); err != nil {
		t.Fatal(err)
	}
	conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	sesametest.WriteFile(t, conf, "FWKNOP_RUN_DIR "+dir+";\nPCAP_INTF nosuch0;\nEXIT_AT_INTF_DOWN Y;\n")
	sesametest.WriteFile(t, access, accessStanza("ANY", "OPEN_PORTS tcp/22"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, fwknopd, "-c", conf, "-a", access).CombinedOutput()
	if b, rerr := os.ReadFile(filepath.Join(dir, "fwknopd.pid")); rerr == nil { // it started after all: stop it
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid > 0 {
			pidfd(t, pid)
		}
	}
	if err == nil || !strings.Contains(string(out), `interface "nosuch0" (-i/PCAP_INTF) does not exist`) {
		t.Errorf("start on a missing interface: %v, %q; want a failure naming nosuch0 and -i/PCAP_INTF", err, out)
	}
}

// Without CAP_NET_RAW (sniffing) or CAP_NET_ADMIN (nftables) the start fails naming the
// capability.
func TestIntegrationMissingPrivilege(t *testing.T) {
	nstest.Require(t, "nft", "setpriv")
	t.Parallel()
	ns := nstest.New(t)
	bin := nstest.Binary(t)
	for _, c := range []struct{ drop, conf, want string }{
		{"-net_raw", "PCAP_INTF lo;\n", "missing privilege CAP_NET_RAW"},
		{"-net_admin", "ENABLE_UDP_SERVER Y;\n", "missing privilege CAP_NET_ADMIN"},
	} {
		dir := t.TempDir()
		conf, access := filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
		sesametest.WriteFile(t, conf, "FWKNOP_RUN_DIR "+dir+";\nSESAME_GUARD_PORTS tcp/22;\n"+c.conf)
		sesametest.WriteFile(t, access, accessStanza("ANY", "OPEN_PORTS tcp/22"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "setpriv", "--bounding-set="+c.drop,
			bin, "server", "-f", "-c", conf, "-a", access).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("bounding set %s: %v, %q; want a failure with %q", c.drop, err, out, c.want)
		}
	}
}

// -C N: the N-th packet is handled in full (granted) before the server exits 0 by itself.
func TestIntegrationPacketLimit(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: accessStanza("10.99.0.0/24"), Args: []string{"-C", "2"}})
	sendUDP(t, cli, "", spaAddr4, []byte("not an spa packet at all"))
	sendUDP(t, cli, "", spaAddr4, encode(t, spa.Message{Message: nstest.CliIP4 + ",tcp/22"}, testKeys))
	select {
	case <-d.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("the server did not exit after 2 packets:\n%s", d.Log())
	}
	d.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP4)
	d.WaitLog(t, 1, time.Second, "sesame server stopped")
	if l := d.LogLines("context canceled"); len(l) > 0 {
		t.Errorf("the last packet was cut short: %q", l)
	}
	sesametest.WaitDial(t, cli, sshAddr4, sesametest.Open, 2*time.Second) // the grant outlives the server
}

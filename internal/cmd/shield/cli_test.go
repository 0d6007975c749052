package shield_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// The tests below run the built sesame binary and third-party peers (socat, nc -S,
// tcpdump) in two namespaces joined by a veth pair: srv (10.99.0.1, fd99::1) runs the
// shield and an echo upstream on 127.0.0.1:9000; cli (10.99.0.2, fd99::2) runs clients.

const (
	theKey   = "interop secret"
	shieldP  = "7000"
	upstream = "127.0.0.1:9000"
)

// sesameBin returns the sesame binary: $SESAME_BIN if set (handy while other packages do
// not build), else nstest.Binary.
func sesameBin(t *testing.T) string {
	if b := os.Getenv("SESAME_BIN"); b != "" {
		return b
	}
	return nstest.Binary(t)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// keyFile writes a 0600 key file and returns its path.
func keyFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "md5.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// recorder is the echo upstream; it also keeps what it received.
type recorder struct {
	syncBuffer
}

func echoUpstream(t *testing.T, ns *nstest.NS, addr string) *recorder {
	t.Helper()
	var l net.Listener
	if err := ns.Do(t, func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	r := &recorder{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.MultiWriter(c, r), c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	return r
}

// startShield starts "sesame shield" in srv with extra args and waits until it listens.
func startShield(t *testing.T, srv *nstest.NS, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	cmd := srv.Command(sesameBin(t), append([]string{"shield"}, args...)...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	srv.Start(t, cmd)
	waitFor(t, "shield to listen", func() bool { return strings.Contains(logs.String(), "shield listening") })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("shield log:\n%s", logs.String())
		}
	})
	return cmd, logs
}

// run runs cmd with stdin, killing it (by PID) after timeout; it returns stdout and
// the error, with stderr appended to the error text.
func run(t *testing.T, cmd *exec.Cmd, stdin io.Reader, timeout time.Duration) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	if err != nil {
		err = fmt.Errorf("%v %v: %w: %s", cmd.Args[3:], "", err, errb.String())
	}
	return out.String(), err
}

// socatBlob is the raw struct tcp_md5sig for socat's setsockopt-listen=6:32:x<blob>: a
// prefix-0 key for every peer, on a socket of the given family (2 or 10).
func socatBlob(family uint16, key string) string {
	b := make([]byte, 216)
	binary.LittleEndian.PutUint16(b[0:], family)
	b[128] = 1 // TCP_MD5SIG_FLAG_PREFIX, prefixlen 0
	binary.LittleEndian.PutUint16(b[130:], uint16(len(key)))
	copy(b[136:], key)
	return "6:32:x" + hex.EncodeToString(b)
}

func setup(t *testing.T) (srv, cli *nstest.NS, kf string, up *recorder) {
	nstest.Require(t)
	srv, cli = nstest.Pair(t)
	kf = keyFile(t, theKey+"\n")
	up = echoUpstream(t, srv, upstream)
	return srv, cli, kf, up
}

func TestIntegrationShieldWithConnect(t *testing.T) {
	srv, cli, kf, _ := setup(t)
	_, logs := startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", kf, "--probe-interval", "100ms")
	bin := sesameBin(t)
	for _, host := range []string{nstest.SrvIP4, nstest.SrvIP6} {
		msg := "relay via " + host + "\n"
		out, err := run(t, cli.Command(bin, "connect", "--key-file", kf, host, shieldP), strings.NewReader(msg), 5*time.Second)
		if err != nil || out != msg {
			t.Errorf("connect to %s: %q, %v; want the echo", host, out, err)
		}
		// Key from the environment and from --key.
		c := cli.Command("env", "SESAME_MD5_KEY="+theKey, bin, "connect", host, shieldP)
		if out, err := run(t, c, strings.NewReader(msg), 5*time.Second); err != nil || out != msg {
			t.Errorf("connect with $SESAME_MD5_KEY: %q, %v", out, err)
		}
		start := time.Now()
		_, err = run(t, cli.Command(bin, "connect", "--key", "wrong key", "--timeout", "500ms", host, shieldP), strings.NewReader("x"), 5*time.Second)
		if err == nil || !strings.Contains(err.Error(), "timeout") {
			t.Errorf("wrong key to %s: %v, want a timeout", host, err)
		}
		if d := time.Since(start); d < 450*time.Millisecond {
			t.Errorf("wrong key failed after %v: the SYN was answered", d)
		}
	}
	// The unsigned and wrong SYNs show up in the probe log.
	noKey := exec.Command("ip", "netns", "exec", cli.Name, "socat", "-u", "-", "TCP4:"+nstest.SrvIP4+":"+shieldP+",connect-timeout=0.5")
	if _, err := run(t, noKey, strings.NewReader("x"), 5*time.Second); err == nil {
		t.Error("plain socat connected to the shield")
	}
	waitFor(t, "probe log", func() bool {
		l := logs.String()
		return strings.Contains(l, "md5 probes") && strings.Contains(l, "no_signature=") && strings.Contains(l, "wrong_signature=")
	})
}

func TestIntegrationShieldThirdPartyClients(t *testing.T) {
	nstest.Require(t, "socat", "nc", "script")
	srv, cli, kf, up := setup(t)
	startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", kf)

	// socat with the raw struct, IPv4 and IPv6.
	for _, c := range []struct {
		addr   string
		family uint16
	}{{"TCP4:" + nstest.SrvIP4 + ":" + shieldP, 2}, {"TCP6:[" + nstest.SrvIP6 + "]:" + shieldP, 10}} {
		msg := "socat says hi over " + c.addr + "\n"
		out, err := run(t, cli.Command("socat", "-", c.addr+",setsockopt-listen="+socatBlob(c.family, theKey)), strings.NewReader(msg), 5*time.Second)
		if err != nil || out != msg {
			t.Errorf("socat %s: %q, %v", c.addr, out, err)
		}
		bad := c.addr + ",connect-timeout=0.5,setsockopt-listen=" + socatBlob(c.family, "wrong")
		if _, err := run(t, cli.Command("socat", "-", bad), strings.NewReader("x"), 5*time.Second); err == nil {
			t.Errorf("socat with a wrong key connected to %s", c.addr)
		}
	}

	// nc -S reads the key from a terminal: a pty gives it one.
	marker := "nc-through-the-shield"
	p := startPTY(t, cli, "nc", "-n", "-S", "-w", "2", nstest.SrvIP4, shieldP)
	p.answer(t, theKey)
	p.write(t, marker+"\n")
	waitFor(t, "nc -S data at the upstream", func() bool { return strings.Contains(up.String(), marker) })
	waitFor(t, "the echo back to nc", func() bool { return strings.Count(p.out.String(), marker) >= 2 })

	p = startPTY(t, cli, "nc", "-v", "-n", "-S", "-w", "1", nstest.SrvIP4, shieldP)
	p.answer(t, "wrong")
	waitFor(t, "nc -S with a wrong key to time out", func() bool { return strings.Contains(p.out.String(), "timed out") })
}

// TestIntegrationTcpdumpSeesValidMD5 checks every segment of a sesame session with
// tcpdump's own MD5 verifier.
func TestIntegrationTcpdumpSeesValidMD5(t *testing.T) {
	nstest.Require(t, "tcpdump")
	srv, cli, kf, _ := setup(t)
	startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", kf)
	pcap := filepath.Join(t.TempDir(), "s.pcap")
	td := srv.Command("tcpdump", "-i", srv.Ifc, "-nn", "-U", "--immediate-mode", "-B", "8192", "-w", pcap, "tcp port "+shieldP)
	tdLog := &syncBuffer{}
	td.Stderr = tdLog
	srv.Start(t, td)
	waitFor(t, "tcpdump", func() bool { return strings.Contains(tdLog.String(), "listening on") })

	msg := strings.Repeat("signed segment ", 2000)
	out, err := run(t, cli.Command(sesameBin(t), "connect", "--key-file", kf, nstest.SrvIP4, shieldP), strings.NewReader(msg), 5*time.Second)
	if err != nil || out != msg {
		t.Fatalf("session: %d bytes, %v", len(out), err)
	}
	time.Sleep(300 * time.Millisecond)
	td.Process.Signal(syscall.SIGTERM)
	waitFor(t, "tcpdump to exit", func() bool { return syscall.Kill(td.Process.Pid, 0) != nil })

	check := func(key string) (valid, invalid, total int) {
		text, err := exec.Command("tcpdump", "-M", key, "-nn", "-r", pcap).CombinedOutput()
		if err != nil {
			t.Errorf("tcpdump -r: %v\n%s", err, text)
		}
		for _, line := range strings.Split(string(text), "\n") {
			if !strings.Contains(line, "Flags") {
				continue
			}
			total++
			if strings.Contains(line, "md5 valid") {
				valid++
			}
			if strings.Contains(line, "invalid") {
				invalid++
			}
		}
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tcpdump: %s", tdLog.String())
		}
	})
	valid, invalid, total := check(theKey)
	if total < 6 || valid != total || invalid != 0 {
		t.Errorf("tcpdump -M with the key: %d of %d segments md5 valid, %d invalid", valid, total, invalid)
	}
	if _, inv, tot := check("not the key"); inv != tot {
		t.Errorf("tcpdump -M with another key: %d of %d invalid", inv, tot)
	}
}

func TestIntegrationConnectToThirdPartyServers(t *testing.T) {
	nstest.Require(t, "socat", "nc", "script")
	srv, cli := nstest.Pair(t)
	kf := keyFile(t, "hex:"+hex.EncodeToString([]byte(theKey))+"\n")
	bin := sesameBin(t)

	// socat as an MD5 echo server.
	sc := srv.Command("socat", "TCP4-LISTEN:7400,bind="+nstest.SrvIP4+",reuseaddr,fork,setsockopt-listen="+socatBlob(2, theKey), "EXEC:/bin/cat")
	srv.Start(t, sc)
	msg := "to socat\n"
	var out string
	var err error
	waitFor(t, "socat server", func() bool {
		out, err = run(t, cli.Command(bin, "connect", "--key-file", kf, "--timeout", "1s", nstest.SrvIP4, "7400"), strings.NewReader(msg), 5*time.Second)
		return err == nil
	})
	if out != msg {
		t.Errorf("connect to socat: %q", out)
	}
	if _, err := run(t, cli.Command(bin, "connect", "--key", "wrong", "--timeout", "500ms", nstest.SrvIP4, "7400"), strings.NewReader("x"), 5*time.Second); err == nil {
		t.Error("wrong key connected to socat")
	}

	// nc -l -S as the server; sesame connect -L forwards a local port to it.
	nc := startPTY(t, srv, "nc", "-n", "-l", "-S", nstest.SrvIP4, "7302")
	nc.answer(t, theKey)
	ncOut := &nc.out
	fwd := cli.Command(bin, "connect", "--key-file", kf, "-L", "8000", nstest.SrvIP4, "7302")
	fwdLog := &syncBuffer{}
	fwd.Stderr = fwdLog
	cli.Start(t, fwd)
	waitFor(t, "forwarder", func() bool { return strings.Contains(fwdLog.String(), "forwarding") })
	marker := "forwarded-to-nc"
	var c net.Conn
	if err := cli.Do(t, func() (err error) { c, err = net.Dial("tcp", "127.0.0.1:8000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, marker)
	waitFor(t, "nc -l -S to print the data", func() bool { return strings.Contains(ncOut.String(), marker) })
}

func TestIntegrationShieldExecAndReload(t *testing.T) {
	srv, cli, kf, _ := setup(t)
	cmd, logs := startShield(t, srv, "--listen", ":"+shieldP, "--key-file", kf, "--exec", "--", "sh", "-c", `echo "hello $TCPREMOTEIP"`)
	bin := sesameBin(t)
	out, err := run(t, cli.Command(bin, "connect", "--key-file", kf, nstest.SrvIP4, shieldP), strings.NewReader(""), 5*time.Second)
	if err != nil || out != "hello "+nstest.CliIP4+"\n" {
		t.Errorf("exec mode: %q, %v", out, err)
	}
	// Rotate through the key file and SIGHUP.
	if err := os.WriteFile(kf, []byte("any new key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload", func() bool { return strings.Contains(logs.String(), "keys reloaded") })
	if _, err := run(t, cli.Command(bin, "connect", "--key", theKey, "--timeout", "500ms", nstest.SrvIP4, shieldP), nil, 5*time.Second); err == nil {
		t.Error("old key still accepted after reload")
	}
	if out, err := run(t, cli.Command(bin, "connect", "--key", "new key", nstest.SrvIP4, shieldP), nil, 5*time.Second); err != nil || !strings.HasPrefix(out, "hello") {
		t.Errorf("new key after reload: %q, %v", out, err)
	}
	// A group-readable key file is refused.
	os.Chmod(kf, 0o640)
	_, err = run(t, srv.Command(bin, "shield", "--listen", ":7001", "--upstream", upstream, "--key-file", kf), nil, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable key file: %v", err)
	}
}

// TestIntegrationShieldSocketActivation runs the shield under systemd-socket-activate,
// which, like systemd with Accept=no, starts the service on the first connection. That
// connection is unsigned: the socket has no key until sesame installs them (the
// documented window), so it is handshaken by the kernel; sesame must then close it.
func TestIntegrationShieldSocketActivation(t *testing.T) {
	nstest.Require(t, "systemd-socket-activate")
	srv, cli, kf, _ := setup(t)
	cmd := srv.Command("systemd-socket-activate", "-l", nstest.SrvIP4+":"+shieldP, sesameBin(t), "shield", "--upstream", upstream, "--key-file", kf)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	srv.Start(t, cmd)
	waitFor(t, "socket", func() bool { return strings.Contains(logs.String(), "Listening on") })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})

	plain := func() (net.Conn, error) {
		var c net.Conn
		err := cli.Do(t, func() (err error) {
			c, err = (&net.Dialer{Timeout: 500 * time.Millisecond}).Dial("tcp", nstest.SrvIP4+":"+shieldP)
			return err
		})
		return c, err
	}
	trigger, err := plain()
	if err != nil {
		t.Fatalf("the activating connection: %v", err)
	}
	defer trigger.Close()
	waitFor(t, "activated shield", func() bool { return strings.Contains(logs.String(), "shield listening") })
	trigger.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := trigger.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("the unsigned connection queued before the keys was not closed (read %d, %v)", n, err)
	}

	msg := "activated\n"
	if out, err := run(t, cli.Command(sesameBin(t), "connect", "--key-file", kf, nstest.SrvIP4, shieldP), strings.NewReader(msg), 5*time.Second); err != nil || out != msg {
		t.Errorf("signed client: %q, %v", out, err)
	}
	if c, err := plain(); err == nil {
		c.Close()
		t.Error("unsigned client connected to the socket-activated shield")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pty runs a program on a pseudo-terminal, as a user at a terminal would.
type pty struct {
	master *os.File
	out    syncBuffer
}

// startPTY starts name in ns with a new pty as its controlling terminal and stdio.
func startPTY(t *testing.T, ns *nstest.NS, name string, args ...string) *pty {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	sl, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	p := &pty{master: m}
	cmd := ns.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = sl, sl, sl
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	ns.Start(t, cmd)
	go io.Copy(&p.out, m)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s on the pty:\n%s", name, p.out.String())
		}
	})
	return p
}

// answer waits for the password prompt and types the key.
func (p *pty) answer(t *testing.T, key string) {
	t.Helper()
	waitFor(t, "the password prompt", func() bool { return strings.Contains(p.out.String(), "password:") })
	// readpassphrase turns echo off with TCSAFLUSH, which discards input typed before:
	// wait until the terminal's echo is off.
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(int(p.master.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ECHO != 0
	}
	waitFor(t, "echo off", func() bool { return !echo() })
	p.write(t, key+"\n")
	// It restores the terminal with TCSAFLUSH too: type nothing more until echo is back.
	waitFor(t, "echo on", echo)
}

func (p *pty) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.master, s); err != nil {
		t.Fatal(err)
	}
}

package server

import (
	"crypto/rand"
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
	"github.com/sesame-spa/sesame/spa"
)

// Test keys shared by the integration tests.
const (
	testKey  = "fwknoptest"
	testHMAC = "hmactest"
)

var testKeys = spa.Keys{Key: []byte(testKey), HMACKey: []byte(testHMAC)}

// daemon is a "sesame server" process started by a test inside a namespace.
type daemon struct {
	t       *testing.T
	ns      *nstest.NS
	dir     string
	conf    string
	access  string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
}

// writeConfigs writes fwknopd.conf (serverConf plus run-dir settings) and access.conf into a
// new directory.
func writeConfigs(t *testing.T, serverConf, accessConf string) (dir, conf, access string) {
	t.Helper()
	dir = t.TempDir()
	conf, access = filepath.Join(dir, "fwknopd.conf"), filepath.Join(dir, "access.conf")
	run := filepath.Join(dir, "run")
	full := fmt.Sprintf("FWKNOP_RUN_DIR %s;\nFWKNOP_PID_FILE %s/sesame.pid;\nDIGEST_FILE %s/digest.cache;\n%s",
		run, run, run, serverConf)
	if err := os.WriteFile(conf, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(access, []byte(accessConf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(run, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, conf, access
}

// startDaemon starts sesame server -f in ns and waits until it is listening.
func startDaemon(t *testing.T, ns *nstest.NS, serverConf, accessConf string, args ...string) *daemon {
	t.Helper()
	dir, conf, access := writeConfigs(t, serverConf, accessConf)
	d := &daemon{t: t, ns: ns, dir: dir, conf: conf, access: access, logPath: filepath.Join(dir, "sesame.log")}
	d.start(args...)
	return d
}

func (d *daemon) start(args ...string) {
	t := d.t
	t.Helper()
	f, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := len(d.log())
	cmd := d.ns.Command(nstest.Binary(t), append([]string{"server", "-f", "-c", d.conf, "-a", d.access}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sesame server: %v", err)
	}
	d.cmd, d.done = cmd, make(chan struct{})
	done := d.done
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { d.stop(syscall.SIGTERM) })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(d.log()[before:], "sesame server started") {
			return
		}
		select {
		case <-done:
			t.Fatalf("sesame server exited at start:\n%s", d.log())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("sesame server did not start:\n%s", d.log())
}

// stop sends sig and waits for the process to exit (SIGKILL after 5 s).
func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		d.t.Errorf("sesame server did not stop on %v", sig)
	}
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// waitLog waits until the log holds n lines containing every one of substrs.
func (d *daemon) waitLog(n int, timeout time.Duration, substrs ...string) []string {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var hits []string
		for _, l := range strings.Split(d.log(), "\n") {
			ok := true
			for _, s := range substrs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				hits = append(hits, l)
			}
		}
		if len(hits) >= n {
			return hits
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("no %d log line(s) with %q within %v:\n%s", n, substrs, timeout, d.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// listen runs a TCP server on addr inside ns that writes a banner and closes each connection.
func listen(t *testing.T, ns *nstest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(t, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("SSH-2.0-sesame-test\r\n"))
			c.Close()
		}
	}()
}

type dialResult int

const (
	dialOpen dialResult = iota
	dialTimeout
	dialRefused
)

func (r dialResult) String() string { return [...]string{"open", "timeout", "refused"}[r] }

// dial tries one TCP connection from ns to addr.
func dial(t *testing.T, ns *nstest.NS, addr string, timeout time.Duration) dialResult {
	t.Helper()
	var res dialResult
	err := ns.Do(t, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		switch {
		case err == nil:
			c.Close()
			res = dialOpen
		case errors.Is(err, syscall.ECONNREFUSED):
			res = dialRefused
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				res = dialTimeout
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return res
}

// waitDial retries dial until it gives want, and returns how long that took. A timeout must
// be seen twice in a row (300 ms each), so one SYN lost on a loaded machine is not "shut".
func waitDial(t *testing.T, ns *nstest.NS, addr string, want dialResult, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	streak := 0
	for {
		r := dial(t, ns, addr, 300*time.Millisecond)
		if r == want {
			streak++
			if want != dialTimeout || streak == 2 {
				return time.Since(start)
			}
			continue
		}
		streak = 0
		if time.Since(start) > within {
			t.Fatalf("dial %s: %v, still not %v after %v", addr, r, want, within)
		}
		if r != dialTimeout {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// fwknop runs Debian's real client in ns with test keys and the given extra arguments.
func fwknop(t *testing.T, ns *nstest.NS, args ...string) string {
	t.Helper()
	home := t.TempDir()
	all := append([]string{"--use-hmac", "--key-rijndael", testKey, "--key-hmac", testHMAC,
		"--no-rc-file", "--no-save-args"}, args...)
	cmd := ns.Command("fwknop", all...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fwknop %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// encode builds a packet with sesame's own encoder.
func encode(t *testing.T, m spa.Message, k spa.Keys) []byte {
	t.Helper()
	if m.Username == "" {
		m.Username = "root"
	}
	if m.Timestamp == 0 {
		m.Timestamp = time.Now().Unix()
	}
	if m.Type == 0 && m.ClientTimeout == 0 && !strings.Contains(m.Message, "echo") {
		m.Type = spa.AccessMsg
	}
	w, err := spa.Encode(&m, k, rand.Reader)
	if err != nil {
		t.Fatalf("encode %+v: %v", m, err)
	}
	return []byte(w)
}

// sendUDP sends each payload as one datagram from ns (bound to laddr if not "") to raddr.
func sendUDP(t *testing.T, ns *nstest.NS, laddr, raddr string, payloads ...[]byte) {
	t.Helper()
	err := ns.Do(t, func() error {
		var la *net.UDPAddr
		if laddr != "" {
			var err error
			if la, err = net.ResolveUDPAddr("udp", laddr); err != nil {
				return err
			}
		}
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", la, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		for _, p := range payloads {
			if _, err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp %s -> %s: %v", laddr, raddr, err)
	}
}

// fwList runs "sesame server --fw-list" against d's configuration.
func (d *daemon) fwList() string {
	d.t.Helper()
	out, err := d.ns.Command(nstest.Binary(d.t), "server", "-c", d.conf, "-a", d.access, "--fw-list").CombinedOutput()
	if err != nil {
		d.t.Fatalf("--fw-list: %v\n%s", err, out)
	}
	return string(out)
}

const syscallHUP = syscall.SIGHUP

func writeFileT(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

const b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// garbage returns n random payloads of base64 characters (they pass the cheap wire checks, so
// each costs the server an HMAC).
func garbage(n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		b := make([]byte, size)
		rand.Read(b)
		for j := range b {
			b[j] = b64chars[b[j]&63]
		}
		out[i] = b
	}
	return out
}

// flood sends garbage from ns to raddr at rate packets/s until stop is closed and returns the
// count sent.
func flood(t *testing.T, ns *nstest.NS, raddr string, rate int, stop <-chan struct{}) int {
	pkts := garbage(1024, 204)
	n := 0
	err := ns.Do(t, func() error {
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return err
		}
		c, err := net.DialUDP("udp", nil, ra)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			for i := range 50 {
				if _, err := c.Write(pkts[(n+i)%len(pkts)]); err == nil { // errors do not stop a flood
					n++
				}
			}
			if w := time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(rate))); w > 0 {
				time.Sleep(w)
			}
		}
	})
	if err != nil {
		t.Errorf("flood: %v", err)
	}
	return n
}

// ctl runs "sesame server -c CONF ARGS..." (a control command such as -R, -S, -K).
func (d *daemon) ctl(args ...string) string {
	d.t.Helper()
	out, err := d.ns.Command(nstest.Binary(d.t), append([]string{"server", "-c", d.conf, "-a", d.access}, args...)...).CombinedOutput()
	if err != nil {
		d.t.Fatalf("sesame server %v: %v\n%s", args, err, out)
	}
	return string(out)
}

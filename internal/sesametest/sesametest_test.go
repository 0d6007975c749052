package sesametest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

func TestParseFWList(t *testing.T) {
	got, err := ParseFWList("# 2 live grant(s) in table inet sesame\n10.99.0.2 tcp/22 expires in 29s\nfd99::2 udp/53 expires in 1m0s\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["10.99.0.2 tcp/22"] != 29*time.Second || got["fd99::2 udp/53"] != time.Minute {
		t.Errorf("ParseFWList: %v", got)
	}
	if got, err := ParseFWList("# 0 live grant(s)\n"); err != nil || len(got) != 0 {
		t.Errorf("no grants: %v, %v", got, err)
	}
	for _, bad := range []string{"10.99.0.2 tcp/22", "10.99.0.2 tcp/22 expires in soon"} {
		if _, err := ParseFWList(bad); err == nil {
			t.Errorf("ParseFWList(%q) did not fail", bad)
		}
	}
}

// TestListenDial checks every handler and every dial result against the kernel.
func TestListenDial(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	Listen(t, ns, "127.0.0.1:7", Echo)
	Listen(t, ns, "127.0.0.1:8", Banner)
	Listen(t, ns, "127.0.0.1:9", Hangup)
	ns.Run(t, "nft", "add table inet sesametest { chain in { type filter hook input priority 0; tcp dport 10 drop; }; }")

	c, err := DialConn(t, ns, "127.0.0.1:7", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Errorf("Echo: %q, %v", buf, err)
	}
	c, err = DialConn(t, ns, "127.0.0.1:8", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "SSH-2.0-sesame-test\r\n" {
		t.Errorf("Banner: %q, %v", b, err)
	}
	c, err = DialConn(t, ns, "127.0.0.1:9", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(time.Second))
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("Hangup: %q, %v", b, err)
	}

	for addr, want := range map[string]DialResult{"127.0.0.1:7": Open, "127.0.0.1:11": Refused, "127.0.0.1:10": Timeout} {
		if r := Dial(t, ns, addr, 300*time.Millisecond); r != want {
			t.Errorf("Dial %s: %v, want %v", addr, r, want)
		}
		if d := WaitDial(t, ns, addr, want, 2*time.Second); want != Timeout && d > time.Second {
			t.Errorf("WaitDial %s %v took %v", addr, want, d)
		}
	}
	if _, err := DialConn(t, ns, "127.0.0.1:11", time.Second); err == nil {
		t.Error("DialConn to a closed port succeeded")
	}

	// nil: the test process's own namespace.
	addr := Listen(t, nil, "127.0.0.1:0", Banner)
	hc, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	hc.Close()
}

// TestServer runs the real sesame server: closed, a knock opens the guarded port, --fw-list
// shows the grant, -S names the PID, and a restart keeps the grant.
func TestServer(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srvNS, cliNS := nstest.Pair(t)
	Listen(t, srvNS, ":22", Banner)
	keys := spa.Keys{Key: []byte("sesametest-key"), HMACKey: []byte("sesametest-hmac")}
	s := StartServer(t, srvNS, ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 30\n", keys.Key, keys.HMACKey)})
	ssh := nstest.SrvIP4 + ":22"
	if r := Dial(t, cliNS, ssh, 300*time.Millisecond); r != Timeout {
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
		_, err = io.WriteString(c, w)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	WaitDial(t, cliNS, ssh, Open, 2*time.Second)
	if l := s.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP4); len(l) != 1 {
		t.Errorf("grant lines: %q", l)
	}
	if g := s.FWList(t); len(g) != 1 || g[nstest.CliIP4+" tcp/22"] > 30*time.Second || g[nstest.CliIP4+" tcp/22"] < 20*time.Second {
		t.Errorf("FWList: %v", g)
	}
	if out := s.Ctl(t, "-S"); !strings.Contains(out, fmt.Sprintf("pid=%d", s.PID)) {
		t.Errorf("-S: %s (pid %d)", out, s.PID)
	}
	first := s.PID
	s.Stop(t, syscall.SIGKILL)
	if !s.Exited() {
		t.Fatal("not exited after Stop")
	}
	s.Restart(t)
	if s.PID == first || s.Exited() {
		t.Errorf("restart: pid %d (was %d), exited %v", s.PID, first, s.Exited())
	}
	if n := len(s.LogLines("sesame server started")); n != 2 {
		t.Errorf("%d start lines after a restart, want 2", n)
	}
	if _, ok := s.FWList(t)[nstest.CliIP4+" tcp/22"]; !ok {
		t.Error("grant lost over kill -9 and restart")
	}
}

// TestSSHD logs in to the real sshd with the throwaway keys, and checks that a host key
// that is not in known_hosts is refused.
func TestSSHD(t *testing.T) {
	nstest.Require(t, "sshd", "ssh", "ssh-keygen")
	t.Parallel()
	ns := nstest.New(t)
	k := NewSSHKeys(t, "127.0.0.1")
	d := StartSSHD(t, ns, k, "127.0.0.1")
	out, err := k.SSH(ns, []string{"-o", "ConnectTimeout=10"}, "root@127.0.0.1", "echo", "sesametest-ok").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "sesametest-ok" {
		t.Fatalf("ssh: %v\n%s\nsshd:\n%s", err, out, d.Log())
	}
	other := NewSSHKeys(t, "127.0.0.1") // known_hosts with another host key
	other.UserKey = k.UserKey
	if out, err := other.SSH(ns, nil, "root@127.0.0.1", "true").CombinedOutput(); err == nil {
		t.Errorf("ssh accepted a host key not in known_hosts:\n%s", out)
	}
}

package sshproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/spa"
)

// TestKnockThenRelay: the "server" is a UDP socket that, on receiving a valid SPA packet,
// starts a TCP echo-with-prefix service on the port. Until then connections are refused, so
// the proxy must retry, connect quickly, and relay both ways with half-close.
func TestKnockThenRelay(t *testing.T) {
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	// Reserve a TCP port, then free it so that it is closed until the knock arrives.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	keys := spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")}
	opened := make(chan time.Time, 1)
	go func() {
		buf := make([]byte, 2048)
		n, _, err := udp.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := spa.Decode(buf[:n], keys)
		if err != nil || m.Message != "127.0.0.1,tcp/"+fmt.Sprint(tcpPort) {
			t.Errorf("knock: %v %+v", err, m)
			return
		}
		time.Sleep(100 * time.Millisecond) // the "firewall" takes a while
		l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", tcpPort))
		if err != nil {
			t.Errorf("listen: %v", err)
			return
		}
		opened <- time.Now()
		defer l.Close()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c) // until the proxy half-closes
		c.Write(append([]byte("echo:"), data...))
	}()

	dir := t.TempDir()
	rc := filepath.Join(dir, "rc")
	os.WriteFile(rc, []byte(fmt.Sprintf("[other]\nSPA_SERVER 10.1.1.1\n\n[box]\nSPA_SERVER 127.0.0.1\nSPA_SERVER_PORT %d\n"+
		"ACCESS tcp/%d\nALLOW_IP 127.0.0.1\nKEY fwknoptest\nHMAC_KEY hmactest\nUSE_HMAC Y\n",
		udp.LocalAddr().(*net.UDPAddr).Port, tcpPort)), 0o600)

	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"--rc-file", rc, "-v", "127.0.0.1", fmt.Sprint(tcpPort)},
		strings.NewReader("hello"), &out, &errb, knock.NetSender{}, knock.Env{})
	done := time.Now()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != "echo:hello" {
		t.Errorf("relayed %q", out.String())
	}
	select {
	case at := <-opened:
		if !strings.Contains(errb.String(), "connected to") {
			t.Errorf("stderr %q", errb.String())
		}
		t.Logf("port open -> relay done in %v", done.Sub(at))
	default:
		t.Error("server never opened")
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "rc")
	os.WriteFile(rc, []byte("[box]\nSPA_SERVER 127.0.0.1\nACCESS tcp/1\nALLOW_IP 127.0.0.1\nKEY k\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--rc-file", rc, "nohost", "22"}, "no stanza [nohost]"},
		{[]string{"--rc-file", rc, "box"}, "want HOST PORT"},
		{[]string{"--rc-file", rc, "box", "0"}, "1..65535"},
		{[]string{"--rc-file", filepath.Join(dir, "missing"), "box", "22"}, "no such file"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(context.Background(), c.args, strings.NewReader(""), &out, &errb, knock.NetSender{}, knock.Env{})
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, %q", c.args, code, errb.String())
		}
	}
}

func TestDialRetryGivesUp(t *testing.T) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err := DialRetry(context.Background(), addr, 10*time.Millisecond, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not accept") {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
}

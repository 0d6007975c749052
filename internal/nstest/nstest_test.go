package nstest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestIntegrationPair(t *testing.T) {
	Require(t, "ping")
	srv, cli := Pair(t)
	out := cli.Run(t, "ping", "-c", "1", "-W", "2", SrvIP4)
	if !strings.Contains(out, "1 received") {
		t.Fatalf("ping v4: %s", out)
	}
	cli.Run(t, "ping", "-6", "-c", "1", "-W", "2", SrvIP6)

	var ln net.Listener
	if err := srv.Do(t, func() (err error) {
		ln, err = net.Listen("tcp", SrvIP4+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	var got string
	if err := cli.Do(t, func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		b := make([]byte, 2)
		_, err = c.Read(b)
		got = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != "hi" {
		t.Fatalf("got %q", got)
	}
	// The root namespace cannot reach the pair.
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), 200*time.Millisecond); err == nil {
		t.Fatal("root namespace reached the test namespace")
	}
}

func TestIntegrationStartStopsByPID(t *testing.T) {
	Require(t, "sleep")
	ns := New(t)
	cmd := ns.Command("sleep", "60")
	ns.Start(t, cmd)
	if cmd.Process.Pid <= 0 {
		t.Fatal("no pid")
	}
}

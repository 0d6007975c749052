package redistest

import (
	"net"
	"strings"
	"testing"
)

// A server answers, is gone after Stop, and answers again, empty, after Restart on its port.
func TestStartStopRestart(t *testing.T) {
	s := Start(t, Options{})
	if got := s.Cli(t, "SET", "k", "v"); got != "OK" {
		t.Fatalf("SET: %q", got)
	}
	pid := s.PID()
	s.Stop()
	if s.PID() != 0 {
		t.Fatal("PID after Stop")
	}
	if c, err := net.Dial("tcp", s.HostPort()); err == nil {
		c.Close()
		t.Error("connected after Stop")
	}
	s.Restart(t)
	if s.PID() == pid || s.PID() == 0 {
		t.Errorf("PID %d after Restart (was %d)", s.PID(), pid)
	}
	if got := s.Cli(t, "GET", "k"); got != "" {
		t.Errorf("GET after Restart: %q, want empty (no persistence)", got)
	}
	if !strings.Contains(s.Log(), "Ready to accept connections") {
		t.Errorf("log: %q", s.Log())
	}
}

// Launch needs a directory; with one it starts a server the caller stops.
func TestLaunch(t *testing.T) {
	if _, err := Launch(Options{}); err == nil {
		t.Fatal("Launch without Dir: no error")
	}
	Require(t)
	s, err := Launch(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if got := s.Cli(t, "PING"); got != "PONG" {
		t.Errorf("PING: %q", got)
	}
	s.Stop()
	if s.PID() != 0 {
		t.Error("PID after Stop")
	}
}

package logging

import (
	"log/slog"
	"log/syslog"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParseFacility(t *testing.T) {
	for in, want := range map[string]syslog.Priority{
		"LOG_DAEMON": syslog.LOG_DAEMON, "log_local7": syslog.LOG_LOCAL7, "AUTHPRIV": syslog.LOG_AUTHPRIV, " LOG_LOCAL0 ": syslog.LOG_LOCAL0,
	} {
		if got, err := ParseFacility(in); err != nil || got != want {
			t.Errorf("ParseFacility(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "LOG_", "LOG_LOCAL8", "daemon.info", "LOG_EMERG"} {
		if _, err := ParseFacility(in); err == nil || !strings.Contains(err.Error(), "LOG_LOCAL0..LOG_LOCAL7") {
			t.Errorf("ParseFacility(%q): %v, want an error naming the choices", in, err)
		}
	}
}

func FuzzParseFacility(f *testing.F) {
	for _, s := range []string{"LOG_DAEMON", "local3", "", "LOG_LOG_X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseFacility(s)
		if err == nil && (p&7 != 0 || p > syslog.LOG_LOCAL7) {
			t.Fatalf("ParseFacility(%q) = %d: not a facility", s, p)
		}
	})
}

// A record reaches the syslog socket as one RFC 3164 message with the facility and the level's
// severity, the identity as tag, and slog's text without time=.
func TestSyslogHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sl, err := DialSyslog("unixgram", path, "spa", "LOG_LOCAL3")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	log := slog.New(sl.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Warn("access refused", "src", "10.0.0.1")
	log.Debug("detail")
	log.Error("bad")
	log.Info("granted", "ports", "tcp/22")
	// facility local3 = 19: warning 19*8+4, debug +7, err +3, info +6
	for _, want := range []string{
		`<156>.* spa\[\d+\]: level=WARN msg="access refused" src=10\.0\.0\.1$`,
		`<159>.* spa\[\d+\]: level=DEBUG msg=detail$`,
		`<155>.* spa\[\d+\]: level=ERROR msg=bad$`,
		`<158>.* spa\[\d+\]: level=INFO msg=granted ports=tcp/22$`,
	} {
		ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		msg := strings.TrimSuffix(string(buf[:n]), "\n")
		if !regexp.MustCompile(want).MatchString(msg) || strings.Contains(msg, "time=") {
			t.Errorf("message %q, want %s", msg, want)
		}
	}
	if _, err := DialSyslog("unixgram", path, "spa", "LOG_NOPE"); err == nil {
		t.Error("unknown facility accepted")
	}
	if _, err := DialSyslog("unixgram", filepath.Join(t.TempDir(), "none"), "spa", "LOG_DAEMON"); err == nil {
		t.Error("a missing socket gave no error")
	}
}

package server

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --syslog-enable logs to stderr and to syslog, tagged with SYSLOG_IDENTITY and
// SYSLOG_FACILITY; without it nothing reaches syslog.
func TestSyslogEnable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	syslogNet, syslogAddr = "unixgram", sock
	defer func() { syslogNet, syslogAddr = "", "" }()

	_, conf, access := confFiles(t, "SYSLOG_IDENTITY spa-test;\nSYSLOG_FACILITY LOG_LOCAL5;\n")
	for _, enable := range []bool{false, true} {
		args := []string{"-c", conf, "-a", access}
		if enable {
			args = append(args, "--syslog-enable")
		}
		o, _, err := parseFlags(args, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := loadSettings(o)
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		log, closeLog := newDaemonLogger(o, s, nil, &stderr)
		log.Warn("probe", "enable", enable)
		closeLog()
		if !strings.Contains(stderr.String(), "msg=probe enable="+map[bool]string{false: "false", true: "true"}[enable]) {
			t.Errorf("enable=%v: stderr %q", enable, stderr.String())
		}
	}
	// Only the --syslog-enable record arrives: local5 (21) * 8 + warning (4) = 172.
	ln.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := ln.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if msg := string(buf[:n]); !strings.HasPrefix(msg, "<172>") || !strings.Contains(msg, " spa-test[") ||
		!strings.Contains(msg, "msg=probe enable=true") {
		t.Errorf("syslog message %q", msg)
	}
}

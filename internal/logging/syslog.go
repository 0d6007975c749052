package logging

import (
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"strings"
)

// Syslog facilities by the names fwknopd.conf's SYSLOG_FACILITY takes (syslog.h's LOG_*).
var facilities = map[string]syslog.Priority{
	"LOG_KERN": syslog.LOG_KERN, "LOG_USER": syslog.LOG_USER, "LOG_MAIL": syslog.LOG_MAIL,
	"LOG_DAEMON": syslog.LOG_DAEMON, "LOG_AUTH": syslog.LOG_AUTH, "LOG_SYSLOG": syslog.LOG_SYSLOG,
	"LOG_LPR": syslog.LOG_LPR, "LOG_NEWS": syslog.LOG_NEWS, "LOG_UUCP": syslog.LOG_UUCP,
	"LOG_CRON": syslog.LOG_CRON, "LOG_AUTHPRIV": syslog.LOG_AUTHPRIV, "LOG_FTP": syslog.LOG_FTP,
	"LOG_LOCAL0": syslog.LOG_LOCAL0, "LOG_LOCAL1": syslog.LOG_LOCAL1, "LOG_LOCAL2": syslog.LOG_LOCAL2,
	"LOG_LOCAL3": syslog.LOG_LOCAL3, "LOG_LOCAL4": syslog.LOG_LOCAL4, "LOG_LOCAL5": syslog.LOG_LOCAL5,
	"LOG_LOCAL6": syslog.LOG_LOCAL6, "LOG_LOCAL7": syslog.LOG_LOCAL7,
}

// ParseFacility returns the syslog facility named name ("LOG_DAEMON", "LOG_LOCAL0".."LOG_LOCAL7",
// ...; case-insensitive, the "LOG_" prefix optional). An unknown name is an error listing the
// accepted ones.
func ParseFacility(name string) (syslog.Priority, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "LOG_") {
		n = "LOG_" + n
	}
	if f, ok := facilities[n]; ok {
		return f, nil
	}
	return 0, fmt.Errorf("unknown syslog facility %q: use LOG_DAEMON, LOG_AUTH, LOG_AUTHPRIV or LOG_LOCAL0..LOG_LOCAL7", name)
}

// Syslog is a connection to a syslog daemon (package log/syslog: RFC 3164-style messages with
// the identity as tag; it reconnects after a write error).
type Syslog struct {
	w *syslog.Writer
}

// DialSyslog connects to the syslog daemon at addr over network ("", "" is the local socket,
// /dev/log, as syslog(3) uses), tagging messages with identity (SYSLOG_IDENTITY) and the
// facility named by facility (SYSLOG_FACILITY, see ParseFacility).
func DialSyslog(network, addr, identity, facility string) (*Syslog, error) {
	f, err := ParseFacility(facility)
	if err != nil {
		return nil, err
	}
	w, err := syslog.Dial(network, addr, f|syslog.LOG_INFO, identity)
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	return &Syslog{w: w}, nil
}

// Close closes the connection.
func (s *Syslog) Close() error { return s.w.Close() }

// Handler returns a handler that sends each record to syslog as one message: the line
// slog.TextHandler writes, without time= (syslog stamps its messages), at the severity of the
// record's level (Priority: err, warning, info, debug).
func (s *Syslog) Handler(opts *slog.HandlerOptions) slog.Handler {
	h := &prefixHandler{}
	send := []func(string) error{s.w.Err, s.w.Warning, s.w.Info, s.w.Debug}
	for i := range h.byPri {
		h.byPri[i] = slog.NewTextHandler(severityWriter(send[i]), opts)
	}
	return h
}

// severityWriter sends each Write (one slog record) as one syslog message.
type severityWriter func(string) error

func (f severityWriter) Write(b []byte) (int, error) {
	if err := f(strings.TrimSuffix(string(b), "\n")); err != nil {
		return 0, err
	}
	return len(b), nil
}

var _ io.Writer = severityWriter(nil)

// Package logging builds the daemons' slog handler: slog's text format (time=… level=… msg=…
// key=value…), and under systemd the same line with its journald priority.
//
// # Under systemd
//
// When stderr is journald's stream socket (JOURNAL_STREAM names stderr's device and inode, see
// journal.StderrIsJournalStream), each line starts with the sd-daemon priority prefix "<N>"
// (sd-daemon(3)), which journald strips and stores as the entry's PRIORITY: ERROR is 3 (err),
// WARN 4 (warning), INFO 6 (info), DEBUG 7 (debug); levels between round down to the nearest
// of these (INFO+2 is info). The time= field is left out there: journald stamps every entry
// itself. The rest of the line is exactly what slog.TextHandler writes, so
// "journalctl -u sesame-server -o cat" shows the fields that the fail2ban filter reads.
//
// The prefix was chosen over journald's native protocol (journal.Send): it keeps the one
// stream in order with anything else written to stderr, needs no socket of its own (works
// under any sandbox that lets the unit log at all), and loses nothing fail2ban or an operator
// reads, since the key=value text is kept whole in MESSAGE.
//
// # Elsewhere
//
// Without journald on stderr the handler is slog.TextHandler, unchanged: tests and the
// fail2ban filter for plain log files read its text.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// Journald priorities (syslog levels, sd-daemon(3)) used for the "<N>" prefix.
const (
	PriErr     = 3
	PriWarning = 4
	PriInfo    = 6
	PriDebug   = 7
)

// Priority maps an slog level to the journald priority of its lines.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return PriErr
	case l >= slog.LevelWarn:
		return PriWarning
	case l >= slog.LevelInfo:
		return PriInfo
	}
	return PriDebug
}

// StderrIsJournal reports whether the process's stderr is journald's stream socket (a unit's
// default StandardError=journal). A malformed JOURNAL_STREAM counts as no.
func StderrIsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return ok && err == nil
}

// New returns a logger writing to w at level: with journald priority prefixes when w is
// os.Stderr and StderrIsJournal, slog's plain text format otherwise.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(w, &slog.HandlerOptions{Level: level}, w == io.Writer(os.Stderr) && StderrIsJournal()))
}

// NewHandler returns slog.NewTextHandler(w, opts) when journald is false; when true, a
// handler writing the same lines without time=, each prefixed with "<N>" (see the package
// doc). Each line is one Write to w; the handler serialises its writes.
func NewHandler(w io.Writer, opts *slog.HandlerOptions, journald bool) slog.Handler {
	if !journald {
		return slog.NewTextHandler(w, opts)
	}
	lw := &lockedWriter{w: w}
	h := &prefixHandler{}
	for i, pri := range []int{PriErr, PriWarning, PriInfo, PriDebug} {
		h.byPri[i] = slog.NewTextHandler(&prefixWriter{prefix: []byte{'<', byte('0' + pri), '>'}, w: lw}, opts)
	}
	return h
}

// prefixHandler routes each record to the text handler of its priority; all four share the
// options, the attributes and groups added with With, and the locked writer.
type prefixHandler struct {
	byPri [4]slog.Handler // err, warning, info, debug
}

func (h *prefixHandler) pick(l slog.Level) slog.Handler {
	switch Priority(l) {
	case PriErr:
		return h.byPri[0]
	case PriWarning:
		return h.byPri[1]
	case PriInfo:
		return h.byPri[2]
	}
	return h.byPri[3]
}

func (h *prefixHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.byPri[0].Enabled(ctx, l) // the same options: any of them answers for all
}

func (h *prefixHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{} // the text handler leaves out a zero time; journald has its own
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *prefixHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &prefixHandler{}
	for i, c := range h.byPri {
		n.byPri[i] = c.WithAttrs(as)
	}
	return n
}

func (h *prefixHandler) WithGroup(name string) slog.Handler {
	n := &prefixHandler{}
	for i, c := range h.byPri {
		n.byPri[i] = c.WithGroup(name)
	}
	return n
}

// prefixWriter writes prefix and p in one Write. slog's handlers write each record with one
// Write call, so every line gets exactly one prefix.
type prefixWriter struct {
	prefix []byte
	w      io.Writer
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (p *prefixWriter) Write(b []byte) (int, error) {
	bp := bufPool.Get().(*[]byte)
	buf := append(append((*bp)[:0], p.prefix...), b...)
	_, err := p.w.Write(buf)
	*bp = buf
	if cap(buf) <= 64<<10 {
		bufPool.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// lockedWriter serialises the four text handlers' writes (each has its own lock).
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

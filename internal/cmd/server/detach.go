package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Detaching like fwknopd. Invoked as "fwknopd" without -f, sesame backgrounds itself the way
// Debian's fwknopd.service (Type=forking) expects: the command returns once the server is
// running, and the PID file names the server. Go cannot fork, so the parent re-executes its own
// binary (os.Executable, with the same argv[0] and arguments) in a new session, with
// readyEnv naming an inherited pipe. The child runs the server and writes one line to the pipe:
// "ok" once the guard is in place and packets are read (where a Type=notify start would send
// READY=1), or "error: MESSAGE" if it fails to start; "warn: MESSAGE" lines may come first. The
// parent copies warnings to stderr and exits 0 on "ok", 1 with the child's message otherwise.
// The child's stdin, stdout and stderr are /dev/null; it logs to syslog, as fwknopd does.
// `sesame server` never detaches.

// readyEnv carries the child's end of the readiness pipe (a descriptor number).
const readyEnv = "SESAME_FWKNOPD_READY_FD"

// argv0Detaches reports whether a process invoked as argv0 detaches without -f.
func argv0Detaches(argv0 string) bool { return filepath.Base(argv0) == "fwknopd" }

// readyLink is the child's end of the readiness pipe; nil in a process that is not a detached
// child (every method is then a no-op).
type readyLink struct {
	mu sync.Mutex // the server logs from many goroutines (relayHandler)
	f  *os.File
}

// childLink returns the pipe the parent passed, removing readyEnv from the environment so the
// programs the server runs do not inherit it; nil if this process is not a detached child.
func childLink() *readyLink {
	v, ok := os.LookupEnv(readyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(readyEnv)
	var fd int
	if _, err := fmt.Sscanf(v, "%d", &fd); err != nil || fd < 3 {
		return nil
	}
	return &readyLink{f: os.NewFile(uintptr(fd), "ready")}
}

func (l *readyLink) send(kind, msg string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		fmt.Fprintf(l.f, "%s%s\n", kind, strings.ReplaceAll(msg, "\n", " / "))
	}
}

// warn passes a warning to the parent's stderr.
func (l *readyLink) warn(msg string) { l.send("warn: ", msg) }

// ready tells the parent the server runs, and closes the pipe.
func (l *readyLink) ready() {
	l.send("ok", "")
	l.close()
}

// fail tells the parent why the server did not start (nil: it stopped without an error), and
// closes the pipe.
func (l *readyLink) fail(err error) {
	if err != nil {
		l.send("error: ", err.Error())
	}
	l.close()
}

func (l *readyLink) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// relayHandler passes the detached child's warnings and errors to its parent's stderr until
// the child is ready (the link is closed then), so a start that runs but will not work as
// meant (an interface that does not exist yet, a port nothing guards) is seen by whoever
// started it, whether or not syslog keeps the log.
type relayHandler struct {
	link  *readyLink
	attrs []slog.Attr
}

func (h relayHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h relayHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.link.warn(b.String())
	return nil
}

func (h relayHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return relayHandler{link: h.link, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h relayHandler) WithGroup(string) slog.Handler { return h }

// detach starts the server as a detached child with args and waits until it is ready (nil) or
// has failed (its error). Warnings the child sends are written to stderr.
func detach(argv0 string, args []string, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("detach: find my own binary: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Args = append([]string{argv0}, args...)
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // descriptor 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("detach: start %s: %w", exe, err)
	}
	var failure string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ok":
			cmd.Process.Release() // it runs on, reparented to init
			return nil
		case strings.HasPrefix(line, "warn: "):
			fmt.Fprintf(stderr, "sesame server: warning: %s\n", strings.TrimPrefix(line, "warn: "))
		case strings.HasPrefix(line, "error: "):
			failure = strings.TrimPrefix(line, "error: ")
		}
	}
	werr := cmd.Wait()
	if failure != "" {
		return errors.New(failure)
	}
	if werr == nil {
		return errors.New("the detached server exited before it was ready, without a reason")
	}
	return fmt.Errorf("the detached server failed before it was ready: %w", werr)
}

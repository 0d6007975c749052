// Package cmdexec runs the commands fwknopd runs on a packet's say-so: the command of a
// command message (message type 0, ENABLE_CMD_EXEC) and the open and close commands of a
// command cycle (CMD_CYCLE_OPEN, CMD_CYCLE_CLOSE, CMD_CYCLE_TIMER).
//
// As fwknopd does, a command line is split at blanks into a program and its arguments and run
// with execve(2): no shell, no quoting, no globbing (a site that wants a shell writes
// "/bin/sh -c ..." itself, and then gets one word per blank, as with fwknopd). It may run as
// another user and group (CMD_EXEC_USER, CMD_EXEC_GROUP: setuid/setgid in the child, which
// needs CAP_SETUID and CAP_SETGID) or through sudo (ENABLE_CMD_SUDO_EXEC: SUDO_EXE -u USER -g
// GROUP, which cannot work under NoNewPrivileges). Every command has a time limit, after which
// its process group is killed, and its output (standard output and error together, at most
// MaxOutput bytes kept) is returned for the log.
//
// Commands never run on the packet path: Pool runs them on a bounded number of goroutines
// with a bounded queue, and refuses (ErrBusy) what does not fit.
package cmdexec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// MaxOutput is how many bytes of a command's combined output are kept (the rest is counted).
const MaxOutput = 4096

// DefaultTimeout is fwknopd's limit on a command run as root (5 seconds).
const DefaultTimeout = 5 * time.Second

// Errors.
var (
	// ErrEmpty: the command line has no program.
	ErrEmpty = errors.New("empty command")
	// ErrBusy: the pool's queue is full; the command was not run.
	ErrBusy = errors.New("command queue full")
	// ErrTimeout: the command ran out of time and was killed.
	ErrTimeout = errors.New("command timed out")
)

// Spec is one command to run.
type Spec struct {
	Argv    []string
	UID     *uint32 // run as this user (setuid); nil: the daemon's
	GID     *uint32 // run with this group (setgid, supplementary groups cleared); nil: the daemon's
	Timeout time.Duration
	Dir     string   // working directory; "" is "/"
	Env     []string // environment; nil is a minimal PATH only
}

// Result is what happened to a command.
type Result struct {
	Argv     []string
	Exit     int    // exit status; -1 when it did not exit (killed, not started)
	Output   []byte // combined stdout and stderr, at most MaxOutput bytes
	Dropped  int    // output bytes beyond MaxOutput
	Duration time.Duration
	Err      error // nil when it ran and exited 0; wraps ErrTimeout, or the start or exit error
}

// Split splits a command line at blanks (spaces and tabs) as fwknopd does, without quotes.
func Split(line string) ([]string, error) {
	f := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
	if len(f) == 0 {
		return nil, ErrEmpty
	}
	return f, nil
}

// SudoArgv prefixes argv with sudo as fwknopd's ENABLE_CMD_SUDO_EXEC does: sudoExe, then
// "-u user" and "-g group" when set (CMD_SUDO_EXEC_USER, CMD_SUDO_EXEC_GROUP).
func SudoArgv(sudoExe, user, group string, argv []string) []string {
	out := []string{sudoExe}
	if user != "" {
		out = append(out, "-u", user)
	}
	if group != "" {
		out = append(out, "-g", group)
	}
	return append(out, argv...)
}

// Executor runs one command to its end. Exec is the real one; tests use a fake.
type Executor interface {
	Run(ctx context.Context, s Spec) Result
}

// Exec runs commands as child processes.
type Exec struct{}

var defaultEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Run starts s.Argv[0] (looked up in PATH when it has no '/') in a new process group and waits
// for it, killing the group when s.Timeout (DefaultTimeout if 0) or ctx ends first.
func (Exec) Run(ctx context.Context, s Spec) Result {
	start := time.Now()
	res := Result{Argv: s.Argv, Exit: -1}
	if len(s.Argv) == 0 {
		res.Err = ErrEmpty
		return res
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Argv[0], s.Argv[1:]...)
	cmd.Dir = s.Dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	cmd.Env = s.Env
	if cmd.Env == nil {
		cmd.Env = defaultEnv
	}
	out := &limitedBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	attr := &syscall.SysProcAttr{Setpgid: true}
	if s.UID != nil || s.GID != nil {
		cred := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid()), Groups: []uint32{}}
		if s.UID != nil {
			cred.Uid = *s.UID
		}
		if s.GID != nil {
			cred.Gid = *s.GID
		}
		attr.Credential = cred
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	res.Duration = time.Since(start)
	res.Output, res.Dropped = out.buf.Bytes(), out.dropped
	if cmd.ProcessState != nil && cmd.ProcessState.Exited() {
		res.Exit = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil:
	case ctx.Err() == context.DeadlineExceeded:
		res.Err = fmt.Errorf("%s: %w after %v", s.Argv[0], ErrTimeout, timeout)
	default:
		res.Err = fmt.Errorf("%s: %w", s.Argv[0], err)
	}
	return res
}

// limitedBuffer keeps the first max bytes written and counts the rest.
type limitedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	n := len(p)
	room := b.max - b.buf.Len()
	if room < len(p) {
		b.dropped += len(p) - max(room, 0)
		p = p[:max(room, 0)]
	}
	b.buf.Write(p)
	return n, nil
}

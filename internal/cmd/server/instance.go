package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// One server per table. A running server holds the abstract unix socket "@sesame/TABLE": the
// kernel scopes abstract names to the network namespace and releases them when the process dies
// (even by SIGKILL), so there is no stale lock to clean up. A second server finds it taken, asks
// the kernel who holds it (SO_PEERCRED) and refuses to start, before it touches anything. The
// same socket carries control commands (--fw-flush while the server runs, since only the
// owner of an owned table may change it); only root or the server's own user may send them.

// instance is the held socket.
type instance struct {
	ln *net.UnixListener
}

func instanceAddr(table string) string { return "@sesame/" + table }

// ErrRunning is wrapped by lockInstance's error when another server holds the table.
var ErrRunning = errors.New("another sesame server is running")

// lockInstance takes the table's instance socket, or fails naming the holder's pid.
func lockInstance(table string) (*instance, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: instanceAddr(table), Net: "unix"})
	if err == nil {
		return &instance{ln: ln}, nil
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("instance lock %s: %w", instanceAddr(table), err)
	}
	pid := holderPID(table)
	return nil, fmt.Errorf("%w (pid %d) with table inet %s: stop it first, or give this server its own table with SESAME_TABLE in fwknopd.conf (guarding other ports)",
		ErrRunning, pid, table)
}

// holderPID returns the pid of the server holding table's socket, 0 if none answers.
func holderPID(table string) int {
	c, err := net.DialTimeout("unix", instanceAddr(table), time.Second)
	if err != nil {
		return 0
	}
	defer c.Close()
	cred, err := peerCred(c.(*net.UnixConn))
	if err != nil {
		return 0
	}
	return int(cred.Pid)
}

func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	return cred, cerr
}

// serve answers control commands until ctx ends: one line in, one line out ("ok ..." or
// "error: ..."). Connections from other users are refused.
func (i *instance) serve(ctx context.Context, handle func(ctx context.Context, cmd string) (string, error)) {
	stop := context.AfterFunc(ctx, func() { i.ln.Close() })
	defer stop()
	for {
		c, err := i.ln.AcceptUnix()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			cred, err := peerCred(c)
			if err != nil || (cred.Uid != 0 && int(cred.Uid) != os.Geteuid()) {
				fmt.Fprintln(c, "error: permission denied")
				return
			}
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return // a probe (holderPID) sends nothing
			}
			out, err := handle(ctx, strings.TrimSpace(line))
			if err != nil {
				fmt.Fprintf(c, "error: %v\n", err)
				return
			}
			fmt.Fprintf(c, "ok %s\n", out)
		}()
	}
}

func (i *instance) close() { i.ln.Close() }

// control sends cmd to the server holding table. running is false when no server holds it.
func control(table, cmd string) (reply string, running bool, err error) {
	c, err := net.DialTimeout("unix", instanceAddr(table), time.Second)
	if err != nil {
		return "", false, nil
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintln(c, cmd); err != nil {
		return "", true, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", true, fmt.Errorf("no answer from the running server: %w", err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		return "", true, errors.New(msg)
	}
	return strings.TrimPrefix(strings.TrimPrefix(line, "ok"), " "), true, nil
}

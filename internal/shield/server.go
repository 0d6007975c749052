package shield

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A Handler serves one accepted, signed connection and closes it.
type Handler func(ctx context.Context, conn *net.TCPConn)

// A Server accepts connections on a listener (usually a *tcpmd5.Listener) and runs the
// Handler for each one in its own goroutine.
type Server struct {
	Listener interface {
		AcceptTCP() (*net.TCPConn, error)
		Close() error
		Addr() net.Addr
	}
	Handler Handler
	Log     *slog.Logger
	// MaxConns caps the connections handled at once; 0 means no cap. A connection
	// beyond the cap is reset (RST) as soon as it is accepted, as systemd's
	// MaxConnections= refuses it; the first refusal logs a warning, and the next
	// connection admitted logs how many were refused meanwhile.
	MaxConns int

	active, peak      atomic.Int64
	accepted, refused atomic.Uint64
	freed             chan struct{} // a handler ended (non-blocking send)
}

// ConnStats count a Server's connections.
type ConnStats struct {
	Active   int64  // handlers running now
	Peak     int64  // most handlers running at once
	Accepted uint64 // connections accepted, refused ones included
	Refused  uint64 // connections reset because MaxConns were running
}

// Stats returns the server's counters. Safe for concurrent use.
func (s *Server) Stats() ConnStats {
	return ConnStats{Active: s.active.Load(), Peak: s.peak.Load(), Accepted: s.accepted.Load(), Refused: s.refused.Load()}
}

// Serve accepts until ctx ends (it then closes the listener) or Accept fails, and then
// ends the running handlers (their ctx ends) and waits for them. It returns
// nil after ctx ends. When the process runs out of descriptors (EMFILE, ENFILE), it logs
// that (at most once a minute, with a count) and waits for a connection to end (or a
// second) before accepting again: new connections wait in the kernel's accept queue
// meanwhile. It logs again when the descriptors in use fall below 90 % of the limit.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: a failed accept ends the handlers too
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); s.Listener.Close() }()
	s.freed = make(chan struct{}, 1)
	var full bool
	var refusedBefore uint64
	for {
		c, err := s.Listener.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, syscall.ECONNABORTED):
				continue
			case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
				reportOutOfFDs(s.Log, "out of file descriptors: new connections wait in the kernel's accept queue until one ends (raise LimitNOFILE or ulimit -n, or lower --max-conns)",
					"err", err, "conns", s.active.Load())
				select {
				case <-s.freed:
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
				continue
			}
			return fmt.Errorf("shield: accept: %w", err)
		}
		if open, limit, ok := fdsRecovered(); ok {
			s.Log.Info("file descriptors are free again (below 90 % of the limit)", "open_fds", open, "nofile_limit", limit, "conns", s.active.Load())
		}
		s.accepted.Add(1)
		if s.MaxConns > 0 && s.active.Load() >= int64(s.MaxConns) {
			if !full {
				full, refusedBefore = true, s.refused.Load()
				s.Log.Warn("connection limit reached: resetting new connections until one ends", "max_conns", s.MaxConns, "peer", c.RemoteAddr().String())
			}
			s.refused.Add(1)
			Reset(c)
			continue
		}
		if full {
			full = false
			s.Log.Info("below the connection limit again", "max_conns", s.MaxConns, "refused", s.refused.Load()-refusedBefore)
		}
		if n := s.active.Add(1); n > s.peak.Load() {
			s.peak.Store(n) // only this goroutine raises it
		}
		s.Log.Debug("signed connection", "peer", c.RemoteAddr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				s.active.Add(-1)
				select {
				case s.freed <- struct{}{}:
				default:
				}
			}()
			s.Handler(ctx, c)
		}()
	}
}

// DefaultDialTimeout is how long Forward waits for the upstream to accept by default.
const DefaultDialTimeout = 10 * time.Second

// Forward returns a Handler that relays each connection to upstream, dialled with dial
// (nil: a net.Dialer with DefaultDialTimeout). Half-closes are passed on, and the bytes
// move by splice(2) when both sides are *net.TCPConn (see Relay). When the upstream
// cannot be reached, the failure is logged with the upstream and the client's address,
// and the client's connection is reset (RST), so the client sees a refusal rather than
// a clean, empty session; a failure in mid-session resets both sides the same way. Both
// connections are closed when ctx ends. The handler counts into ctx's Tally (WithTally).
func Forward(upstream string, dial func(ctx context.Context, network, addr string) (net.Conn, error), log *slog.Logger) Handler {
	if dial == nil {
		dial = (&net.Dialer{Timeout: DefaultDialTimeout}).DialContext
	}
	return func(ctx context.Context, c *net.TCPConn) {
		u, err := dial(ctx, "tcp", upstream)
		if err != nil {
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				reportOutOfFDs(log, "out of file descriptors for upstream connections: resetting clients (raise LimitNOFILE or ulimit -n, or lower --max-conns)",
					"upstream", upstream, "peer", c.RemoteAddr().String())
			} else {
				log.Warn("upstream unreachable: resetting the client's connection", "upstream", upstream, "peer", c.RemoteAddr().String(), "err", err)
			}
			Reset(c)
			count(ctx, false)
			return
		}
		uc, ok := u.(halfCloser)
		if !ok {
			u.Close()
			Reset(c)
			count(ctx, false)
			log.Error("upstream connection cannot half-close", "type", fmt.Sprintf("%T", u))
			return
		}
		count(ctx, true)
		stop := context.AfterFunc(ctx, func() { c.Close(); uc.Close() })
		defer stop()
		in, out, err := Relay(c, uc)
		if err != nil {
			log.Info("connection broken: both sides reset", "peer", c.RemoteAddr().String(), "upstream", upstream, "bytes_in", in, "bytes_out", out, "err", err)
			return
		}
		log.Debug("connection done", "peer", c.RemoteAddr().String(), "bytes_in", in, "bytes_out", out)
	}
}

// DefaultGrace is how long a program Exec started gets, after SIGTERM at shutdown,
// before SIGKILL.
const DefaultGrace = 10 * time.Second

// Exec returns a Handler that runs argv for each connection inetd-style: the socket is
// the program's stdin and stdout (the same descriptor, so programs such as "sshd -i" may
// treat it as a socket), stderr goes to stderr, and the environment gains the ucspi-tcp
// variables PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP and TCPLOCALPORT. The
// handler waits for the program; a signed connection costs one process (cap them with
// Server.MaxConns). The program leads a process group of its own. When ctx ends, the
// program, its group and all its descendants get SIGTERM, and grace later (<= 0:
// DefaultGrace) SIGKILL; the handler returns once the program is reaped. Descendants
// that outlive the program itself are reparented, and only a Reaper gets them back. The
// handler counts into ctx's Tally (WithTally).
func Exec(argv []string, stderr io.Writer, log *slog.Logger, grace time.Duration) Handler {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return func(ctx context.Context, c *net.TCPConn) {
		env, peer := connEnv(c), c.RemoteAddr().String()
		f, err := c.File() // a dup in blocking mode, for the child
		if err != nil {
			Reset(c)
			count(ctx, false)
			log.Error("exec: socket file", "err", err)
			return
		}
		defer f.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, stderr
		cmd.Env = append(os.Environ(), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		startMu.RLock()
		err = cmd.Start()
		if err == nil {
			own(cmd.Process.Pid)
		}
		startMu.RUnlock()
		if err != nil {
			f.Close()
			Reset(c)
			count(ctx, false)
			log.Error("exec failed: resetting the client's connection", "program", argv[0], "peer", peer, "err", err)
			return
		}
		count(ctx, true)
		c.Close()
		f.Close() // the child holds its own copy
		pid := cmd.Process.Pid
		defer disown(pid)
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case err = <-waited:
		case <-ctx.Done():
			signalTree(pid, syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case err = <-waited:
			case <-t.C:
				log.Warn("program still running after the grace period: killing it and its descendants", "program", argv[0], "pid", pid, "grace", grace)
				killUntilGone(func() int { return signalTree(pid, syscall.SIGKILL) })
				err = <-waited
			}
			t.Stop()
		}
		log.Debug("program exited", "program", argv[0], "pid", pid, "peer", peer, "err", err)
	}
}

func connEnv(c *net.TCPConn) []string {
	env := []string{"PROTO=TCP"}
	for _, side := range []struct {
		name string
		addr net.Addr
	}{{"REMOTE", c.RemoteAddr()}, {"LOCAL", c.LocalAddr()}} {
		ta, ok := side.addr.(*net.TCPAddr)
		if !ok {
			continue
		}
		ap := ta.AddrPort()
		env = append(env,
			"TCP"+side.name+"IP="+netip.Addr.Unmap(ap.Addr()).String(),
			"TCP"+side.name+"PORT="+strconv.Itoa(int(ap.Port())))
	}
	return env
}

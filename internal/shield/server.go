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
}

// Serve accepts until ctx ends (it then closes the listener) or Accept fails, and then
// waits for the running handlers, which end their connections when ctx ends. It returns
// nil after ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-ctx.Done(); s.Listener.Close() }()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := s.Listener.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				s.Log.Warn("accept failed; retrying", "err", err)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			return fmt.Errorf("shield: accept: %w", err)
		}
		s.Log.Debug("signed connection", "peer", c.RemoteAddr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Handler(ctx, c)
		}()
	}
}

// Forward returns a Handler that relays each connection to upstream, dialled with dial
// (nil: a net.Dialer with a 10 s timeout). Half-closes are passed on, and the bytes move
// by splice(2) when both sides are *net.TCPConn. Both connections are closed when ctx
// ends.
func Forward(upstream string, dial func(ctx context.Context, network, addr string) (net.Conn, error), log *slog.Logger) Handler {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	return func(ctx context.Context, c *net.TCPConn) {
		defer c.Close()
		u, err := dial(ctx, "tcp", upstream)
		if err != nil {
			log.Warn("upstream dial failed", "upstream", upstream, "peer", c.RemoteAddr().String(), "err", err)
			return
		}
		uc, ok := u.(halfCloser)
		if !ok {
			u.Close()
			log.Error("upstream connection cannot half-close", "type", fmt.Sprintf("%T", u))
			return
		}
		stop := context.AfterFunc(ctx, func() { c.Close(); uc.Close() })
		defer stop()
		in, out, err := Relay(c, uc)
		log.Debug("connection done", "peer", c.RemoteAddr().String(), "bytes_in", in, "bytes_out", out, "err", err)
	}
}

// Exec returns a Handler that runs argv for each connection inetd-style: the socket is
// the program's stdin and stdout (the same descriptor, so programs such as "sshd -i" may
// treat it as a socket), stderr goes to stderr, and the environment gains the ucspi-tcp
// variables PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP and TCPLOCALPORT. The
// handler waits for the program; a signed connection costs one process. When ctx ends
// the program gets SIGTERM.
func Exec(argv []string, stderr io.Writer, log *slog.Logger) Handler {
	return func(ctx context.Context, c *net.TCPConn) {
		env := connEnv(c)
		f, err := c.File() // a dup in blocking mode, for the child
		c.Close()
		if err != nil {
			log.Error("exec: socket file", "err", err)
			return
		}
		defer f.Close()
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, stderr
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			log.Error("exec failed", "program", argv[0], "err", err)
			return
		}
		f.Close() // the child holds its own copy
		stop := context.AfterFunc(ctx, func() { cmd.Process.Signal(syscall.SIGTERM) })
		defer stop()
		err = cmd.Wait()
		log.Debug("program exited", "program", argv[0], "peer", c.RemoteAddr().String(), "err", err)
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

// Package sshproxy implements "sesame ssh-proxy HOST PORT", an ssh ProxyCommand: it knocks
// with the ~/.fwknoprc stanza named HOST (or the stanza whose SPA_SERVER is HOST), connects to
// HOST:PORT as soon as the port opens, and relays stdin/stdout over the connection with
// half-close.
//
// Setup:
//
//	~/.fwknoprc:    [myserver] with SPA_SERVER, ACCESS tcp/22, ALLOW_IP, keys (sesame knock --save-rc-stanza)
//	~/.ssh/config:  Host myserver
//	                    ProxyCommand sesame ssh-proxy %h %p
package sshproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/knock"
)

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(context.Background(), args, stdin, stdout, stderr, knock.NetSender{}, knock.Env{})
}

// flagSet defines ssh-proxy's flags and returns the set and the flags' values.
func flagSet() (fs *pflag.FlagSet, rcPath, stanza *string, wait, every *time.Duration, verbose, help *bool) {
	fs = pflag.NewFlagSet("sesame ssh-proxy", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rcPath = fs.String("rc-file", "", "rc file instead of ~/.fwknoprc")
	stanza = fs.StringP("named-config", "n", "", "stanza to knock with (default: the one named HOST, or whose SPA_SERVER is HOST)")
	wait = fs.Duration("wait", 10*time.Second, "give up if the port has not opened after this long")
	every = fs.Duration("retry", 15*time.Millisecond, "start a new connection attempt this often")
	verbose = fs.BoolP("verbose", "v", false, "say what happens on stderr")
	help = fs.BoolP("help", "h", false, "print this help")
	return fs, rcPath, stanza, wait, every, verbose, help
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, sender knock.Sender, env knock.Env) int {
	fs, rcPath, stanza, wait, every, verbose, help := flagSet()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sesame ssh-proxy: "+format+"\n", a...)
		return 1
	}
	if err := fs.Parse(args); err != nil {
		return fail("%v (usage: sesame ssh-proxy [options] HOST PORT)", err)
	}
	if *help {
		fmt.Fprintf(stdout, "usage: sesame ssh-proxy [options] HOST PORT   (ssh: ProxyCommand sesame ssh-proxy %%h %%p)\n\n%s", fs.FlagUsages())
		return 0
	}
	if fs.NArg() != 2 {
		return fail("want HOST PORT (usage: sesame ssh-proxy [options] HOST PORT)")
	}
	host, port := fs.Arg(0), fs.Arg(1)
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fail("port %q: want 1..65535", port)
	}

	rc, err := knock.LoadRC(*rcPath, true)
	if err != nil {
		return fail("%v", err)
	}
	name := *stanza
	if name == "" {
		name = host
		if _, ok := rc.Stanza(host); !ok {
			s, ok := rc.FindByServer(host)
			if !ok {
				return fail("no stanza [%s] and no stanza with SPA_SERVER %s in %s; add one with: sesame knock -n %s -D %s -A tcp/%s -a IP --save-rc-stanza ...",
					host, host, rc.Path, host, host, port)
			}
			name = s.Name
		}
	}
	opts, warn, err := knock.FromRC(rc, name)
	if err != nil {
		return fail("%v", err)
	}
	for _, w := range warn {
		fmt.Fprintf(stderr, "sesame ssh-proxy: %s: %s\n", rc.Path, w)
	}
	if opts.Server == "" {
		opts.Server = host
	}
	start := time.Now()
	p, sent, err := knock.Knock(ctx, opts, env, sender)
	if err != nil {
		return fail("knock with stanza [%s]: %v", name, err)
	}
	if *verbose {
		fmt.Fprintf(stderr, "sesame ssh-proxy: knocked %s with stanza [%s] (%d bytes)\n", sent.Dest, name, len(p.Wire))
	}
	addr := net.JoinHostPort(host, port)
	conn, err := DialRetry(ctx, addr, *every, *wait)
	if err != nil {
		return fail("%v", err)
	}
	defer conn.Close()
	if *verbose {
		fmt.Fprintf(stderr, "sesame ssh-proxy: connected to %s %v after the knock\n", addr, time.Since(start).Round(time.Millisecond))
	}
	if err := Relay(conn, stdin, stdout); err != nil {
		return fail("%v", err)
	}
	if *verbose {
		fmt.Fprintf(stderr, "sesame ssh-proxy: connection closed %v after the knock\n", time.Since(start).Round(time.Millisecond))
	}
	return 0
}

// ErrNotOpen: the port did not accept a connection before the deadline.
var ErrNotOpen = errors.New("port did not open")

// DialRetry connects to addr over TCP, starting a new attempt every `every` (each attempt
// times out after one second, so SYNs dropped before the firewall opened are not waited for)
// until one succeeds or wait has passed. The first connection wins; late ones are closed.
func DialRetry(ctx context.Context, addr string, every, wait time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	type res struct {
		c   net.Conn
		err error
	}
	results := make(chan res)
	tick := time.NewTicker(every)
	defer tick.Stop()
	pending, attempts := 0, 0
	var lastErr error
	attempt := func() {
		pending++
		attempts++
		go func() {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			defer acancel()
			var d net.Dialer
			c, err := d.DialContext(actx, "tcp", addr)
			select {
			case results <- res{c, err}:
			case <-ctx.Done():
				if c != nil {
					c.Close()
				}
			}
		}()
	}
	attempt()
	for {
		select {
		case r := <-results:
			pending--
			if r.err == nil {
				cancel() // stop the other attempts; their connections are closed
				return r.c, nil
			}
			lastErr = r.err
		case <-tick.C:
			if pending < 64 {
				attempt()
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %s did not accept a connection within %v after the knock (%d attempts, last error: %v); check the stanza's keys and ACCESS, and the server",
				ErrNotOpen, addr, wait, attempts, lastErr)
		}
	}
}

// Relay copies in to conn and conn to out until conn's read side ends. When in reaches EOF,
// the connection's write side is closed (half-close), so the server sees EOF too.
func Relay(conn net.Conn, in io.Reader, out io.Writer) error {
	go func() {
		io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	if _, err := io.Copy(out, conn); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("relay: %w", err)
	}
	return nil
}

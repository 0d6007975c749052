// Package shield implements the "sesame shield" subcommand: a TCP-MD5 front for a TCP
// service. The logic lives in internal/shield and the tcpmd5 package.
package shield

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/metrics"
	"github.com/sesame-spa/sesame/internal/shield"
	"github.com/sesame-spa/sesame/tcpmd5"
)

const usage = `usage: sesame shield --key-file FILE [--listen ADDR:PORT] (--upstream ADDR:PORT | --exec -- PROGRAM [ARGS...])

Accept only TCP-MD5 signed connections on ADDR:PORT and forward each one to the
upstream, or run PROGRAM per connection with the socket on stdin/stdout (inetd style,
e.g. "sshd -i"). Unsigned or wrongly signed SYNs get no answer at all.

--listen 0.0.0.0:PORT listens on IPv4 only; [::]:PORT or :PORT on IPv4 and IPv6; a
specific address on its own family. Without --listen, the socket comes from systemd
socket activation (LISTEN_FDS).

The key file (a regular file, mode 0600 or stricter) holds one key on its first line
(raw, hex:..., base64:..., or raw:... for a key that reads like a prefix) for every
peer, or a table of "PREFIX KEY" lines ("any" for everyone). SIGHUP reloads it onto the
live listener; a table the kernel cannot hold leaves the previous keys in force.

Connections beyond --max-conns are reset as they arrive. With --exec, at shutdown each
program and everything it started get SIGTERM, then SIGKILL after --exec-grace.
SIGUSR1 logs the connection and descriptor counts. --metrics-listen serves them, and the
kernel's TCP-MD5 drop counters, to Prometheus at http://ADDR/metrics.

flags:
`

type options struct {
	listen, upstream, keyFile, logLevel string
	metricsListen                       string
	exec                                bool
	probeEvery, grace, dialTimeout      time.Duration
	maxConns                            int
	program                             []string
}

// DefaultExecConns is --max-conns with --exec: systemd's MaxConnections= default.
const DefaultExecConns = 64

// flagSet defines shield's flags on o; --help writes the usage to stderr.
func flagSet(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sesame shield", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.listen, "listen", "", "address to listen on: 0.0.0.0:PORT is IPv4 only, [::]:PORT or :PORT IPv4 and IPv6")
	fs.StringVar(&o.upstream, "upstream", "", "forward each connection to this address")
	fs.BoolVar(&o.exec, "exec", false, "run the program after -- for each connection")
	fs.StringVar(&o.keyFile, "key-file", "", "key file (required)")
	fs.IntVar(&o.maxConns, "max-conns", 0, fmt.Sprintf("most connections served at once; more are reset (default %d with --exec, as systemd's MaxConnections=; with --upstream as many as RLIMIT_NOFILE allows at %d descriptors each)", DefaultExecConns, shield.FDsPerConn))
	fs.DurationVar(&o.grace, "exec-grace", shield.DefaultGrace, "at shutdown, how long programs run by --exec get after SIGTERM before SIGKILL")
	fs.DurationVar(&o.dialTimeout, "connect-timeout", shield.DefaultDialTimeout, "how long to wait for the upstream to accept a connection")
	fs.DurationVar(&o.probeEvery, "probe-interval", time.Minute, "how often to log the kernel's MD5 drop counters, which count for the whole network namespace, not this port, and the descriptor use when it changed (0: never)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (host:port, e.g. 127.0.0.1:9763)")
	return fs
}

func parse(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.program = fs.Args()
	switch {
	case o.keyFile == "":
		return nil, errors.New("--key-file is required")
	case o.exec == (o.upstream != ""):
		return nil, errors.New("give exactly one of --upstream and --exec")
	case o.exec && len(o.program) == 0:
		return nil, errors.New("--exec needs a program after --")
	case !o.exec && len(o.program) > 0:
		return nil, fmt.Errorf("unexpected arguments %q", o.program)
	case o.maxConns < 0:
		return nil, errors.New("--max-conns must not be negative")
	case o.grace <= 0 || o.dialTimeout <= 0:
		return nil, errors.New("--exec-grace and --connect-timeout must be positive")
	}
	if o.listen != "" {
		if _, err := shield.ListenNetwork(o.listen); err != nil {
			return nil, fmt.Errorf("--listen: %w", err)
		}
	}
	if o.maxConns == 0 {
		o.maxConns = DefaultExecConns
		if !o.exec {
			o.maxConns = shield.ConnLimit(shield.FDsPerConn)
		}
	}
	return &o, nil
}

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame shield: %v\n", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		fmt.Fprintf(stderr, "sesame shield: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := run(o, log, stderr); err != nil {
		log.Error("shield stopped", "err", err)
		return 1
	}
	return 0
}

func run(o *options, log *slog.Logger, stderr io.Writer) error {
	rules, err := shield.LoadKeyFile(o.keyFile)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var metricsLn net.Listener
	if o.metricsListen != "" {
		if metricsLn, err = metrics.Listen(ctx, o.metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		defer metricsLn.Close()
	}

	var l *tcpmd5.Listener
	if o.listen != "" {
		network, _ := shield.ListenNetwork(o.listen)
		l, err = tcpmd5.Listen(ctx, network, o.listen, rules)
	} else {
		l, err = shield.Inherited(rules, true)
		if err == nil && l == nil {
			err = errors.New("no --listen and no socket from systemd (LISTEN_FDS)")
		}
	}
	if err != nil {
		return err
	}
	defer l.Close()

	h := shield.Forward(o.upstream, timeoutDialer(o.dialTimeout), log)
	var reaper *shield.Reaper
	if o.exec {
		h = shield.Exec(o.program, stderr, log, o.grace)
		if reaper, err = shield.StartReaper(ctx, log, o.grace); err != nil {
			return err
		}
	}
	srv := &shield.Server{Listener: l, Handler: h, Log: log, MaxConns: o.maxConns}
	var tally shield.Tally
	if metricsLn != nil {
		ep := metrics.StartListener(ctx, metricsLn, metrics.NewShield(shieldSources(srv, &tally)), log)
		log.Info("metrics served", "addr", ep.Addr().String(), "path", "/metrics")
	}
	usage := &fdLog{logger: log, srv: srv}
	if o.probeEvery > 0 {
		t := time.NewTicker(o.probeEvery)
		defer t.Stop()
		counters := make(chan time.Time, 1)
		go shield.WatchCounters(ctx, log, counters, shield.ReadCounters)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					select {
					case counters <- now:
					default:
					}
					usage.logIfChanged()
				}
			}
		}()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGUSR1 {
				usage.log()
				continue
			}
			reload(l, o.keyFile, log)
		}
	}()
	_, nofile := shield.Descriptors()
	log.Info("shield listening", "addr", l.Addr().String(), "rules", len(l.Keys()), "max_conns", o.maxConns, "nofile_limit", nofile)
	err = srv.Serve(shield.WithTally(ctx, &tally))
	stop() // after a failed accept too: the reaper's shutdown starts when ctx ends
	if reaper != nil {
		reaper.Finish()
	}
	usage.log()
	return err
}

// shieldSources adapts the server's counters and the kernel's MD5 counters for metrics.
func shieldSources(srv *shield.Server, tally *shield.Tally) metrics.ShieldSources {
	return metrics.ShieldSources{
		Conns: func() metrics.ConnStats {
			st := srv.Stats()
			return metrics.ConnStats{Active: st.Active, Peak: st.Peak, Accepted: st.Accepted, Refused: st.Refused,
				Relayed: tally.Relayed(), Failed: tally.Failed()}
		},
		MaxConns: srv.MaxConns,
		MD5: func() (metrics.MD5Counters, error) {
			c, err := shield.ReadCounters()
			return metrics.MD5Counters{NotFound: c.NotFound, Failure: c.Failure, Unexpected: c.Unexpected}, err
		},
	}
}

// timeoutDialer dials with timeout and says so when the upstream did not answer in time.
func timeoutDialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("no answer within %v (--connect-timeout): %w", timeout, err)
		}
		return c, err
	}
}

// reload applies the key file to the live listener and logs exactly what is in force.
func reload(l *tcpmd5.Listener, path string, log *slog.Logger) {
	rules, err := shield.LoadKeyFile(path)
	if err != nil {
		log.Error("reload failed: the key file was not applied; the previous keys are in force", "err", err, "rules", len(l.Keys()))
		return
	}
	err = shield.Apply(l, rules, nil)
	var re *tcpmd5.ReplaceError
	switch {
	case err == nil:
		log.Info("keys reloaded", "rules", len(rules))
	case errors.As(err, &re) && re.Restored:
		log.Error("reload failed: the kernel refused the new table; the previous keys are in force", "err", re.Err, "rules", len(l.Keys()))
	case errors.As(err, &re):
		applied := make([]string, len(re.Applied))
		for i, c := range re.Applied {
			applied[i] = c.String()
		}
		log.Error("reload failed part-way: the previous keys are in force except the applied changes listed",
			"err", re.Err, "undo_err", re.RollbackErr, "applied", strings.Join(applied, ","), "rules", len(l.Keys()))
	default:
		log.Error("reload failed; the previous keys are in force", "err", err, "rules", len(l.Keys()))
	}
}

// fdLog writes the "descriptors" line: connections, pipes and descriptors in use.
type fdLog struct {
	logger *slog.Logger
	srv    *shield.Server
	last   string
}

func (f *fdLog) line() (string, []any) {
	st, p := f.srv.Stats(), shield.Pipes()
	open, limit := shield.Descriptors()
	args := []any{"conns", st.Active, "peak_conns", st.Peak, "max_conns", f.srv.MaxConns, "refused", st.Refused,
		"pipes_open", p.Open, "pipes_idle", p.Idle, "pipe_fallbacks", p.Fallbacks, "open_fds", open, "nofile_limit", limit}
	return fmt.Sprint(args...), args
}

func (f *fdLog) log() {
	_, args := f.line()
	f.logger.Info("descriptors", args...)
}

// logIfChanged logs the line when it differs from the one logged last this way.
func (f *fdLog) logIfChanged() {
	key, args := f.line()
	if key == f.last {
		return
	}
	f.last = key
	f.logger.Info("descriptors", args...)
}

// Package shield implements the "sesame shield" subcommand: a TCP-MD5 front for a TCP
// service. The logic lives in internal/shield and the tcpmd5 package.
package shield

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/shield"
	"github.com/sesame-spa/sesame/tcpmd5"
)

const usage = `usage: sesame shield --key-file FILE [--listen ADDR:PORT] (--upstream ADDR:PORT | --exec -- PROGRAM [ARGS...])

Accept only TCP-MD5 signed connections on ADDR:PORT and forward each one to the
upstream, or run PROGRAM per connection with the socket on stdin/stdout (inetd style,
e.g. "sshd -i"). Unsigned or wrongly signed SYNs get no answer at all.

Without --listen, the socket comes from systemd socket activation (LISTEN_FDS).
The key file (mode 0600 or stricter) holds one key on its first line (raw, hex:...,
base64:...) for every peer, or a table of "PREFIX KEY" lines ("any" for everyone).
SIGHUP reloads the key file onto the live listener.

flags:
`

type options struct {
	listen, upstream, keyFile, logLevel string
	exec                                bool
	probeEvery                          time.Duration
	program                             []string
}

func parse(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := pflag.NewFlagSet("sesame shield", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.listen, "listen", "", "address to listen on, e.g. :2222 or [::]:2222 (both IPv4 and IPv6)")
	fs.StringVar(&o.upstream, "upstream", "", "forward each connection to this address")
	fs.BoolVar(&o.exec, "exec", false, "run the program after -- for each connection")
	fs.StringVar(&o.keyFile, "key-file", "", "key file (required)")
	fs.DurationVar(&o.probeEvery, "probe-interval", time.Minute, "how often to log the kernel's MD5 drop counters, which count for the whole network namespace, not this port (0: never)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
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

	var l *tcpmd5.Listener
	if o.listen != "" {
		l, err = tcpmd5.Listen(ctx, "tcp", o.listen, rules)
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

	h := shield.Forward(o.upstream, nil, log)
	if o.exec {
		h = shield.Exec(o.program, stderr, log)
	}
	if o.probeEvery > 0 {
		t := time.NewTicker(o.probeEvery)
		defer t.Stop()
		go shield.WatchCounters(ctx, log, t.C, shield.ReadCounters)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			rules, err := shield.LoadKeyFile(o.keyFile)
			if err == nil {
				err = shield.Apply(l, rules, nil)
			}
			if err != nil {
				log.Error("reload failed; keeping the keys in force", "err", err)
				continue
			}
			log.Info("keys reloaded", "rules", len(rules))
		}
	}()
	log.Info("shield listening", "addr", l.Addr().String(), "rules", len(l.Keys()))
	srv := &shield.Server{Listener: l, Handler: h, Log: log}
	return srv.Serve(ctx)
}

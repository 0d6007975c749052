// Package server implements "sesame server", a drop-in replacement for fwknopd 2.6: it reads
// fwknopd.conf and access.conf, takes fwknopd's command-line options, and grants access through
// sesame's nftables table. See internal/server for the packet pipeline.
//
// Lifecycle: it never daemonizes (-f is accepted; run it under systemd, Type=notify); it writes
// the PID file and refuses to start if another live server holds it; SIGHUP re-reads the
// configuration and keeps the live grants; SIGTERM/SIGINT stop it, flushing sesame's firewall
// table if FLUSH_IPT_AT_EXIT is Y (the default) or leaving the grants to expire in the kernel
// if N. A restart keeps live grants (they are nftables set elements with kernel timeouts), and
// the replay cache (DIGEST_FILE) survives restarts.
package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/sesame-spa/sesame/internal/firewall"
	"io"
	"log/slog"
	"sort"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// version is printed by -V.
const version = "sesame server (fwknopd 2.6.10 compatible)"

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, fs, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		return 2
	}
	switch {
	case o.help:
		fmt.Fprintf(stdout, "usage: sesame server [options]   (fwknopd compatible)\n\n%s", fs.FlagUsages())
		return 0
	case o.version:
		fmt.Fprintln(stdout, version)
		return 0
	case o.keyGen:
		return exit(stderr, keyGen(o, stdout))
	}
	log := newLogger(stderr, o.verbose)

	control := o.kill || o.restart || o.status || o.fwList || o.fwListAll || o.fwFlush
	s, err := load(o, !control)
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		return 1
	}
	switch {
	case o.exitParse:
		fmt.Fprintf(stdout, "configuration OK: %d access stanza(s)\n", len(s.policy.Stanzas))
		for _, w := range s.warnings {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		return 0
	case o.dumpConfig:
		fmt.Fprint(stdout, s.dump)
		return 0
	case o.kill:
		pid, err := signalRunning(s.pidFile, syscall.SIGTERM)
		if err == nil {
			fmt.Fprintf(stdout, "sent SIGTERM to sesame server (pid %d)\n", pid)
		}
		return exit(stderr, err)
	case o.restart:
		pid, err := signalRunning(s.pidFile, syscall.SIGHUP)
		if err == nil {
			fmt.Fprintf(stdout, "sent SIGHUP to sesame server (pid %d)\n", pid)
		}
		return exit(stderr, err)
	case o.status:
		pid, err := readPID(s.pidFile)
		if err != nil {
			return exit(stderr, err)
		}
		if pid == 0 {
			fmt.Fprintln(stdout, "No running sesame server detected.")
			return 1
		}
		fmt.Fprintf(stdout, "Detected sesame server is running (pid=%d).\n", pid)
		return 0
	case o.fwList || o.fwListAll:
		return exit(stderr, fwList(s, stdout))
	case o.fwFlush:
		return exit(stderr, fwFlush(s, stdout))
	}
	return exit(stderr, runDaemon(o, s, log))
}

func exit(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		return 1
	}
	return 0
}

// newLogger logs text to stderr: info by default, debug with -v (per-packet detail such as
// malformed packets).
func newLogger(w io.Writer, verbose int) *slog.Logger {
	level := slog.LevelInfo
	if verbose > 0 {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// withFirewall runs fn with the firewall backend of s and a 10-second deadline.
func withFirewall(s *settings, fn func(context.Context, *firewall.Nftables) error) error {
	fw, err := newFirewall(s)
	if err != nil {
		return err
	}
	defer fw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fn(ctx, fw)
}

// fwList prints sesame's live grants (fwknopd --fw-list).
func fwList(s *settings, stdout io.Writer) error {
	return withFirewall(s, func(ctx context.Context, fw *firewall.Nftables) error {
		es, err := fw.List(ctx)
		if err != nil {
			return fmt.Errorf("list grants: %w", err)
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Expires < es[j].Expires })
		fmt.Fprintf(stdout, "# %d live grant(s) in table inet %s\n", len(es), s.tableName)
		for _, e := range es {
			fmt.Fprintf(stdout, "%s expires in %s\n", e.Grant.String(), e.Expires.Round(time.Second))
		}
		return nil
	})
}

// fwFlush removes sesame's table (fwknopd --fw-flush).
func fwFlush(s *settings, stdout io.Writer) error {
	return withFirewall(s, func(ctx context.Context, fw *firewall.Nftables) error {
		if err := fw.RevokeAll(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		fmt.Fprintln(stdout, "sesame firewall state flushed")
		return nil
	})
}

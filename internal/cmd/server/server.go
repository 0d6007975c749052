// Package server implements "sesame server", a drop-in replacement for fwknopd 2.6: it reads
// fwknopd.conf and access.conf, takes fwknopd's command-line options, and grants access through
// sesame's nftables table. See internal/server for the packet pipeline.
//
// Lifecycle: "sesame server" runs in the foreground (run it under systemd, Type=notify); invoked
// as fwknopd without -f it detaches as fwknopd does, for Type=forking units (detach.go). One server
// runs per table (SESAME_TABLE): a second one refuses to start, naming the first one's pid,
// before it touches anything; the PID file is locked, so a stale one never blocks a start.
// SIGHUP re-reads the configuration and keeps the live grants; SIGTERM/SIGINT stop it and leave
// the guard, the hooks and the grants in the kernel (FLUSH_IPT_AT_EXIT Y revokes the grants,
// never the guard). A failed start never touches the firewall. --fw-remove is the uninstall.
package server

import (
	"context"
	"errors"
	"fmt"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/hostfw"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/logging"
	"github.com/sesame-spa/sesame/internal/version"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// Main runs the subcommand with its arguments and returns the process exit code. Invoked as
// fwknopd (argv[0]) without -f, the server detaches like fwknopd (see detach.go).
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return mainAs(os.Args[0], childLink(), args, stdout, stderr)
}

// mainAs is Main for a process invoked as argv0; link is the readiness pipe of a detached child
// (nil otherwise).
func mainAs(argv0 string, link *readyLink, args []string, stdout, stderr io.Writer) int {
	o, fs, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		link.fail(err)
		var oe *optionError
		if errors.As(err, &oe) {
			return 1
		}
		return 2
	}
	switch {
	case o.help:
		fmt.Fprintf(stdout, "usage: sesame server [options]   (fwknopd compatible)\n\n%s", fs.FlagUsages())
		return 0
	case o.version:
		fmt.Fprintln(stdout, version.String("sesame server")+" (fwknopd 2.6.10 compatible)")
		return 0
	case o.keyGen:
		return exit(stderr, keyGen(o, stdout))
	}

	control := o.kill || o.restart || o.status || o.fwList || o.fwListAll || o.fwFlush || o.fwRemove
	var sigs chan os.Signal
	if !control {
		// SIGHUP and SIGUSR1 are caught before the files are read (reading GnuPG keys can take
		// a while) and acted on once the server runs: one from logrotate or a config tool
		// during start-up must not kill the server (their default action). SIGTERM and SIGINT
		// keep their default until then: a start they interrupt leaves the firewall as a
		// crash would.
		sigs = make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
		defer signal.Stop(sigs)
	}
	// --fw-list and --fw-remove need the stanzas too: their OPEN_PORTS are guarded ports. -R reads
	// them so that a broken access.conf is reported here, not only in the server's log (fwknopd
	// signals regardless).
	s, err := load(o, !control || o.fwList || o.fwListAll || o.fwRemove || o.restart)
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		link.fail(err)
		return 1
	}
	// The order is fwknopd's: -D, then the control options (each acts and exits, whatever
	// --exit-parse-config says), then --exit-parse-*.
	switch {
	case o.dumpConfig:
		dumpFwknopd(stdout, o, s.sc, s)
		if o.verbose > 0 {
			fmt.Fprint(stdout, s.dump)
		}
		return 0
	case o.kill:
		pid, err := signalServer(s, syscall.SIGTERM)
		if err == nil {
			fmt.Fprintf(stdout, "sent SIGTERM to sesame server (pid %d)\n", pid)
		}
		return exit(stderr, err)
	case o.restart:
		pid, err := signalServer(s, syscall.SIGHUP)
		if err == nil {
			fmt.Fprintf(stdout, "sent SIGHUP to sesame server (pid %d)\n", pid)
		}
		return exit(stderr, err)
	case o.status:
		pid, err := runningPID(s)
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
		return exit(stderr, fwList(s, o.fwListAll, stdout))
	case o.fwFlush:
		return exit(stderr, fwFlush(s, stdout))
	case o.fwRemove:
		return exit(stderr, fwRemove(s, stdout, stderr))
	case o.exitDigest:
		return exit(stderr, parseDigestCache(s, o.verbose, stdout))
	case o.exitParse:
		fmt.Fprintf(stdout, "configuration OK: %d access stanza(s)\n", len(s.policy.Stanzas))
		for _, w := range s.warnings {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		for _, st := range s.unguardable {
			fmt.Fprintf(stdout, "warning: %s allows any port (no OPEN_PORTS): sesame guards %s; other ports it grants are guarded only by a host firewall that drops\n",
				st, guardsOnly(s.guardPorts))
		}
		return 0
	}
	if link == nil && argv0Detaches(argv0) && !o.foreground && s.pcapFile == "" {
		return exit(stderr, detach(argv0, args, stderr))
	}
	log, closeLog := newDaemonLogger(o, s, link, stderr)
	defer closeLog()
	err = runDaemon(o, s, log, link, sigs)
	link.fail(err) // a no-op once ready was sent
	return exit(stderr, err)
}

func exit(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintf(stderr, "sesame server: %v\n", err)
		return 1
	}
	return 0
}

// newLogger logs text to w: info by default (every rejection, malformed packets included,
// rate-limited per source), debug with -v. Under systemd each line carries its journald
// priority (internal/logging).
func newLogger(w io.Writer, verbose int) *slog.Logger {
	return logging.New(w, logLevel(verbose))
}

func logLevel(verbose int) slog.Level {
	if verbose > 0 {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// syslogNet and syslogAddr locate the syslog daemon ("", "": /dev/log); tests change them.
var syslogNet, syslogAddr = "", ""

// newDaemonLogger is the server's logger. In the foreground it writes to stderr, and with
// --syslog-enable to syslog (/dev/log) too; a detached child (link != nil) logs to syslog
// only, as fwknopd does, and warns its parent when there is no syslog socket (its log is then
// lost: run with -f). SYSLOG_IDENTITY and SYSLOG_FACILITY tag the messages.
func newDaemonLogger(o *options, s *settings, link *readyLink, stderr io.Writer) (*slog.Logger, func()) {
	if link == nil && !o.syslogEnable {
		return newLogger(stderr, o.verbose), func() {}
	}
	opts := &slog.HandlerOptions{Level: logLevel(o.verbose)}
	sl, err := logging.DialSyslog(syslogNet, syslogAddr, s.syslogIdentity, s.syslogFacility)
	if link != nil {
		relay := relayHandler{link: link}
		if err != nil {
			link.warn(fmt.Sprintf("%v: the detached server's log is discarded (start it with -f to log to stderr)", err))
			return slog.New(relay), func() {}
		}
		return slog.New(slog.NewMultiHandler(sl.Handler(opts), relay)), func() { sl.Close() }
	}
	log := newLogger(stderr, o.verbose)
	if err != nil {
		log.Warn("--syslog-enable: no syslog; logging to stderr only", "err", err)
		return log, func() {}
	}
	return slog.New(slog.NewMultiHandler(log.Handler(), sl.Handler(opts))), func() { sl.Close() }
}

// runningPID returns the pid of the server running with s's table, 0 if none. The instance
// socket answers first (it needs no file, so root can ask a server that runs as its own user in
// a run directory root's checks would refuse); the locked pid file is the fallback.
func runningPID(s *settings) (int, error) {
	if pid := holderPID(s.tableName); pid != 0 {
		return pid, nil
	}
	return readPID(s.pidFile)
}

// signalServer sends sig to the running server.
func signalServer(s *settings, sig syscall.Signal) (int, error) {
	pid, err := runningPID(s)
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		return 0, fmt.Errorf("no running server found (table inet %s, PID file %s)", s.tableName, s.pidFile)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return pid, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	return pid, nil
}

// withFirewall runs fn with the firewall backend of s and a 10-second deadline.
func withFirewall(s *settings, fn func(context.Context, firewall.Host) error) error {
	fw, err := newFirewall(s)
	if err != nil {
		return err
	}
	defer fw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return fn(ctx, fw)
}

// fwList prints sesame's live grants (fwknopd --fw-list), read from the kernel (reading is
// allowed while the server owns the table), and what guards them; with a fleet, the fleet's
// live grants in Redis follow as comment lines. With all (--fw-list-all) it also names the
// table's objects and the host chains hooked. It is not a full `nft list table` (package
// firewall has no listing of rules).
func fwList(s *settings, all bool, stdout io.Writer) error {
	return withFirewall(s, func(ctx context.Context, fw firewall.Host) error {
		es, err := fw.List(ctx)
		if err != nil {
			return fmt.Errorf("list grants: %w", err)
		}
		sort.Slice(es, func(i, j int) bool { return es[i].Expires < es[j].Expires })
		pid := holderPID(s.tableName)
		state := "no server running"
		if pid != 0 {
			state = fmt.Sprintf("server pid %d", pid)
		}
		fmt.Fprintf(stdout, "# %d live grant(s) in table inet %s (%s)\n", len(es), s.tableName, state)
		for _, e := range es {
			fmt.Fprintf(stdout, "%s expires in %s\n", e.Grant.String(), e.Expires.Round(time.Second))
		}
		missing, err := fw.Check(ctx)
		if err == nil && len(missing) > 0 {
			fmt.Fprintf(stdout, "# WARNING: missing from the ruleset: %s\n", strings.Join(missing, ", "))
		}
		if all && err == nil && len(missing) == 0 {
			fmt.Fprintf(stdout, "# table inet %s is complete: its guard and mark chains, its grant sets (IPv4, IPv6) and guarded-port set are in place\n", s.tableName)
		}
		if len(s.guardPorts) > 0 {
			fmt.Fprintf(stdout, "# guarded by table inet %s: %s\n", s.tableName, portsList(s.guardPorts))
		}
		rep, err := hostfw.Detect(ctx, nil, hostfw.Options{TableName: s.tableName, Ports: s.guardPorts})
		if err != nil {
			return fmt.Errorf("read the host's ruleset: %w", err)
		}
		for _, f := range rep.Findings {
			fmt.Fprintf(stdout, "# host firewall: %s\n", f)
		}
		if all {
			hooks := append(fw.HostChains(), rep.Hooks()...)
			if len(hooks) == 0 {
				fmt.Fprintln(stdout, "# hooks: none (no host chain drops by default)")
			} else {
				fmt.Fprintf(stdout, "# hooks: sesame's grants are accepted in %s\n", hostList(hooks))
			}
		}
		for _, st := range s.unguardable {
			if len(rep.Hooks()) == 0 {
				fmt.Fprintf(stdout, "# WARNING: %s allows any port: ports it grants beyond the guarded ones are open to everyone anyway\n", st)
			}
		}
		if len(s.guardPorts) == 0 && len(rep.Hooks()) == 0 {
			fmt.Fprintln(stdout, "# WARNING: nothing drops any port (no OPEN_PORTS, no SESAME_GUARD_PORTS, no host firewall that drops): grants change nothing")
		}
		fleetList(ctx, s, stdout)
		return nil
	})
}

// fwFlush revokes every grant (fwknopd --fw-flush); the guard stays. A running server does it
// (only the owner may change an owned table). With a fleet, the other gateways revoke theirs
// too.
func fwFlush(s *settings, stdout io.Writer) error {
	if reply, running, err := control(s.tableName, "revoke-all"); running {
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		fmt.Fprintf(stdout, "sesame server: %s; the guard stays\n", reply)
		return nil
	}
	noTable := false
	err := withFirewall(s, func(ctx context.Context, fw firewall.Host) error {
		if _, err := fw.List(ctx); errors.Is(err, firewall.ErrNoTable) {
			noTable = true
			return nil
		}
		if err := fw.RevokeAll(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := clearLedger(s); err != nil {
		return err
	}
	if noTable {
		fmt.Fprintf(stdout, "sesame: table inet %s does not exist: no grant and no guard to keep\n", s.tableName)
	} else {
		fmt.Fprintln(stdout, "sesame: every grant revoked; the guard stays")
	}
	return fleetRevokeAll(s, stdout)
}

// fwRemove deletes sesame's table and hooks: the uninstall step.
func fwRemove(s *settings, stdout, stderr io.Writer) error {
	if pid := holderPID(s.tableName); pid != 0 {
		return fmt.Errorf("a sesame server (pid %d) runs with table inet %s: stop it first (systemctl stop sesame-server, or sesame server -K)", pid, s.tableName)
	}
	err := withFirewall(s, func(ctx context.Context, fw firewall.Host) error {
		if rep, err := hostfw.Detect(ctx, nil, hostfw.Options{TableName: s.tableName, Ports: s.guardPorts}); err == nil {
			fw.SetHostChains(append(fw.HostChains(), rep.Hooks()...))
		}
		return fw.Remove(ctx)
	})
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	if err := os.Remove(s.ledgerFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove: grant ledger: %w", err)
	}
	fmt.Fprintf(stdout, "sesame: table inet %s and its hooks removed\n", s.tableName)
	fmt.Fprintf(stderr, "WARNING: the ports sesame guarded (%s) are now reachable by anyone your own firewall lets through\n", guardedText(s.guardPorts))
	return nil
}

// clearLedger empties the grant ledger (after revoking every grant without a server).
func clearLedger(s *settings) error {
	led, err := ledger.Open(s.ledgerFile, time.Now)
	if err != nil {
		return fmt.Errorf("grant ledger: %w", err)
	}
	led.Clear()
	return led.Close()
}

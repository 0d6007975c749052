// Package knock implements "sesame knock", the fwknop-compatible SPA client. It takes fwknop
// 2.6's command line (GNU style, via spf13/pflag), ~/.fwknoprc and ~/.fwknop.run; the work is
// done by internal/knock and internal/rcfile.
package knock

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/rcfile"
)

// Version is printed by -V.
const Version = "sesame knock (fwknop client 2.6.10 compatible, FKO protocol version 3.0.0)"

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, sender: knock.NetSender{}, env: knock.Env{Passphrase: ttyPassphrase}}
	return c.run(context.Background(), args)
}

// cli is one invocation; tests replace sender, env, home and terminal.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	sender         knock.Sender
	env            knock.Env
	home           func() (string, error) // nil: os.UserHomeDir
	terminal       func() bool            // is stdin a terminal? nil: ask the kernel

	in *bufio.Reader // stdin, shared by the stanza prompt and --stdin
}

func (c *cli) errorf(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "sesame knock: "+format+"\n", a...)
	return 1
}

func (c *cli) warnf(format string, a ...any) {
	fmt.Fprintf(c.stderr, "sesame knock: warning: "+format+"\n", a...)
}

func (c *cli) reader() *bufio.Reader {
	if c.in == nil {
		c.in = bufio.NewReader(c.stdin)
	}
	return c.in
}

func (c *cli) isTerminal() bool {
	if c.terminal != nil {
		return c.terminal()
	}
	fh, ok := c.stdin.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(fh.Fd()), unix.TCGETS)
	return err == nil
}

func (c *cli) run(ctx context.Context, args []string) int {
	return c.runArgs(ctx, args, true)
}

// runArgs runs one command line; fresh is false when it comes from -l (it is not saved again
// and may not contain -l).
func (c *cli) runArgs(ctx context.Context, args []string, fresh bool) int {
	f := newFlags()
	if err := f.parse(args); err != nil {
		fmt.Fprintf(c.stderr, "sesame knock: %v (see sesame knock -h)\n", err)
		return 2
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "sesame knock: unexpected argument %q (see sesame knock -h)\n", f.fs.Arg(0))
		return 2
	}
	switch {
	case f.help:
		fmt.Fprintf(c.stdout, "usage: sesame knock -D SERVER [-A proto/port] (-a IP | -s | -R) [options]\n\n%s", f.fs.FlagUsages())
		return 0
	case f.version:
		fmt.Fprintln(c.stdout, Version)
		return 0
	}
	if err := f.check(); err != nil {
		return c.errorf("%v", err)
	}
	home := ""
	if !f.noHomeDir {
		home = c.homeDir()
	}
	runPath := f.argsFile
	if runPath == "" && home != "" {
		runPath = filepath.Join(home, rcfile.RunFileName)
	}
	if f.showLast || f.lastCmd {
		return c.lastCommand(ctx, f, runPath, fresh)
	}

	opts, rc, code := c.options(f, home)
	if code >= 0 {
		return code
	}
	if fresh && !f.keyGen && !opts.NoSaveArgs {
		if code := c.saveArgs(f, runPath, args); code >= 0 {
			return code
		}
	}
	if f.keyGen {
		return c.keyGen(f, opts, rc)
	}
	if f.saveRC {
		if code := c.saveStanza(f, opts, rc); code >= 0 {
			return code
		}
	}
	return c.knock(ctx, f, opts)
}

func (c *cli) homeDir() string {
	home := c.home
	if home == nil {
		home = os.UserHomeDir
	}
	h, err := home()
	if err != nil {
		return ""
	}
	return h
}

// options reads the rc file ([default], then the -n stanza) and lays the command line over it.
// code is -1 to go on, else the exit code (after --stanza-list, or on an error). For -k without
// --save-rc-stanza the rc file only warns: key generation does not need it (as in fwknop).
func (c *cli) options(f *flags, home string) (*knock.Options, *rcfile.File, int) {
	opts := &knock.Options{}
	var rc *rcfile.File
	if !f.noRC {
		path := f.rcFile
		switch {
		case path != "":
		case f.noHomeDir:
			return nil, nil, c.errorf("--no-home-dir: give --rc-file PATH or --no-rc-file")
		case home != "":
			path = filepath.Join(home, ".fwknoprc")
		}
		lenient := f.keyGen && !f.saveRC
		if path != "" {
			var err error
			if rc, err = c.readRC(path, lenient); err != nil {
				return nil, nil, c.errorf("%v", err)
			}
		}
		if rc != nil && f.list {
			fmt.Fprintf(c.stdout, "The following stanzas are configured in %s :\n", rc.Path)
			for _, n := range rc.Names() {
				fmt.Fprintf(c.stdout, " - %s\n", n)
			}
			return nil, nil, 0
		}
		if rc != nil {
			o, warn, err := knock.FromRC(rc, f.stanza)
			if f.saveRC && errors.Is(err, rcfile.ErrNoStanza) {
				o, warn, err = knock.FromRC(rc, "") // a new stanza starts from [default]
			}
			for _, w := range warn {
				c.warnf("%s", w)
			}
			switch {
			case err != nil && lenient:
				c.warnf("%v (ignored for key generation)", err)
			case err != nil:
				return nil, nil, c.errorf("%v", err)
			default:
				opts = o
			}
		}
	}
	if f.list {
		return nil, nil, c.errorf("--stanza-list: no rc file (HOME is not set); give --rc-file PATH")
	}
	if err := f.apply(opts); err != nil {
		return nil, nil, c.errorf("%v", err)
	}
	return opts, rc, -1
}

// readRC loads the rc file at path, creating it from rcfile.Template if it does not exist (as
// fwknop does on first use). lenient turns a loose file mode into a warning.
func (c *cli) readRC(path string, lenient bool) (*rcfile.File, error) {
	created, err := rcfile.Create(path)
	if err != nil && !lenient {
		return nil, err
	}
	if err != nil {
		c.warnf("%v", err)
		return nil, nil
	}
	if created {
		fmt.Fprintf(c.stderr, "sesame knock: created %s (mode 0600) with an empty [default] stanza\n", path)
	}
	// A file others can read is a warning, as in fwknop ("change one binary"): refusing would
	// lock out users whose working rc file is 0644.
	if err := rcfile.CheckMode(path); err != nil {
		c.warnf("%v", err)
	}
	if !lenient {
		rc, err := rcfile.Read(path)
		if err != nil {
			return nil, err
		}
		return rc, nil
	}
	rc, err := rcfile.Read(path)
	if err != nil {
		c.warnf("%v (ignored for key generation)", err)
		return nil, nil
	}
	return rc, nil
}

// knock builds, prints and sends the packet.
func (c *cli) knock(ctx context.Context, f *flags, opts *knock.Options) int {
	env := c.env
	if f.fs.Changed("stdin") || f.fs.Changed("fd") {
		if code := c.readKey(f, opts, &env); code >= 0 {
			return code
		}
	}
	p, err := knock.Build(ctx, opts, env)
	if err != nil {
		return c.errorf("%v", err)
	}
	for _, w := range p.Warnings {
		c.warnf("%s", w)
	}
	if p.NoPorts {
		fmt.Fprintf(c.stderr, "sesame knock: no -A given: asking for the server stanza's OPEN_PORTS (access %q). "+
			"sesame servers grant them; fwknopd rejects such packets, so give -A proto/port for fwknopd.\n", knock.NoPortsAccess)
	}
	if opts.Verbose > 0 || f.test {
		knock.Dump(c.stdout, p)
	}
	if f.savePkt != "" {
		if err := savePacket(f.savePkt, p.Wire, f.appendPkt); err != nil {
			return c.errorf("%v", err)
		}
	}
	if f.test {
		if _, err := knock.SelfCheck(p); err != nil {
			return c.errorf("self-check: the packet does not decode: %v", err)
		}
		fmt.Fprintln(c.stdout, "\ntest mode enabled, SPA packet not actually sent.")
		return 0
	}
	t := knock.TargetOf(opts, p)
	sent, err := c.sender.Send(ctx, t, p.Wire)
	if err != nil {
		return c.errorf("%v", err)
	}
	if opts.Verbose > 0 {
		proto := t.Proto
		if proto == "" {
			proto = knock.ProtoUDP
		}
		fmt.Fprintf(c.stdout, "\nsent %d bytes over %s to %s\n", sent.Bytes, proto, sent.Dest)
	}
	return 0
}

func savePacket(path, wire string, appendTo bool) error {
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flag = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	fh, err := os.OpenFile(path, flag, 0o600)
	if err != nil {
		return fmt.Errorf("-B: %w", err)
	}
	if _, err := fh.WriteString(wire + "\n"); err != nil {
		fh.Close()
		return fmt.Errorf("-B: %w", err)
	}
	return fh.Close()
}

// lastCommand implements --show-last and -l (re-run the saved command line; the rest of the
// command line is ignored, as in fwknop).
func (c *cli) lastCommand(ctx context.Context, f *flags, runPath string, fresh bool) int {
	if !fresh {
		return c.errorf("the saved command line contains -l or --show-last; edit %s", runPath)
	}
	if runPath == "" {
		return c.errorf("--no-home-dir: give -E FILE to name the saved command line")
	}
	args, line, err := rcfile.ReadRun(runPath)
	if errors.Is(err, fs.ErrNotExist) {
		return c.errorf("no saved command line in %s yet (a knock saves it unless --no-save-args)", runPath)
	}
	if err != nil {
		return c.errorf("%v", err)
	}
	if err := rcfile.CheckMode(runPath); err != nil {
		c.warnf("%v", err)
	}
	if f.showLast {
		fmt.Fprintf(c.stdout, "Last fwknop client command line: %s\n", line)
		return 0
	}
	return c.runArgs(ctx, args, false)
}

// saveArgs writes the command line to the run file (fwknop's ~/.fwknop.run), before the knock
// so a failed one can be repeated with -l. code is -1 to go on.
func (c *cli) saveArgs(f *flags, runPath string, args []string) int {
	if f.list {
		return -1
	}
	if runPath == "" {
		if f.noHomeDir {
			return c.errorf("--no-home-dir: give -E FILE to save the command line, or --no-save-args")
		}
		return -1 // no home: nothing to save to
	}
	err := rcfile.WriteRun(runPath, args)
	if errors.Is(err, rcfile.ErrUnsavable) {
		c.warnf("not saving the command line for -l: %v", err)
		return -1
	}
	if err != nil {
		c.warnf("%v", err)
	}
	return -1
}

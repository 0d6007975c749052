// Package connect implements the "sesame connect" subcommand: the TCP-MD5 client. It
// relays stdin/stdout to a signed connection (an ssh ProxyCommand) or forwards a local
// port.
package connect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/md5grant"
	"github.com/sesame-spa/sesame/internal/shield"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// EnvKey names the environment variable that may hold the key (ParseKey syntax).
const EnvKey = "SESAME_MD5_KEY"

const usage = `usage: sesame connect [flags] HOST PORT

Open a TCP-MD5 signed connection to HOST PORT and relay stdin/stdout over it, e.g.
  ssh -o ProxyCommand='sesame connect --key-file ~/.sesame/md5.key %h %p' host
or, with -L [ADDR:]PORT, listen locally (127.0.0.1 unless ADDR is given; 0.0.0.0 is
IPv4 only, [::] IPv4 and IPv6) and forward each local connection over its own signed
connection.

A server that does not answer within --timeout is reported as such, naming it (a
TCP-MD5 server ignores a wrongly signed SYN, so a wrong key looks the same); a server
that resets the connection (sesame shield does when its upstream is down) makes sesame
connect exit with status 1.

The key comes from --key-file (mode 0600; one key, or a "PREFIX KEY" table from which
the server address picks its key), --stanza (the SESAME_MD5_KEY variable of that
~/.fwknoprc stanza; --rc-file picks another file; Debian's fwknop refuses a stanza with
that variable, so keep it in a stanza of its own), --key, or $SESAME_MD5_KEY, in that
order.

With --knock[=STANZA], sesame first sends the SPA packet of the ~/.fwknoprc stanza (named
HOST unless given; --rc-file picks another file) to a sesame server whose access stanza
has SESAME_MD5 Y, then signs with the key both sides derive from that stanza's keys
(package md5grant), retrying fast until the grant is live or --timeout passes. With -L,
every local connection knocks again.

flags:
`

type options struct {
	keyFile, key, local string
	timeout             time.Duration
	host, port          string

	knock  bool   // --knock given
	stanza string // its rc stanza ("" = host)
	rcFile string

	keyStanza string // --stanza: the rc stanza holding SESAME_MD5_KEY
}

// StanzaKeyVar is the ~/.fwknoprc variable that holds a stanza's TCP-MD5 key (ParseKey
// syntax), for --stanza.
const StanzaKeyVar = "SESAME_MD5_KEY"

// knockHost is --knock's value when no stanza is named: the stanza is HOST.
const knockHost = "(HOST)"

func parse(args []string, stderr io.Writer) (*options, error) {
	var o options
	fs := flagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 2 {
		return nil, errors.New("want HOST PORT")
	}
	o.host, o.port = fs.Arg(0), fs.Arg(1)
	if o.knock = fs.Changed("knock"); o.knock {
		if o.keyFile != "" || o.key != "" || o.keyStanza != "" {
			return nil, errors.New("--knock derives the key: drop --key-file/--key/--stanza")
		}
		if o.stanza == knockHost || o.stanza == "" {
			o.stanza = o.host
		}
	} else if o.rcFile != "" && o.keyStanza == "" {
		return nil, errors.New("--rc-file needs --knock or --stanza")
	}
	return &o, nil
}

// flagSet defines connect's flags on o; --help writes the usage to stderr.
func flagSet(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sesame connect", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.keyFile, "key-file", "", "key file")
	fs.StringVar(&o.key, "key", "", "the key (visible in ps; prefer --key-file or $"+EnvKey+")")
	fs.StringVarP(&o.local, "local", "L", "", "forward the local [ADDR:]PORT instead of relaying stdio")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "connect timeout: how long to wait for the server to answer the signed SYN (a wrong key looks like no answer)")
	fs.StringVar(&o.stanza, "knock", "", "knock with this ~/.fwknoprc `STANZA` (default: HOST) and sign with its derived key")
	fs.Lookup("knock").NoOptDefVal = knockHost
	fs.StringVar(&o.keyStanza, "stanza", "", "take the key from the "+StanzaKeyVar+" variable of this ~/.fwknoprc `STANZA`")
	fs.StringVar(&o.rcFile, "rc-file", "", "rc file for --knock and --stanza (default ~/.fwknoprc)")
	return fs
}

// KeySource picks the key for a server address. It is the dial-key hook: knock
// integration and SPA-derived keys will provide their own.
type KeySource func(remote netip.AddrPort) (tcpmd5.Key, error)

// keySource builds the KeySource from the options and environment.
func keySource(o *options, getenv func(string) string) (KeySource, error) {
	var rules []tcpmd5.KeyRule
	switch {
	case o.keyFile != "":
		r, err := shield.LoadKeyFile(o.keyFile)
		if err != nil {
			return nil, err
		}
		rules = r
	case o.keyStanza != "":
		k, err := stanzaKey(o.rcFile, o.keyStanza)
		if err != nil {
			return nil, err
		}
		rules = tcpmd5.Any(k)
	case o.key != "" || getenv(EnvKey) != "":
		s := o.key
		if s == "" {
			s = getenv(EnvKey)
		}
		k, err := tcpmd5.ParseKey(s)
		if err != nil {
			return nil, err
		}
		rules = tcpmd5.Any(k)
	default:
		return nil, fmt.Errorf("no key: use --key-file, --stanza, --key or $%s", EnvKey)
	}
	return func(remote netip.AddrPort) (tcpmd5.Key, error) {
		k, ok := shield.KeyFor(rules, remote.Addr())
		if !ok {
			return tcpmd5.Key{}, fmt.Errorf("the key file has no key for %v", remote.Addr())
		}
		return k, nil
	}, nil
}

// stanzaKey reads the TCP-MD5 key of an rc stanza (its StanzaKeyVar variable; the file must be
// mode 600 like any rc file).
func stanzaKey(rcPath, name string) (tcpmd5.Key, error) {
	rc, err := knock.LoadRC(rcPath, true)
	if err != nil {
		return tcpmd5.Key{}, err
	}
	st, err := rc.Resolve(name)
	if err != nil {
		return tcpmd5.Key{}, err
	}
	v, ok := st.Get(StanzaKeyVar)
	if !ok || v == "" {
		return tcpmd5.Key{}, fmt.Errorf("stanza [%s] of %s has no %s line: add one (e.g. %s base64:...), or use --knock to derive the key from its SPA keys",
			name, rc.Path, StanzaKeyVar, StanzaKeyVar)
	}
	k, err := tcpmd5.ParseKey(v)
	if err != nil {
		return tcpmd5.Key{}, fmt.Errorf("stanza [%s] of %s: %s: %w", name, rc.Path, StanzaKeyVar, err)
	}
	return k, nil
}

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame connect: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var d dialer
	if o.knock {
		d = &knockDialer{knocker: &md5grant.Knocker{RCPath: o.rcFile,
			Warn: func(w string) { fmt.Fprintf(stderr, "sesame connect: %s\n", w) }},
			stanza: o.stanza, timeout: o.timeout}
	} else {
		keys, err := keySource(o, os.Getenv)
		if err != nil {
			fmt.Fprintf(stderr, "sesame connect: %v\n", err)
			return 2
		}
		d = &tcpmd5.Dialer{Dialer: net.Dialer{Timeout: o.timeout}, KeyFor: keys}
	}
	target := net.JoinHostPort(o.host, o.port)
	d = explainDialer{d: d, timeout: o.timeout}
	if o.local == "" {
		err = relayStdio(ctx, d, target, stdin, stdout)
	} else {
		err = forward(ctx, d, target, o.local, slog.New(slog.NewTextHandler(stderr, nil)))
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame connect: %v\n", err)
		return 1
	}
	return 0
}

// dialer makes the signed connections: a *tcpmd5.Dialer, or a knockDialer.
type dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

func relayStdio(ctx context.Context, d dialer, target string, stdin io.Reader, stdout io.Writer) error {
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	return explain(shield.RelayStdio(c.(*net.TCPConn), stdin, stdout), target, 0)
}

// forward listens on local ([ADDR:]PORT, loopback by default; 0.0.0.0 is IPv4 only,
// [::] both families) and relays every connection to target over its own signed
// connection.
func forward(ctx context.Context, d dialer, target, local string, log *slog.Logger) error {
	if !strings.Contains(local, ":") {
		local = "127.0.0.1:" + local
	}
	network, err := shield.ListenNetwork(local)
	if err != nil {
		return err
	}
	l, err := (&net.ListenConfig{}).Listen(ctx, network, local)
	if err != nil {
		return err
	}
	log.Info("forwarding", "local", l.Addr().String(), "remote", target)
	srv := &shield.Server{Listener: l.(*net.TCPListener), Log: log, MaxConns: shield.ConnLimit(shield.FDsPerConn),
		Handler: shield.Forward(target, d.DialContext, log)}
	return srv.Serve(ctx)
}

// explainDialer gives dial errors a sentence that names the server and the timeout.
type explainDialer struct {
	d       dialer
	timeout time.Duration
}

func (e explainDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := e.d.DialContext(ctx, network, addr)
	return c, explain(err, addr, e.timeout)
}

// explain says what a connection error means for a TCP-MD5 client: a timeout (no answer
// to a signed SYN) or a reset by the server. Local stdin/stdout errors and others are
// returned as they are. timeout is the --timeout in force (0: not a dial).
func explain(err error, target string, timeout time.Duration) error {
	var se *shield.StdioError
	var ne net.Error
	switch {
	case err == nil || errors.As(err, &se):
		return err
	case timeout > 0 && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)):
		return fmt.Errorf("no answer from %s within %v (--timeout): a TCP-MD5 server stays silent to a SYN signed with a wrong key, so a wrong key, address or port, nothing listening, or a firewall dropping the SYN all look alike: %w",
			target, timeout, err)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s reset the connection: the server refused or ended it (sesame shield does this when its upstream is unreachable or --max-conns is reached; its log says which): %w",
			target, err)
	}
	return err
}

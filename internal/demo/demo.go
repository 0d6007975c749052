// Package demo implements "sesame demo": a narrated, self-checking tour of sesame in two
// throwaway network namespaces. A server namespace (10.99.0.1) runs "sesame server" in
// sniff mode guarding tcp/22 in front of a banner service, and later "sesame shield" in
// front of another; a client namespace (10.99.0.2) shows the port silent, knocks (with
// Debian's fwknop when it is on PATH, else with "sesame knock"), connects, replays the
// knock and knocks with a wrong key (both refused, as the server's log says), watches the
// grant count down and expire in the kernel, and then finds the shield silent to an
// unsigned handshake and open to "sesame connect" with the key.
//
// Server and shield are child processes of the same binary (os.Executable), stopped by
// PID. Every namespace, process and file the demo made is removed when it ends, also on
// SIGINT or SIGTERM. It needs root and the ip command.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/keygen"
	"github.com/sesame-spa/sesame/internal/shield"
)

// The demo's fixed facts.
const (
	srvIP, cliIP = "10.99.0.1", "10.99.0.2"
	spaPort      = "62201"
	guarded      = "22"   // the port the SPA server guards
	shieldPort   = "2222" // the shield's signed listener
	shieldUp     = "127.0.0.1:2200"
	grantSecs    = 5                      // FW_ACCESS_TIMEOUT
	silentWait   = 700 * time.Millisecond // how long a probe waits for an answer
	banner       = "SSH-2.0-sesame-demo"
)

const usage = `usage: sesame demo [--color auto|always|never] [--client auto|fwknop|sesame]

Run a narrated knock-and-connect demo in two throwaway network namespaces (as root):
the SPA server guarding tcp/22, a knock, a refused replay and a refused wrong key, the
grant expiring in the kernel, and the TCP-MD5 shield refusing an unsigned handshake and
passing a signed one. Every step checks itself; the exit status is 0 when all behaved,
1 naming the step that did not, 130 when interrupted. Everything is removed at the end.

flags:
`

type options struct{ color, client string }

// flagSet defines the demo's flags on o; --help writes the usage to stderr.
func flagSet(o *options, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sesame demo", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.color, "color", "auto", "colour the narration: auto (when stdout is a terminal and NO_COLOR is unset), always or never")
	fs.StringVar(&o.client, "client", "auto", "knock with fwknop (Debian's client), sesame (sesame knock) or auto (fwknop when on PATH)")
	return fs
}

// FlagSet returns the demo's flags, for documentation (the man pages).
func FlagSet() *pflag.FlagSet { return flagSet(&options{}, io.Discard) }

// Main runs the demo with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := flagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sesame demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	color, err := WantColor(o.color, isTerminal(stdout), os.Getenv("NO_COLOR"))
	if err != nil {
		fmt.Fprintf(stderr, "sesame demo: %v\n", err)
		return 2
	}
	d := &demo{}
	if d.knocker, err = pickClient(o.client); err != nil {
		fmt.Fprintf(stderr, "sesame demo: %v\n", err)
		return 2
	}
	if err := preflight(); err != nil {
		fmt.Fprintf(stderr, "sesame demo: %v\n", err)
		return 1
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs) // after the cleanup: a second ^C must not cut it short
	go func() {
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("interrupted (%s)", unix.SignalName(s.(syscall.Signal))))
		case <-ctx.Done():
		}
	}()

	if d.lab, err = newLab(); err != nil {
		fmt.Fprintf(stderr, "sesame demo: %v\n", err)
		return 1
	}
	steps := d.steps()
	n := NewNarrator(stdout, color, len(steps))
	err = runSteps(ctx, n, steps)
	if err != nil && ctx.Err() == nil {
		for _, c := range d.lab.children {
			fmt.Fprintf(stderr, "--- %s (pid %d) output:\n%s", c.name, c.cmd.Process.Pid, c.out.String())
		}
	}
	fmt.Fprintln(stdout, "cleaning up: stopping the processes and deleting the namespaces")
	if cerr := d.lab.close(); cerr != nil {
		fmt.Fprintf(stderr, "sesame demo: cleanup: %v\n", cerr)
		if err == nil {
			return 1
		}
	}
	var se *StepError
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "%s every step behaved\n", n.paint(sgrGreen+sgrBold, "done:"))
		return 0
	case ctx.Err() != nil && errors.As(err, &se):
		fmt.Fprintf(stderr, "sesame demo: %v during step %d (%s)\n", context.Cause(ctx), se.Num, se.Name)
		return 130
	default:
		fmt.Fprintf(stderr, "sesame demo: %v\n", err)
		return 1
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// pickClient returns the fwknop binary to knock with, or "" for sesame's own client.
func pickClient(mode string) (string, error) {
	switch mode {
	case "sesame":
		return "", nil
	case "fwknop", "auto":
		p, err := exec.LookPath("fwknop")
		if err != nil && mode == "fwknop" {
			return "", fmt.Errorf("--client fwknop: %w", err)
		}
		return p, nil
	}
	return "", fmt.Errorf("--client %q: want auto, fwknop or sesame", mode)
}

func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (it makes network namespaces and nftables tables)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("needs the ip command (iproute2): %w", err)
	}
	return nil
}

func newLab() (*lab, error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the sesame binary: %w", err)
	}
	dir, err := os.MkdirTemp("", "sesame-demo-")
	if err != nil {
		return nil, err
	}
	pid := os.Getpid()
	return &lab{bin: bin, dir: dir, srv: fmt.Sprintf("sesame-demo-srv-%d", pid), cli: fmt.Sprintf("sesame-demo-cli-%d", pid)}, nil
}

// demo is the state the steps share.
type demo struct {
	lab     *lab
	knocker string // fwknop's path, or "" for sesame knock
	key     keygen.Pair
	server  *child
	shield  *child
	packet  string // the knock as sent, for the replay
	granted time.Time
	md5Key  string // key file path
}

func (d *demo) steps() []step {
	return []step{
		{"namespaces", "a server and a client network namespace, joined by a veth pair", d.namespaces},
		{"server", "sesame server sniffs for SPA packets and guards tcp/" + guarded, d.startServer},
		{"silent", "before any knock, port " + guarded + " does not answer", d.silent},
		{"knock", "the client knocks with one encrypted, HMAC'd UDP packet", d.knock},
		{"connect", "the client connects to port " + guarded + " and reads the banner", d.connect},
		{"replay", "the same packet sent again is refused", d.replay},
		{"wrong-key", "a knock with another key is refused", d.wrongKey},
		{"expiry", "the grant counts down in the kernel and expires", d.expiry},
		{"shield", "sesame shield puts a TCP-MD5 signature requirement on port " + shieldPort, d.startShield},
		{"unsigned", "a handshake without the key gets no answer at all", d.unsigned},
		{"signed", "sesame connect signs with the key and gets through", d.signed},
	}
}

func (d *demo) path(name string) string { return filepath.Join(d.lab.dir, name) }

func (d *demo) namespaces(ctx context.Context, n *Narrator) (string, error) {
	l := d.lab
	for _, ns := range []string{l.srv, l.cli} {
		if err := l.addNS(ctx, ns); err != nil {
			return "", err
		}
	}
	if err := l.veth(ctx, "demo0", srvIP+"/24", "demo1", cliIP+"/24"); err != nil {
		return "", err
	}
	n.Say("server %s: demo0 %s", l.srv, srvIP)
	n.Say("client %s: demo1 %s", l.cli, cliIP)
	return "nothing outside these namespaces is touched", nil
}

func (d *demo) startServer(ctx context.Context, n *Narrator) (string, error) {
	var err error
	if d.key, err = keygen.Generate(rand.Reader, keygen.DefaultKeyLen, 64); err != nil {
		return "", err
	}
	run := d.path("run")
	conf := fmt.Sprintf("PCAP_INTF demo0\nPCAP_FILTER udp port %s\nFWKNOP_RUN_DIR %s\nDIGEST_FILE %s\nFWKNOP_PID_FILE %s\n",
		spaPort, run, filepath.Join(run, "digest.cache"), filepath.Join(run, "fwknopd.pid"))
	access := fmt.Sprintf("SOURCE %s.0/24\nOPEN_PORTS tcp/%s\nREQUIRE_SOURCE_ADDRESS Y\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT %d\n",
		strings.TrimSuffix(srvIP, ".1"), guarded, b64(d.key.Key), b64(d.key.HMACKey), grantSecs)
	for name, text := range map[string]string{"fwknopd.conf": conf, "access.conf": access} {
		if err := os.WriteFile(d.path(name), []byte(text), 0o600); err != nil {
			return "", err
		}
	}
	if err := d.lab.serveBanner(d.lab.srv, net.JoinHostPort(srvIP, guarded), banner); err != nil {
		return "", err
	}
	n.Say("a stand-in ssh service listens on %s:%s (banner %s)", srvIP, guarded, banner)
	n.Say("access.conf: OPEN_PORTS tcp/%s, FW_ACCESS_TIMEOUT %d, fresh KEY_BASE64 and HMAC_KEY_BASE64", guarded, grantSecs)
	if d.server, err = d.lab.start(d.lab.srv, "sesame server", "server", "-f", "-c", d.path("fwknopd.conf"), "-a", d.path("access.conf")); err != nil {
		return "", err
	}
	if err := waitLog(ctx, d.server, "sesame server started", 20*time.Second); err != nil {
		return "", err
	}
	if line, ok := logLine(d.server, 0, "sesame server started"); ok {
		n.Quote(line)
	}
	return fmt.Sprintf("sesame server (pid %d) is running", d.server.cmd.Process.Pid), nil
}

// probe connects from ns to addr and returns the first line the service sends, or an
// error: errSilent when nothing answered within silentWait, else the dial's error
// (a refusal, for example).
func probe(ctx context.Context, ns, addr string, wait time.Duration) (string, error) {
	var c net.Conn
	err := inNS(ns, func() (err error) {
		c, err = (&net.Dialer{Timeout: wait}).DialContext(ctx, "tcp", addr)
		return err
	})
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "", errSilent
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 256)
	m, err := io.ReadAtLeast(c, buf, len(banner))
	line, _, _ := strings.Cut(string(buf[:m]), "\r\n")
	if err != nil && line == "" {
		return "", fmt.Errorf("connected, but no banner: %w", err)
	}
	return line, nil
}

var errSilent = errors.New("no answer")

// expectSilent probes addr from the client and fails unless nothing answers.
func (d *demo) expectSilent(ctx context.Context, n *Narrator, addr string) (string, error) {
	line, err := probe(ctx, d.lab.cli, addr, silentWait)
	switch {
	case errors.Is(err, errSilent):
		n.Say("connect %s: no answer within %v: the SYN was dropped", addr, silentWait)
		return "silent", nil
	case err == nil:
		return "", fmt.Errorf("connect %s: answered %q, want no answer", addr, line)
	default:
		return "", fmt.Errorf("connect %s: %v, want no answer", addr, err)
	}
}

func (d *demo) silent(ctx context.Context, n *Narrator) (string, error) {
	if _, err := d.expectSilent(ctx, n, net.JoinHostPort(srvIP, guarded)); err != nil {
		return "", err
	}
	return "port " + guarded + " is invisible: not even a reset", nil
}

// runKnock knocks from the client with pair, saving the packet to save ("" for none).
func (d *demo) runKnock(ctx context.Context, pair keygen.Pair, save string) error {
	args := []string{"-A", "tcp/" + guarded, "-a", cliIP, "-D", srvIP, "--use-hmac",
		"--key-base64-rijndael", b64(pair.Key), "--key-base64-hmac", b64(pair.HMACKey), "--no-rc-file", "--no-save-args"}
	if save != "" {
		args = append(args, "-B", save)
	}
	name := d.knocker
	if name == "" {
		name, args = d.lab.bin, append([]string{"knock"}, args...)
	}
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := command(kctx, d.lab.cli, name, args...)
	cmd.Env = append(os.Environ(), "HOME="+d.lab.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(name), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (d *demo) clientName() string {
	if d.knocker == "" {
		return "sesame knock"
	}
	return "Debian's fwknop client (" + d.knocker + ")"
}

func (d *demo) knock(ctx context.Context, n *Narrator) (string, error) {
	mark := len(d.server.out.String())
	save := d.path("knock.spa")
	if err := d.runKnock(ctx, d.key, save); err != nil {
		return "", err
	}
	n.Say("sent with %s to udp/%s: -A tcp/%s -a %s", d.clientName(), spaPort, guarded, cliIP)
	b, err := os.ReadFile(save)
	if err != nil {
		return "", fmt.Errorf("the saved packet: %w", err)
	}
	d.packet = strings.TrimSpace(string(b))
	var line string
	if err := poll(ctx, 10*time.Second, func() bool {
		var ok bool
		line, ok = logLine(d.server, mark, "access granted", "src="+cliIP)
		return ok
	}); err != nil {
		return "", fmt.Errorf("the server logged no grant: %w", err)
	}
	d.granted = time.Now()
	n.Say("the server's log:")
	n.Quote(line)
	return fmt.Sprintf("%s may reach tcp/%s for %d s, nobody else", cliIP, guarded, grantSecs), nil
}

func (d *demo) connect(ctx context.Context, n *Narrator) (string, error) {
	addr := net.JoinHostPort(srvIP, guarded)
	line, err := probe(ctx, d.lab.cli, addr, 2*time.Second)
	if err != nil {
		return "", fmt.Errorf("connect %s after the grant: %w", addr, err)
	}
	if !strings.HasPrefix(line, banner) {
		return "", fmt.Errorf("connect %s: banner %q, want %q", addr, line, banner)
	}
	n.Say("connect %s: the service says %q", addr, line)
	return "the port opened for the knocking client", nil
}

// expectRejected waits for the server's log line rejecting a packet from the client
// with reason and quotes it.
func (d *demo) expectRejected(ctx context.Context, n *Narrator, mark int, reason string) error {
	var line string
	if err := poll(ctx, 10*time.Second, func() bool {
		var ok bool
		line, ok = logLine(d.server, mark, "SPA packet rejected", "src="+cliIP, reason)
		return ok
	}); err != nil {
		return fmt.Errorf("the server logged no rejection with %s: %w", reason, err)
	}
	if l, ok := logLine(d.server, mark, "access granted"); ok {
		return fmt.Errorf("the server granted access: %s", l)
	}
	n.Say("the server's log:")
	n.Quote(line)
	return nil
}

func (d *demo) replay(ctx context.Context, n *Narrator) (string, error) {
	mark := len(d.server.out.String())
	var c net.Conn
	if err := inNS(d.lab.cli, func() (err error) { c, err = net.Dial("udp", net.JoinHostPort(srvIP, spaPort)); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	if _, err := c.Write([]byte(d.packet)); err != nil {
		return "", fmt.Errorf("resend: %w", err)
	}
	n.Say("resent the knock's %d bytes, unchanged, from %s", len(d.packet), cliIP)
	if err := d.expectRejected(ctx, n, mark, "reason=replay"); err != nil {
		return "", err
	}
	return "a captured packet cannot be used twice (its digest is in the replay cache)", nil
}

func (d *demo) wrongKey(ctx context.Context, n *Narrator) (string, error) {
	other, err := keygen.Generate(rand.Reader, keygen.DefaultKeyLen, 64)
	if err != nil {
		return "", err
	}
	mark := len(d.server.out.String())
	if err := d.runKnock(ctx, other, ""); err != nil {
		return "", err
	}
	n.Say("knocked with %s and a freshly generated key pair", d.clientName())
	if err := d.expectRejected(ctx, n, mark, `reason="HMAC mismatch"`); err != nil {
		return "", err
	}
	return "the HMAC did not verify: a wrong key opens nothing", nil
}

// liveGrants returns the "ADDR PROTO/PORT expires in D" lines of sesame server --fw-list.
func (d *demo) liveGrants(ctx context.Context) ([]string, error) {
	out, err := command(ctx, d.lab.srv, d.lab.bin, "server", "--fw-list", "-c", d.path("fwknopd.conf"), "-a", d.path("access.conf")).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("sesame server --fw-list: %w: %s", err, out)
	}
	return grantLines(string(out)), nil
}

// grantLines returns the grant lines ("ADDR PROTO/PORT expires in D") of --fw-list
// output, trimmed, leaving out its "#" comment lines.
func grantLines(out string) []string {
	var grants []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.Contains(l, " expires in ") && !strings.HasPrefix(l, "#") {
			grants = append(grants, l)
		}
	}
	return grants
}

func (d *demo) expiry(ctx context.Context, n *Narrator) (string, error) {
	n.Say("sesame server --fw-list, once a second (the grant is an nftables set element with a timeout):")
	deadline := d.granted.Add(grantSecs*time.Second + 5*time.Second)
	last := ""
	for {
		grants, err := d.liveGrants(ctx)
		if err != nil {
			return "", err
		}
		if len(grants) == 0 {
			break
		}
		if g := strings.Join(grants, "; "); g != last {
			n.Quote(g)
			last = g
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the grant is still in the kernel %v after it was made (FW_ACCESS_TIMEOUT %d)", time.Since(d.granted).Round(time.Second), grantSecs)
		}
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
	n.Quote("(no live grants)")
	took := time.Since(d.granted).Round(100 * time.Millisecond)
	if _, err := d.expectSilent(ctx, n, net.JoinHostPort(srvIP, guarded)); err != nil {
		return "", err
	}
	return fmt.Sprintf("the kernel removed the grant about %v after it was made; port %s is invisible again", took, guarded), nil
}

func (d *demo) startShield(ctx context.Context, n *Narrator) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	d.md5Key = d.path("md5.key")
	if err := os.WriteFile(d.md5Key, []byte("base64:"+b64(raw)+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := d.lab.serveBanner(d.lab.srv, shieldUp, banner+"-shielded"); err != nil {
		return "", err
	}
	var err error
	listen := net.JoinHostPort(srvIP, shieldPort)
	if d.shield, err = d.lab.start(d.lab.srv, "sesame shield", "shield", "--listen", listen, "--upstream", shieldUp, "--key-file", d.md5Key); err != nil {
		return "", err
	}
	if err := waitLog(ctx, d.shield, "shield listening", 20*time.Second); err != nil {
		return "", err
	}
	n.Say("sesame shield --listen %s --upstream %s --key-file md5.key (a random 32-byte key)", listen, shieldUp)
	if line, ok := logLine(d.shield, 0, "shield listening"); ok {
		n.Quote(line)
	}
	return fmt.Sprintf("sesame shield (pid %d) is running", d.shield.cmd.Process.Pid), nil
}

// md5Counters reads the kernel's TCP-MD5 drop counters of the server namespace.
func (d *demo) md5Counters() (c shield.Counters, err error) {
	err = inNS(d.lab.srv, func() (err error) { c, err = shield.ReadCounters(); return err })
	return c, err
}

func (d *demo) unsigned(ctx context.Context, n *Narrator) (string, error) {
	before, err := d.md5Counters()
	if err != nil {
		return "", err
	}
	if _, err := d.expectSilent(ctx, n, net.JoinHostPort(srvIP, shieldPort)); err != nil {
		return "", err
	}
	var after shield.Counters
	if err := poll(ctx, 5*time.Second, func() bool {
		after, err = d.md5Counters()
		return err == nil && after.NotFound > before.NotFound
	}); err != nil {
		return "", fmt.Errorf("the kernel's TCPMD5NotFound did not move (%d): %w", before.NotFound, err)
	}
	n.Say("the kernel dropped %d unsigned segment(s) (TcpExt TCPMD5NotFound %d -> %d)", after.NotFound-before.NotFound, before.NotFound, after.NotFound)
	return "without the key the service does not exist, and no session can be reset or injected into", nil
}

func (d *demo) signed(ctx context.Context, n *Narrator) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := command(cctx, d.lab.cli, d.lab.bin, "connect", "--key-file", d.md5Key, srvIP, shieldPort)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("sesame connect: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	line, _, _ := strings.Cut(string(out), "\r\n")
	if want := banner + "-shielded"; line != want {
		return "", fmt.Errorf("sesame connect: got %q, want the banner %q", line, want)
	}
	n.Say("sesame connect --key-file md5.key %s %s: the service says %q", srvIP, shieldPort, line)
	return "the kernel accepted the signed handshake and checks the signature on every segment", nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Package knock implements "sesame knock", the fwknop-compatible SPA client. It takes fwknop
// 2.6's command line (GNU style, via spf13/pflag) and ~/.fwknoprc; the work is done by
// internal/knock and internal/rcfile.
package knock

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/sesame-spa/sesame/internal/keygen"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
)

// Version is printed by -V.
const Version = "sesame knock (fwknop client 2.6.10 compatible, FKO protocol version 3.0.0)"

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, sender: knock.NetSender{}}
	return c.run(context.Background(), args)
}

// cli is one invocation; tests replace sender and env.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	sender         knock.Sender
	env            knock.Env
}

// flags are the parsed command line.
type flags struct {
	fs *pflag.FlagSet

	access, allowIP, resolveURL, server, stanza, rcFile  string
	sourceIP, resolveIP, noRC, saveRC, forceStanza, list bool
	useHMAC                                              bool
	key, keyB64, hmacKey, hmacKeyB64, keyFile, hmacFile  string
	stdinKey                                             bool
	fd                                                   int
	keyGen                                               bool
	keyGenFile                                           string
	keyLen, hmacKeyLen                                   int
	digest, hmacDigest, mode                             string
	fwTimeout                                            int
	nat                                                  string
	natLocal, natRand                                    bool
	natPort                                              int
	cmd, user                                            string
	port, srcPort                                        int
	proto                                                string
	randPort                                             bool
	proxy, userAgent                                     string
	icmpType, icmpCode                                   int
	offPlus, offMinus                                    string
	savePkt                                              string
	appendPkt, test, version, help, v4, v6               bool
	verbose                                              int
}

// unsupported are fwknop options sesame does not implement: name -> reason.
var unsupported = []struct {
	long, short, why string
	isBool           bool
}{
	{"gpg-encryption", "g", "GnuPG mode", true},
	{"gpg-recipient-key", "", "GnuPG mode", false},
	{"gpg-signer-key", "", "GnuPG mode", false},
	{"gpg-home-dir", "", "GnuPG mode", false},
	{"gpg-exe", "", "GnuPG mode", false},
	{"gpg-agent", "", "GnuPG mode", true},
	{"gpg-no-signing-pw", "", "GnuPG mode", true},
	{"spoof-source", "Q", "source address spoofing", false},
	{"spoof-src", "", "source address spoofing", false},
	{"last-cmd", "l", "re-running saved arguments", true},
	{"show-last", "", "showing saved arguments", true},
	{"save-args-file", "E", "saving arguments", false},
	{"wget-cmd", "w", "wget for -R (sesame uses its own HTTP client)", false},
	{"use-wget-user-agent", "", "wget for -R (sesame uses its own HTTP client)", true},
}

func newFlags(stderr io.Writer) *flags {
	f := &flags{fs: pflag.NewFlagSet("sesame knock", pflag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.StringVarP(&f.access, "access", "A", "", "ports to open: proto/port[,proto/port...] (omit: the server stanza's OPEN_PORTS, sesame servers only)")
	fs.StringVarP(&f.allowIP, "allow-ip", "a", "", "IP address (IPv4 or IPv6) the server should open access for")
	fs.BoolVarP(&f.sourceIP, "source-ip", "s", false, "let the server use the packet's source address (allow-IP 0.0.0.0)")
	fs.BoolVarP(&f.resolveIP, "resolve-ip-https", "R", false, "learn the allow-IP from --resolve-url")
	fs.StringVar(&f.resolveURL, "resolve-url", "", "URL returning the caller's IP (default "+knock.DefaultResolveURL+")")
	fs.Bool("resolve-http-only", false, "accepted for fwknop compatibility (the URL's scheme decides)")
	fs.StringVarP(&f.server, "destination", "D", "", "SPA server host name or address")
	fs.StringVarP(&f.stanza, "named-config", "n", "", "use this ~/.fwknoprc stanza")
	fs.StringVar(&f.rcFile, "rc-file", "", "rc file instead of ~/.fwknoprc")
	fs.BoolVar(&f.noRC, "no-rc-file", false, "do not read the rc file")
	fs.Bool("no-home-dir", false, "same as --no-rc-file")
	fs.BoolVar(&f.saveRC, "save-rc-stanza", false, "save these options to the stanza named by -n (or -D)")
	fs.BoolVar(&f.forceStanza, "force-stanza", false, "with --save-rc-stanza: replace an existing stanza")
	fs.BoolVar(&f.list, "stanza-list", false, "list the rc file's stanzas")
	fs.BoolVar(&f.useHMAC, "use-hmac", false, "authenticate the packet with an HMAC")
	fs.StringVar(&f.key, "key-rijndael", "", "Rijndael key (1..32 bytes)")
	fs.StringVar(&f.keyB64, "key-base64-rijndael", "", "Rijndael key, base64")
	fs.StringVar(&f.hmacKey, "key-hmac", "", "HMAC key")
	fs.StringVar(&f.hmacKeyB64, "key-base64-hmac", "", "HMAC key, base64")
	fs.StringVarP(&f.keyFile, "get-key", "G", "", "read the Rijndael key from FILE (lines \"server: key\")")
	fs.StringVar(&f.hmacFile, "get-hmac-key", "", "read the HMAC key from FILE")
	fs.BoolVar(&f.stdinKey, "stdin", false, "read the key (line 1) and HMAC key (line 2) from stdin")
	fs.IntVar(&f.fd, "fd", -1, "read the keys from this file descriptor")
	fs.BoolVarP(&f.keyGen, "key-gen", "k", false, "generate KEY_BASE64 and HMAC_KEY_BASE64 and exit")
	fs.StringVarP(&f.keyGenFile, "key-gen-file", "K", "", "with -k: write the keys to FILE")
	fs.IntVar(&f.keyLen, "key-len", 32, "with -k: Rijndael key bytes")
	fs.IntVar(&f.hmacKeyLen, "hmac-key-len", 0, "with -k: HMAC key bytes (default by HMAC type)")
	fs.StringVarP(&f.digest, "digest-type", "m", "", "inner digest: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512")
	fs.StringVar(&f.hmacDigest, "hmac-digest-type", "", "HMAC type (same names; default sha256)")
	fs.StringVarP(&f.mode, "encryption-mode", "M", "", "cbc (default), ctr, cfb, ofb, ecb, legacy")
	fs.IntVarP(&f.fwTimeout, "fw-timeout", "f", 0, "ask the server for this access time in seconds")
	fs.StringVarP(&f.nat, "nat-access", "N", "", "NAT: forward to HOST[:PORT] behind the server")
	fs.BoolVar(&f.natLocal, "nat-local", false, "NAT to the server itself")
	fs.IntVar(&f.natPort, "nat-port", 0, "NAT: ask for this port on the server")
	fs.BoolVar(&f.natRand, "nat-rand-port", false, "NAT: ask for a random port on the server")
	fs.StringVarP(&f.cmd, "server-cmd", "C", "", "send a command message instead of an access request")
	fs.StringVarP(&f.user, "spoof-user", "U", "", "username in the packet (at most 48 bytes)")
	fs.IntVarP(&f.port, "server-port", "p", 0, "SPA server port (default 62201)")
	fs.StringVarP(&f.proto, "server-proto", "P", "", "udp (default), tcp, http, icmp, udpraw")
	fs.IntVarP(&f.srcPort, "source-port", "S", 0, "source port")
	fs.BoolVarP(&f.randPort, "rand-port", "r", false, "send to a random port (10000..65534)")
	fs.StringVarP(&f.proxy, "http-proxy", "H", "", "send -P http through this proxy HOST[:PORT]")
	fs.StringVarP(&f.userAgent, "user-agent", "u", "", "HTTP User-Agent (default "+knock.DefaultUserAgent+")")
	fs.IntVar(&f.icmpType, "icmp-type", 0, "ICMP type for -P icmp (default 0, echo reply)")
	fs.IntVar(&f.icmpCode, "icmp-code", 0, "ICMP code for -P icmp")
	fs.StringVar(&f.offPlus, "time-offset-plus", "", "add N[s|m|h|d] to the timestamp")
	fs.StringVar(&f.offMinus, "time-offset-minus", "", "subtract N[s|m|h|d] from the timestamp")
	fs.StringVarP(&f.savePkt, "save-packet", "B", "", "write the packet to FILE")
	fs.BoolVarP(&f.appendPkt, "save-packet-append", "b", false, "with -B: append instead of overwrite")
	fs.BoolVarP(&f.test, "test", "T", false, "build and print the packet, do not send it")
	fs.CountVarP(&f.verbose, "verbose", "v", "print the packet's fields")
	fs.BoolVarP(&f.v4, "ipv4", "4", false, "use IPv4 only to reach the server")
	fs.BoolVarP(&f.v6, "ipv6", "6", false, "use IPv6 only to reach the server")
	fs.Bool("server-resolve-ipv4", false, "same as -4")
	fs.Bool("no-save-args", false, "accepted for fwknop compatibility (sesame never saves arguments)")
	fs.BoolVarP(&f.version, "version", "V", false, "print the version")
	fs.BoolVarP(&f.help, "help", "h", false, "print this help")
	for _, u := range unsupported {
		if u.isBool {
			fs.BoolP(u.long, u.short, false, "not supported ("+u.why+")")
		} else {
			fs.StringP(u.long, u.short, "", "not supported ("+u.why+")")
		}
		fs.MarkHidden(u.long)
	}
	return f
}

func (c *cli) errorf(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "sesame knock: "+format+"\n", a...)
	return 1
}

func (c *cli) run(ctx context.Context, args []string) int {
	f := newFlags(c.stderr)
	if err := f.fs.Parse(args); err != nil {
		fmt.Fprintf(c.stderr, "sesame knock: %v (see sesame knock -h)\n", err)
		return 2
	}
	if f.fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "sesame knock: unexpected argument %q (see sesame knock -h)\n", f.fs.Arg(0))
		return 2
	}
	for _, u := range unsupported {
		if f.fs.Changed(u.long) {
			return c.errorf("--%s is not supported yet (%s); use Rijndael keys and the options in sesame knock -h", u.long, u.why)
		}
	}
	switch {
	case f.help:
		fmt.Fprintf(c.stdout, "usage: sesame knock -D SERVER [-A proto/port] (-a IP | -s | -R) [options]\n\n%s", f.fs.FlagUsages())
		return 0
	case f.version:
		fmt.Fprintln(c.stdout, Version)
		return 0
	}
	if f.fs.Changed("no-home-dir") {
		f.noRC = true
	}
	if f.fs.Changed("server-resolve-ipv4") {
		f.v4 = true
	}

	// The rc file: [default], then the -n stanza.
	opts := &knock.Options{}
	var rc *rcfile.File
	if !f.noRC {
		var err error
		if rc, err = knock.LoadRC(f.rcFile, f.rcFile != ""); err != nil {
			return c.errorf("%v", err)
		}
		if f.list {
			fmt.Fprintf(c.stdout, "The following stanzas are configured in %s :\n", rc.Path)
			for _, n := range rc.Names() {
				fmt.Fprintf(c.stdout, " - %s\n", n)
			}
			return 0
		}
		o, warn, err := knock.FromRC(rc, f.stanza)
		if f.saveRC && errors.Is(err, rcfile.ErrNoStanza) {
			o, warn, err = knock.FromRC(rc, "") // a new stanza starts from [default]
		}
		if err != nil {
			return c.errorf("%v", err)
		}
		for _, w := range warn {
			fmt.Fprintf(c.stderr, "sesame knock: %s: %s\n", rc.Path, w)
		}
		opts = o
	} else if f.list {
		return c.errorf("--stanza-list and --no-rc-file exclude each other")
	}
	if err := f.apply(opts); err != nil {
		return c.errorf("%v", err)
	}

	if f.keyGen {
		return c.keyGen(f, opts, rc)
	}
	if f.saveRC {
		if rc == nil {
			return c.errorf("--save-rc-stanza needs the rc file; drop --no-rc-file")
		}
		name := f.stanza
		if name == "" {
			name = opts.Server
		}
		if name == "" {
			return c.errorf("--save-rc-stanza needs a stanza name: give -n NAME (or -D)")
		}
		if err := rcfile.SaveStanza(rc.Path, opts.Stanza(name), f.forceStanza); err != nil {
			return c.errorf("%v", err)
		}
		fmt.Fprintf(c.stdout, "[+] Wrote stanza [%s] to %s\n", name, rc.Path)
	}

	env := c.env
	if f.stdinKey || f.fd >= 0 {
		k, h, err := c.readKeys(f)
		if err != nil {
			return c.errorf("%v", err)
		}
		env.StdinKey, env.StdinHMACKey = k, h
	}
	p, err := knock.Build(ctx, opts, env)
	if err != nil {
		return c.errorf("%v", err)
	}
	if p.NoPorts {
		fmt.Fprintf(c.stderr, "sesame knock: no -A given: asking for the server stanza's OPEN_PORTS (access %q). "+
			"sesame servers grant them; fwknopd rejects such packets, so give -A proto/port for fwknopd.\n", knock.NoPortsAccess)
	}
	if f.verbose > 0 || f.test {
		knock.Dump(c.stdout, p)
	}
	if f.savePkt != "" {
		if err := savePacket(f.savePkt, p.Wire, f.appendPkt); err != nil {
			return c.errorf("%v", err)
		}
	}
	if f.test {
		if _, err := spa.Decode([]byte(p.Wire), p.Keys); err != nil {
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
	if f.verbose > 0 {
		proto := t.Proto
		if proto == "" {
			proto = knock.ProtoUDP
		}
		fmt.Fprintf(c.stdout, "\nsent %d bytes over %s to %s\n", sent.Bytes, proto, sent.Dest)
	}
	return 0
}

// apply copies the options given on the command line over o (the command line wins).
func (f *flags) apply(o *knock.Options) error {
	ch := f.fs.Changed
	str := func(name string, dst *string, v string) {
		if ch(name) {
			*dst = v
		}
	}
	num := func(name string, dst *int, v, max int) error {
		if !ch(name) {
			return nil
		}
		if v < 0 || v > max {
			return fmt.Errorf("--%s %d: want 0..%d", name, v, max)
		}
		*dst = v
		return nil
	}
	boolean := func(name string, dst *bool, v bool) {
		if ch(name) {
			*dst = v
		}
	}
	str("access", &o.Access, f.access)
	if ch("allow-ip") || ch("source-ip") || ch("resolve-ip-https") {
		o.AllowIP, o.SourceIP, o.ResolveIP = f.allowIP, f.sourceIP, f.resolveIP
	}
	str("resolve-url", &o.ResolveURL, f.resolveURL)
	str("destination", &o.Server, f.server)
	boolean("use-hmac", &o.UseHMAC, f.useHMAC)
	if ch("key-rijndael") || ch("key-base64-rijndael") || ch("get-key") {
		o.Key, o.KeyBase64, o.KeyFile = f.key, f.keyB64, f.keyFile
	}
	if ch("key-hmac") || ch("key-base64-hmac") || ch("get-hmac-key") {
		o.HMACKey, o.HMACKeyBase64, o.HMACKeyFile = f.hmacKey, f.hmacKeyB64, f.hmacFile
	}
	var err error
	if ch("digest-type") {
		if o.Digest, err = spa.ParseDigestType(f.digest); err != nil {
			return fmt.Errorf("-m %q: want md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512", f.digest)
		}
	}
	if ch("hmac-digest-type") {
		if o.HMAC, err = spa.ParseDigestType(f.hmacDigest); err != nil {
			return fmt.Errorf("--hmac-digest-type %q: want md5, sha1, sha256, sha384, sha512, sha3_256 or sha3_512", f.hmacDigest)
		}
	}
	if ch("encryption-mode") {
		if o.Mode, err = knock.ParseMode(f.mode); err != nil {
			return fmt.Errorf("-M: %w", err)
		}
	}
	for _, e := range []error{
		num("fw-timeout", &o.FWTimeout, f.fwTimeout, 65536),
		num("nat-port", &o.NATPort, f.natPort, 65535),
		num("server-port", &o.Port, f.port, 65535),
		num("source-port", &o.SourcePort, f.srcPort, 65535),
		num("icmp-type", &o.ICMPType, f.icmpType, 255),
		num("icmp-code", &o.ICMPCode, f.icmpCode, 255),
	} {
		if e != nil {
			return e
		}
	}
	str("nat-access", &o.NATAccess, f.nat)
	boolean("nat-local", &o.NATLocal, f.natLocal)
	boolean("nat-rand-port", &o.NATRandPort, f.natRand)
	str("server-cmd", &o.ServerCmd, f.cmd)
	str("spoof-user", &o.User, f.user)
	if ch("server-proto") {
		switch p := strings.ToLower(f.proto); p {
		case knock.ProtoUDP, knock.ProtoTCP, knock.ProtoHTTP, knock.ProtoICMP, knock.ProtoUDPRaw:
			o.Proto = p
		case "tcpraw":
			return fmt.Errorf("-P tcpraw is not supported yet; use -P tcp, udp, udpraw, http or icmp")
		default:
			return fmt.Errorf("-P %q: want udp, tcp, http, icmp or udpraw", f.proto)
		}
	}
	boolean("rand-port", &o.RandPort, f.randPort)
	str("http-proxy", &o.HTTPProxy, f.proxy)
	str("user-agent", &o.UserAgent, f.userAgent)
	if ch("time-offset-plus") && ch("time-offset-minus") {
		return fmt.Errorf("--time-offset-plus and --time-offset-minus exclude each other")
	}
	if ch("time-offset-plus") {
		if o.TimeOffset, err = knock.ParseOffset(f.offPlus); err != nil {
			return fmt.Errorf("--time-offset-plus: %w", err)
		}
	}
	if ch("time-offset-minus") {
		d, err := knock.ParseOffset(f.offMinus)
		if err != nil {
			return fmt.Errorf("--time-offset-minus: %w", err)
		}
		o.TimeOffset = -d
	}
	switch {
	case f.v4 && f.v6:
		return fmt.Errorf("-4 and -6 exclude each other")
	case f.v4:
		o.Family = 4
	case f.v6:
		o.Family = 6
	}
	return nil
}

// readKeys reads the Rijndael key (first line) and optional HMAC key (second line) from stdin
// or --fd.
func (c *cli) readKeys(f *flags) (key, hmacKey string, err error) {
	r := c.stdin
	if f.fd >= 0 {
		fh := os.NewFile(uintptr(f.fd), "fd")
		if fh == nil {
			return "", "", fmt.Errorf("--fd %d: not an open file descriptor", f.fd)
		}
		defer fh.Close()
		r = fh
	}
	sc := bufio.NewScanner(io.LimitReader(r, 4096))
	var lines []string
	for sc.Scan() && len(lines) < 2 {
		lines = append(lines, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("reading keys: %w", err)
	}
	if len(lines) == 0 || lines[0] == "" {
		return "", "", fmt.Errorf("--stdin/--fd: no key read; write the Rijndael key on the first line")
	}
	if len(lines) > 1 {
		hmacKey = lines[1]
	}
	return lines[0], hmacKey, nil
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

// keyGen implements -k: print (or -K write) new keys; with --save-rc-stanza, store them in
// the stanza instead (as fwknop does).
func (c *cli) keyGen(f *flags, o *knock.Options, rc *rcfile.File) int {
	hmacLen := f.hmacKeyLen
	if hmacLen == 0 {
		hmacLen = keygen.DefaultHMACKeyLen(o.HMAC)
	}
	rng := c.env.Rand
	if rng == nil {
		rng = rand.Reader
	}
	k, err := keygen.Generate(rng, f.keyLen, hmacLen)
	if err != nil {
		return c.errorf("%v", err)
	}
	if f.saveRC {
		if rc == nil {
			return c.errorf("--save-rc-stanza needs the rc file; drop --no-rc-file")
		}
		name := f.stanza
		if name == "" {
			name = o.Server
		}
		if name == "" {
			return c.errorf("--save-rc-stanza needs a stanza name: give -n NAME (or -D)")
		}
		o.Key, o.KeyFile, o.KeyBase64 = "", "", k.KeyBase64()
		o.HMACKey, o.HMACKeyFile, o.HMACKeyBase64 = "", "", k.HMACKeyBase64()
		o.UseHMAC = true
		if err := rcfile.SaveStanza(rc.Path, o.Stanza(name), f.forceStanza); err != nil {
			return c.errorf("%v", err)
		}
		fmt.Fprintf(c.stdout, "[+] Wrote Rijndael and HMAC keys to rc file: %s\n", rc.Path)
		return 0
	}
	text := k.String()
	if f.keyGenFile != "" {
		if err := os.WriteFile(f.keyGenFile, []byte(text), 0o600); err != nil {
			return c.errorf("-K: %v", err)
		}
		fmt.Fprintf(c.stdout, "[+] Wrote Rijndael and HMAC keys to: %s\n", f.keyGenFile)
		return 0
	}
	fmt.Fprint(c.stdout, text)
	return 0
}

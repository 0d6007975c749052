package knock

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/spa"
)

// flags are the parsed command line.
type flags struct {
	fs    *pflag.FlagSet
	order []string // long names of the flags given, in command-line order

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
	cmd, user, spoofSource                               string
	port, srcPort                                        int
	proto                                                string
	randPort                                             bool
	proxy, userAgent, wgetCmd                            string
	useWgetUA, resolveHTTPOnly                           bool
	icmpType, icmpCode                                   int
	offPlus, offMinus                                    string
	savePkt                                              string
	appendPkt, test, version, help, v4, v6               bool
	verbose                                              int
	lastCmd, showLast, noSaveArgs, noHomeDir             bool
	argsFile                                             string
	gpg, gpgAgent, gpgNoPW                               bool
	gpgRecipient, gpgSigner, gpgHome, gpgExe             string
}

func newFlags() *flags {
	f := &flags{fs: pflag.NewFlagSet("sesame knock", pflag.ContinueOnError)}
	fs := f.fs
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.StringVarP(&f.access, "access", "A", "", "ports to open: proto/port[,proto/port...] (omit: the server stanza's OPEN_PORTS, sesame servers only)")
	fs.StringVarP(&f.allowIP, "allow-ip", "a", "", "IP address (IPv4 or IPv6) the server should open access for")
	fs.BoolVarP(&f.sourceIP, "source-ip", "s", false, "let the server use the packet's source address (allow-IP 0.0.0.0); the last of -a and -s counts")
	fs.BoolVarP(&f.resolveIP, "resolve-ip-https", "R", false, "learn the allow-IP from --resolve-url (unless -a or -s is given)")
	fs.StringVar(&f.resolveURL, "resolve-url", "", "URL returning the caller's IP (default "+knock.DefaultResolveURL+")")
	fs.BoolVar(&f.resolveHTTPOnly, "resolve-http-only", false, "-R over plain HTTP (an https URL is refused)")
	fs.StringVarP(&f.wgetCmd, "wget-cmd", "w", "", "-R: run this wget (as fwknop) instead of sesame's HTTPS client")
	fs.BoolVar(&f.useWgetUA, "use-wget-user-agent", false, "-R: run wget with its own User-Agent")
	fs.StringVarP(&f.server, "destination", "D", "", "SPA server host name or address")
	fs.StringVarP(&f.stanza, "named-config", "n", "", "use this ~/.fwknoprc stanza")
	fs.StringVar(&f.rcFile, "rc-file", "", "rc file instead of ~/.fwknoprc (created if missing)")
	fs.BoolVar(&f.noRC, "no-rc-file", false, "do not read the rc file")
	fs.BoolVar(&f.noHomeDir, "no-home-dir", false, "do not use $HOME: needs --rc-file or --no-rc-file, and -E or --no-save-args")
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
	fs.BoolVar(&f.stdinKey, "stdin", false, "read one key from the first line of stdin: the Rijndael key, or the HMAC key if the Rijndael key is given")
	fs.IntVar(&f.fd, "fd", -1, "as --stdin, from this file descriptor")
	fs.BoolVarP(&f.keyGen, "key-gen", "k", false, "generate KEY_BASE64 and HMAC_KEY_BASE64 and exit")
	fs.StringVarP(&f.keyGenFile, "key-gen-file", "K", "", "with -k: write the keys to FILE")
	fs.IntVar(&f.keyLen, "key-len", 32, "with -k: Rijndael key bytes")
	fs.IntVar(&f.hmacKeyLen, "hmac-key-len", 0, "with -k: HMAC key bytes (default by HMAC type)")
	fs.StringVarP(&f.digest, "digest-type", "m", "", "inner digest: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512")
	fs.StringVar(&f.hmacDigest, "hmac-digest-type", "", "HMAC type (same names; default sha256); turns HMAC on")
	fs.StringVarP(&f.mode, "encryption-mode", "M", "", "cbc (default), ctr, cfb, ofb, ecb, legacy")
	fs.IntVarP(&f.fwTimeout, "fw-timeout", "f", 0, "ask the server for this access time in seconds")
	fs.StringVarP(&f.nat, "nat-access", "N", "", "NAT: forward to HOST[:PORT] behind the server")
	fs.BoolVar(&f.natLocal, "nat-local", false, "NAT to the server itself")
	fs.IntVar(&f.natPort, "nat-port", 0, "NAT: ask for this port on the server")
	fs.BoolVar(&f.natRand, "nat-rand-port", false, "NAT: ask for a random port on the server")
	fs.StringVarP(&f.cmd, "server-cmd", "C", "", "send a command message instead of an access request")
	fs.StringVarP(&f.user, "spoof-user", "U", "", "username in the packet (at most 48 bytes)")
	fs.StringVarP(&f.spoofSource, "spoof-source", "Q", "", "IPv4 source address of the packet (with -P udpraw, tcpraw or icmp; root)")
	fs.StringVar(&f.spoofSource, "spoof-src", "", "same as --spoof-source")
	fs.IntVarP(&f.port, "server-port", "p", 0, "SPA server port (default 62201)")
	fs.StringVarP(&f.proto, "server-proto", "P", "", "udp (default), tcp, http, udpraw, tcpraw, icmp")
	fs.IntVarP(&f.srcPort, "source-port", "S", 0, "source port")
	fs.BoolVarP(&f.randPort, "rand-port", "r", false, "send to a random port (10000..65534)")
	fs.StringVarP(&f.proxy, "http-proxy", "H", "", "send over HTTP through this proxy HOST[:PORT] (implies -P http)")
	fs.StringVarP(&f.userAgent, "user-agent", "u", "", "HTTP User-Agent for -P http and -R (default "+knock.DefaultUserAgent+")")
	fs.IntVar(&f.icmpType, "icmp-type", 0, "ICMP type for -P icmp (default 0, echo reply)")
	fs.IntVar(&f.icmpCode, "icmp-code", 0, "ICMP code for -P icmp")
	fs.StringVar(&f.offPlus, "time-offset-plus", "", "add N[s|m|h|d] to the timestamp")
	fs.StringVar(&f.offMinus, "time-offset-minus", "", "subtract N[s|m|h|d] from the timestamp")
	fs.StringVarP(&f.savePkt, "save-packet", "B", "", "write the packet to FILE")
	fs.BoolVarP(&f.appendPkt, "save-packet-append", "b", false, "with -B: append instead of overwrite")
	fs.BoolVarP(&f.test, "test", "T", false, "build and print the packet, do not send it")
	fs.CountVarP(&f.verbose, "verbose", "v", "print the packet's fields")
	fs.BoolVarP(&f.lastCmd, "last-cmd", "l", false, "run the command line saved in ~/.fwknop.run (or -E FILE) again")
	fs.BoolVar(&f.showLast, "show-last", false, "print the command line saved in ~/.fwknop.run (or -E FILE)")
	fs.StringVarP(&f.argsFile, "save-args-file", "E", "", "save the command line to FILE instead of ~/.fwknop.run")
	fs.BoolVar(&f.noSaveArgs, "no-save-args", false, "do not save the command line")
	fs.BoolVarP(&f.v4, "ipv4", "4", false, "use IPv4 only to reach the server")
	fs.BoolVarP(&f.v6, "ipv6", "6", false, "use IPv6 only to reach the server")
	fs.Bool("server-resolve-ipv4", false, "same as -4")
	fs.BoolVarP(&f.gpg, "gpg-encryption", "g", false, "GnuPG mode: encrypt to --gpg-recipient-key, sign with --gpg-signer-key (every --gpg-* option turns it on)")
	fs.StringVar(&f.gpgRecipient, "gpg-recipient-key", "", "GnuPG mode: the server's key (ID, fingerprint or name)")
	fs.StringVar(&f.gpgSigner, "gpg-signer-key", "", "GnuPG mode: your signing key (omit: unsigned, which fwknopd refuses by default); "+
		"its passphrase is asked on the terminal, or read by --stdin, or GPG_SIGNING_PW_BASE64")
	fs.BoolVar(&f.gpgNoPW, "gpg-no-signing-pw", false, "GnuPG mode: the signing key has no passphrase")
	fs.StringVar(&f.gpgHome, "gpg-home-dir", "", "GnuPG mode: the GnuPG home holding the keys (default $GNUPGHOME or ~/.gnupg)")
	fs.BoolVar(&f.gpgAgent, "gpg-agent", false, "GnuPG mode: accepted for fwknop, but sesame cannot sign through gpg-agent: "+
		"a passphrase-protected signing key is refused (drop it to be asked for the passphrase)")
	fs.StringVar(&f.gpgExe, "gpg-exe", "", "GnuPG mode: the gpg sesame runs to read the keys (default gpg on PATH); "+
		"packets are built in-process, never by gpg")
	fs.BoolVarP(&f.version, "version", "V", false, "print the version")
	fs.BoolVarP(&f.help, "help", "h", false, "print this help")
	fs.MarkHidden("spoof-src")
	return f
}

// parse parses args, recording the order of the flags.
func (f *flags) parse(args []string) error {
	return f.fs.ParseAll(args, func(fl *pflag.Flag, value string) error {
		f.order = append(f.order, fl.Name)
		return f.fs.Set(fl.Name, value)
	})
}

// last returns whichever of names was given last on the command line ("" if none).
func (f *flags) last(names ...string) string {
	for i := len(f.order) - 1; i >= 0; i-- {
		for _, n := range names {
			if f.order[i] == n {
				return n
			}
		}
	}
	return ""
}

// check validates what fwknop validates while it reads its options, before any rc file.
func (f *flags) check() error {
	ch := f.fs.Changed
	if ch("key-len") && (f.keyLen < 1 || f.keyLen > 128) {
		return fmt.Errorf("--key-len %d: must be in [1-128]", f.keyLen)
	}
	if ch("hmac-key-len") && (f.hmacKeyLen < 1 || f.hmacKeyLen > 128) {
		return fmt.Errorf("--hmac-key-len %d: must be in [1-128]", f.hmacKeyLen)
	}
	if f.noRC && ch("named-config") {
		return fmt.Errorf("-n %s needs the rc file; drop --no-rc-file", f.stanza)
	}
	if f.noRC && f.list {
		return fmt.Errorf("--stanza-list needs the rc file; drop --no-rc-file")
	}
	if ch("stdin") && ch("fd") {
		return fmt.Errorf("--stdin and --fd both read a key; give one of them")
	}
	if f.v4 && f.v6 {
		return fmt.Errorf("-4 and -6 exclude each other")
	}
	if ch("time-offset-plus") && ch("time-offset-minus") {
		return fmt.Errorf("--time-offset-plus and --time-offset-minus exclude each other")
	}
	// -H makes the protocol HTTP; a later -P with another protocol is an error (fwknop:
	// "Cannot set --http-proxy with a non-HTTP protocol"), an earlier one is overridden.
	if ch("http-proxy") && f.last("http-proxy", "server-proto") == "server-proto" && !strings.EqualFold(f.proto, knock.ProtoHTTP) {
		return fmt.Errorf("-P %s after -H: the HTTP proxy sends over HTTP; drop -P or -H", f.proto)
	}
	return nil
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
	// The last of -a and -s counts; -R is used only when neither gives an address (fwknop).
	switch f.last("allow-ip", "source-ip") {
	case "allow-ip":
		o.AllowIP, o.SourceIP = f.allowIP, false
	case "source-ip":
		o.AllowIP, o.SourceIP = "", f.sourceIP
	}
	boolean("resolve-ip-https", &o.ResolveIP, f.resolveIP)
	str("resolve-url", &o.ResolveURL, f.resolveURL)
	boolean("resolve-http-only", &o.ResolveHTTPOnly, f.resolveHTTPOnly)
	str("wget-cmd", &o.WgetCmd, f.wgetCmd)
	boolean("use-wget-user-agent", &o.UseWgetUA, f.useWgetUA)
	str("destination", &o.Server, f.server)
	boolean("use-hmac", &o.UseHMAC, f.useHMAC)
	if ch("key-rijndael") || ch("key-base64-rijndael") || ch("get-key") {
		// In GnuPG mode these give the signing passphrase, the one GPG_SIGNING_PW gives.
		o.Key, o.KeyBase64, o.KeyFile = f.key, f.keyB64, f.keyFile
		o.GPGSigningPW, o.GPGSigningPWBase64 = "", ""
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
		o.UseHMAC = true // as in fwknop: choosing an HMAC type asks for an HMAC
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
	if ch("spoof-source") || ch("spoof-src") {
		if o.SpoofSource, err = knock.ParseSpoofSource(f.spoofSource); err != nil {
			return fmt.Errorf("-Q: %w", err)
		}
	}
	if ch("server-proto") {
		if o.Proto, err = knock.ParseProto(f.proto); err != nil {
			return fmt.Errorf("-P: %w", err)
		}
	}
	if ch("http-proxy") {
		o.HTTPProxy, o.Proto = f.proxy, knock.ProtoHTTP
	}
	boolean("rand-port", &o.RandPort, f.randPort)
	str("user-agent", &o.UserAgent, f.userAgent)
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
	// Every GnuPG option turns GnuPG mode on, as in fwknop.
	for _, n := range []string{"gpg-encryption", "gpg-recipient-key", "gpg-signer-key", "gpg-home-dir", "gpg-exe", "gpg-agent", "gpg-no-signing-pw"} {
		if ch(n) {
			o.UseGPG = true
		}
	}
	str("gpg-recipient-key", &o.GPGRecipient, f.gpgRecipient)
	str("gpg-signer-key", &o.GPGSigner, f.gpgSigner)
	str("gpg-home-dir", &o.GPGHomeDir, strings.TrimSuffix(f.gpgHome, "/")) // fwknop drops one trailing '/'
	str("gpg-exe", &o.GPGExe, f.gpgExe)
	if f.gpgAgent {
		o.GPGAgent = true
	}
	if f.gpgNoPW {
		o.GPGNoSigningPW = true
	}
	if ch("verbose") {
		o.Verbose = f.verbose
	}
	if f.noSaveArgs {
		o.NoSaveArgs = true
	}
	switch {
	case f.v4 || ch("server-resolve-ipv4"):
		o.Family = 4
	case f.v6:
		o.Family = 6
	}
	return nil
}

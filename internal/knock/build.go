package knock

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
)

// Errors callers branch on. Each error returned by Build wraps at most one of them and says in
// its text which option fixes it.
var (
	ErrNoServer    = errors.New("no SPA server")
	ErrNoAllowIP   = errors.New("no allow-IP")
	ErrNoKey       = errors.New("missing key") // a Rijndael or HMAC key
	ErrKeyLength   = errors.New("key of the wrong length")
	ErrUserTooLong = errors.New("username too long")
	ErrBadOption   = errors.New("invalid option")
)

// MaxUsername is the longest username fwknopd accepts (its base64 form must fit 64 bytes).
const MaxUsername = 48

// maxHMACKey is the longest HMAC key fwknop's client takes (it cuts longer ones; sesame refuses).
const maxHMACKey = 128

// Env holds what Build takes from the outside world. Zero fields use the real thing.
type Env struct {
	Now      func() time.Time
	Rand     io.Reader     // crypto/rand.Reader
	Username func() string // default username (SPOOF_USER, LOGNAME, login, USER, NO_USER)
	// Resolve asks an HTTP(S) URL for the caller's address (-R); ResolveMyIP.
	Resolve func(ctx context.Context, url, userAgent string) (netip.Addr, error)
	// Run runs a program (wget for -w/--use-wget-user-agent) and returns its standard output;
	// RunClean.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// StdinKey and StdinHMACKey are keys read with --stdin/--fd. They are used when no other
	// source gives that key.
	StdinKey, StdinHMACKey string
	// GnuPG reads the keys of a GnuPG-mode knock from a GnuPG home; gpgkeys.LoadClient.
	GnuPG func(ctx context.Context, s gpgkeys.ClientSpec) (*gpgkeys.ClientKeys, error)
	// Passphrase asks the user for the GnuPG signer's passphrase (on the terminal, without
	// echo). nil: nobody to ask, a protected signer key is then an error.
	Passphrase func(prompt string) (string, error)
}

// Packet is a built SPA packet.
type Packet struct {
	Msg  spa.Message // as encoded (Random, Version, Digest filled)
	Keys spa.Keys
	Wire string
	// NoPorts is true when the access message is NoPortsAccess (no -A given).
	NoPorts bool
	// DestPort is the destination port: -p, 62201, or the -r random port.
	DestPort int
	// Warnings are things the user should fix that did not stop the build (a key file others
	// can read, a -R URL that is not HTTPS).
	Warnings []string
	// GnuPG is set for a GnuPG-mode packet (-g).
	GnuPG *GnuPGPacket
}

// Build turns o into an encoded SPA packet.
func Build(ctx context.Context, o *Options, env Env) (*Packet, error) {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Rand == nil {
		env.Rand = rand.Reader
	}
	if env.Username == nil {
		env.Username = DefaultUsername
	}
	if env.Resolve == nil {
		env.Resolve = ResolveMyIP
	}
	if env.Run == nil {
		env.Run = RunClean
	}
	if env.GnuPG == nil {
		env.GnuPG = defaultGnuPG
	}
	if o.Server == "" {
		return nil, fmt.Errorf("%w: give -D HOST (or SPA_SERVER in the rc stanza)", ErrNoServer)
	}
	if err := o.checkTransport(); err != nil {
		return nil, err
	}
	if err := o.checkGnuPG(); err != nil {
		return nil, err
	}
	p := &Packet{}
	var keys spa.Keys
	var err error
	if o.UseGPG {
		keys = spa.Keys{HMACType: o.HMAC}
		err = o.hmacKey(env, &p.Warnings, &keys)
	} else {
		keys, err = o.keys(env, &p.Warnings)
	}
	if err != nil {
		return nil, err
	}
	allow, err := o.allowIP(ctx, env, &p.Warnings)
	if err != nil {
		return nil, err
	}
	m := spa.Message{DigestType: o.Digest, ClientTimeout: uint32(o.FWTimeout)}
	if o.FWTimeout < 0 || o.FWTimeout > 65536 {
		return nil, fmt.Errorf("%w: -f %d: the timeout must be 0..65536 seconds", ErrBadOption, o.FWTimeout)
	}

	m.Username = o.User
	if m.Username == "" {
		m.Username = env.Username()
	}
	if len(m.Username) > MaxUsername {
		return nil, fmt.Errorf("%w: %q is %d bytes, fwknopd accepts at most %d; shorten -U/SPOOF_USER",
			ErrUserTooLong, m.Username, len(m.Username), MaxUsername)
	}
	m.Timestamp = env.Now().Add(o.TimeOffset).Unix()

	if o.ServerCmd != "" {
		m.Type = spa.CommandMsg
		m.Message = allow + "," + o.ServerCmd
	} else {
		m.Type = spa.AccessMsg
		access := o.Access
		if access == "" {
			access, p.NoPorts = NoPortsAccess, true
		} else if _, err := spa.ParseAccess("0.0.0.0," + access); err != nil {
			return nil, fmt.Errorf("%w: -A %q: want proto/port[,proto/port...] with tcp or udp and ports 1..65535",
				ErrBadOption, access)
		}
		if err := o.nat(&m, &access, p.NoPorts, env); err != nil {
			return nil, err
		}
		m.Message = allow + "," + access
	}

	if o.UseGPG {
		if err := o.encodeGnuPG(ctx, &m, keys, env, p); err != nil {
			return nil, err
		}
	} else if p.Wire, err = spa.Encode(&m, keys, env.Rand); err != nil {
		return nil, fmt.Errorf("build SPA packet: %w", err)
	}
	p.Msg, p.Keys = m, keys
	p.DestPort = o.Port
	if p.DestPort == 0 {
		p.DestPort = DefaultPort
	}
	if o.RandPort {
		p.DestPort = randomPort(m.Random)
	}
	return p, nil
}

// randomPort is fwknop's -r rule: 10000 + (first five digits of the random value mod 55535).
func randomPort(digits string) int {
	n, _ := strconv.Atoi(digits[:5])
	return 10000 + n%55535
}

// newRandomDigits draws 16 decimal digits for --nat-rand-port.
func newRandomDigits(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("random port: %w", err)
	}
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b[:]), nil
}

// nat fills the NAT access field and rewrites the access port for -N, --nat-local,
// --nat-port and --nat-rand-port, as fwknop's client does.
func (o *Options) nat(m *spa.Message, access *string, noPorts bool, env Env) error {
	natPort := o.NATPort
	if o.NATRandPort {
		d, err := newRandomDigits(env.Rand)
		if err != nil {
			return err
		}
		natPort = randomPort(d)
	}
	if o.NATAccess == "" && !o.NATLocal {
		if natPort != 0 {
			return fmt.Errorf("%w: --nat-port/--nat-rand-port need -N or --nat-local", ErrBadOption)
		}
		return nil
	}
	if o.NATAccess != "" && o.NATLocal {
		return fmt.Errorf("%w: -N and --nat-local exclude each other", ErrBadOption)
	}
	if noPorts {
		return fmt.Errorf("%w: NAT access needs -A proto/port", ErrBadOption)
	}
	first, _, _ := strings.Cut(*access, ",")
	proto, port, _ := strings.Cut(first, "/")
	if natPort != 0 {
		if strings.Contains(*access, ",") {
			return fmt.Errorf("%w: --nat-port/--nat-rand-port allow a single -A proto/port", ErrBadOption)
		}
		*access = proto + "/" + strconv.Itoa(natPort)
	}
	if o.NATLocal {
		m.Type = spa.LocalNATAccessMsg
		m.NATAccess = o.Server + "," + port
		return nil
	}
	host, hport := splitHostPort(o.NATAccess)
	if hport == "" {
		hport = port
	}
	if n, err := strconv.Atoi(hport); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%w: -N %q: want HOST[:PORT] with a port 1..65535", ErrBadOption, o.NATAccess)
	}
	m.Type = spa.NATAccessMsg
	m.NATAccess = host + "," + hport
	return nil
}

// splitHostPort splits "host:port", "[v6]:port", "host" or a bare IPv6 address.
func splitHostPort(s string) (host, port string) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		return h, p
	}
	return strings.Trim(s, "[]"), ""
}

// checkTransport refuses transport options that contradict each other, as fwknop does.
func (o *Options) checkTransport() error {
	proto := o.Proto
	if proto != "" {
		if _, err := ParseProto(proto); err != nil {
			return fmt.Errorf("-P: %w", err)
		}
	}
	if o.HTTPProxy != "" && proto != "" && proto != ProtoHTTP {
		return fmt.Errorf("%w: -H/HTTP_PROXY sends over HTTP, but -P/SPA_SERVER_PROTO is %s; drop one", ErrBadOption, proto)
	}
	if o.SpoofSource != "" {
		if _, err := ParseSpoofSource(o.SpoofSource); err != nil {
			return fmt.Errorf("-Q: %w", err)
		}
		if proto != ProtoUDPRaw && proto != ProtoTCPRaw && proto != ProtoICMP {
			return fmt.Errorf("%w: -Q/SPOOF_SOURCE_IP needs -P udpraw, tcpraw or icmp (raw sockets, root)", ErrBadOption)
		}
	}
	return nil
}

// allowIP returns the allow-IP text of the message: -a, else -s, else -R (fwknop ignores -R
// when an address is given).
func (o *Options) allowIP(ctx context.Context, env Env, warn *[]string) (string, error) {
	switch {
	case o.AllowIP != "":
		a, err := netip.ParseAddr(o.AllowIP)
		if err != nil || a.Zone() != "" {
			return "", fmt.Errorf("%w: -a %q is not an IPv4 or IPv6 address", ErrBadOption, o.AllowIP)
		}
		return a.Unmap().String(), nil
	case o.SourceIP:
		if o.Family == 6 {
			return "::", nil
		}
		return "0.0.0.0", nil
	case o.ResolveIP:
		a, err := o.resolveIP(ctx, env, warn)
		if err != nil {
			return "", fmt.Errorf("%w: -R: %v; give -a IP instead", ErrNoAllowIP, err)
		}
		return a.String(), nil
	}
	return "", fmt.Errorf("%w: give -a IP (the address to open), -s (the packet's source) or -R (ask --resolve-url)", ErrNoAllowIP)
}

// resolveIP learns the caller's address for -R: over plain HTTP with --resolve-http-only, by
// running wget with -w or --use-wget-user-agent (the command line fwknop runs), else with
// env.Resolve.
func (o *Options) resolveIP(ctx context.Context, env Env, warn *[]string) (netip.Addr, error) {
	url := o.ResolveURL
	ua := o.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	scheme, _, hasScheme := strings.Cut(url, "://")
	scheme = strings.ToLower(scheme)
	if o.ResolveHTTPOnly {
		switch {
		case url == "":
			url = "http://" + strings.TrimPrefix(DefaultResolveURL, "https://")
		case hasScheme && scheme == "https":
			return netip.Addr{}, fmt.Errorf("--resolve-http-only: %s is an https URL; give --resolve-url http://... or drop --resolve-http-only", url)
		case !hasScheme:
			url = "http://" + url
		}
		return env.Resolve(ctx, url, ua)
	}
	if url == "" {
		url = DefaultResolveURL
	} else if scheme != "https" {
		*warn = append(*warn, fmt.Sprintf("-R: the resolve URL %s is not https, so whoever is on the path can choose the address to open", url))
	}
	if o.WgetCmd == "" && !o.UseWgetUA {
		return env.Resolve(ctx, url, ua)
	}
	wget := o.WgetCmd
	if wget == "" {
		wget = "wget"
	}
	var args []string
	if !o.UseWgetUA {
		args = append(args, "-U", ua)
	}
	args = append(args, "--secure-protocol=auto", "--quiet", "-O", "-", url)
	out, err := env.Run(ctx, wget, args...)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s %s: %w", wget, strings.Join(args, " "), err)
	}
	return parseMyIP(bytes.NewReader(out), url)
}

// RunClean runs name with args and an empty environment (as fwknop runs wget), for at most
// 30 s, and returns its standard output.
func RunClean(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = []string{}
	return cmd.Output()
}

// KeySet reports whether o names a Rijndael key (so --stdin/--fd give the HMAC key).
func (o *Options) KeySet() bool { return o.Key != "" || o.KeyBase64 != "" || o.KeyFile != "" }

// HMACKeySet reports whether o names an HMAC key.
func (o *Options) HMACKeySet() bool {
	return o.HMACKey != "" || o.HMACKeyBase64 != "" || o.HMACKeyFile != ""
}

// HMACOn reports whether the packet gets an HMAC: --use-hmac (or --hmac-digest-type on the
// command line, which sets UseHMAC), or any HMAC key (fwknop adds one even with USE_HMAC N).
func (o *Options) HMACOn() bool { return o.UseHMAC || o.HMACKeySet() }

// keys assembles spa.Keys from the key options.
func (o *Options) keys(env Env, warn *[]string) (spa.Keys, error) {
	k := spa.Keys{Mode: o.Mode, HMACType: o.HMAC}
	var err error
	switch {
	case o.Key != "":
		k.Key = []byte(o.Key)
	case o.KeyBase64 != "":
		if k.Key, err = spa.DecodeKey(o.KeyBase64, true); err != nil {
			return k, fmt.Errorf("%w: --key-base64-rijndael/KEY_BASE64 is not base64", ErrBadOption)
		}
	case o.KeyFile != "":
		s, err := rcfile.LookupKey(o.KeyFile, o.Server)
		if err != nil {
			return k, fmt.Errorf("%w: -G: %v", ErrNoKey, err)
		}
		keyFileMode(o.KeyFile, warn)
		k.Key = []byte(s)
	case env.StdinKey != "":
		k.Key = []byte(env.StdinKey)
	default:
		return k, fmt.Errorf("%w: give --key-rijndael, --key-base64-rijndael, -G FILE or --stdin, or KEY_BASE64 in the rc stanza (make keys with: sesame knock -k)", ErrNoKey)
	}
	if len(k.Key) < 1 || len(k.Key) > 32 {
		return k, fmt.Errorf("%w: the Rijndael key is %d bytes, it must be 1..32 (make one with: sesame knock -k)", ErrKeyLength, len(k.Key))
	}
	if err := o.hmacKey(env, warn, &k); err != nil {
		return k, err
	}
	if k.HMACKey != nil && string(k.HMACKey) == string(k.Key) {
		return k, fmt.Errorf("%w: the Rijndael and HMAC keys are identical; fwknopd refuses that, use two keys", ErrBadOption)
	}
	if k.HMACKey != nil && k.Mode == spa.Legacy {
		return k, fmt.Errorf("%w: -M legacy cannot be combined with HMAC (as in fwknop)", ErrBadOption)
	}
	return k, nil
}

// hmacKey sets k's HMAC key from the HMAC options (none: k.HMACType is cleared).
func (o *Options) hmacKey(env Env, warn *[]string, k *spa.Keys) error {
	var err error
	switch {
	case o.HMACKey != "":
		k.HMACKey = []byte(o.HMACKey)
	case o.HMACKeyBase64 != "":
		if k.HMACKey, err = spa.DecodeKey(o.HMACKeyBase64, true); err != nil {
			return fmt.Errorf("%w: --key-base64-hmac/HMAC_KEY_BASE64 is not base64", ErrBadOption)
		}
	case o.HMACKeyFile != "":
		// An unreadable HMAC key file is an error: fwknop then sends no HMAC, which the
		// server drops (the knock fails silently), so sesame never sends less than asked.
		s, err := rcfile.LookupKey(o.HMACKeyFile, o.Server)
		if err != nil {
			return fmt.Errorf("%w: --get-hmac-key/HMAC_KEY_FILE: %v", ErrNoKey, err)
		}
		keyFileMode(o.HMACKeyFile, warn)
		k.HMACKey = []byte(s)
	case env.StdinHMACKey != "":
		k.HMACKey = []byte(env.StdinHMACKey)
	case o.UseHMAC:
		return fmt.Errorf("%w: HMAC is on (--use-hmac, USE_HMAC or --hmac-digest-type) but no HMAC key is given: "+
			"give --key-hmac, --key-base64-hmac, --get-hmac-key or --stdin", ErrNoKey)
	}
	if len(k.HMACKey) > maxHMACKey {
		return fmt.Errorf("%w: the HMAC key is %d bytes, at most %d are allowed", ErrKeyLength, len(k.HMACKey), maxHMACKey)
	}
	if k.HMACKey == nil {
		k.HMACType = 0
	}
	return nil
}

// keyFileMode warns about a key file others can read (fwknop reads it silently).
func keyFileMode(path string, warn *[]string) {
	if err := rcfile.CheckMode(path); err != nil {
		*warn = append(*warn, "key file "+strings.TrimSuffix(err.Error(), ": "+rcfile.ErrPermissions.Error()))
	}
}

// DefaultUsername is fwknop's choice: $SPOOF_USER, $LOGNAME, the login name, $USER, or
// NO_USER.
func DefaultUsername() string {
	for _, v := range []string{"SPOOF_USER", "LOGNAME"} {
		if s := os.Getenv(v); s != "" {
			return s
		}
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if s := os.Getenv("USER"); s != "" {
		return s
	}
	return "NO_USER"
}

package knock

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
)

// DefaultPort is fwknop's SPA port.
const DefaultPort = 62201

// NoPortsAccess is the access text sent when no -A is given: "open the stanza's OPEN_PORTS"
// for sesame's server, an invalid request for fwknopd (see the package doc).
const NoPortsAccess = "none/0"

// DefaultResolveURL is where -R learns the caller's public IP, as fwknop does.
const DefaultResolveURL = "https://www.cipherdyne.org/cgi-bin/myip"

// Options are the client settings, merged from ~/.fwknoprc and the command line. The zero
// value of a field means "not set / default".
type Options struct {
	Server      string // -D, SPA_SERVER
	Port        int    // -p, SPA_SERVER_PORT; 0 = 62201
	Proto       string // -P, SPA_SERVER_PROTO: udp (default), tcp, http, icmp, udpraw, tcpraw
	SourcePort  int    // -S, SPA_SOURCE_PORT
	RandPort    bool   // -r, RAND_PORT
	Family      int    // 4 or 6 (-4/-6, --server-resolve-ipv4): resolve the server in this family only
	SpoofSource string // -Q, SPOOF_SOURCE_IP: IPv4 source address of raw packets (udpraw, tcpraw, icmp)

	// The allow-IP: AllowIP, else SourceIP, else ResolveIP (an explicit address beats -R, as in
	// fwknop; the command line keeps only the last of -a and -s).
	Access          string // -A, ACCESS: "tcp/22[,udp/53...]"; "" sends NoPortsAccess
	AllowIP         string // -a, ALLOW_IP (IPv4 or IPv6)
	SourceIP        bool   // -s, ALLOW_IP source: allow-IP 0.0.0.0
	ResolveIP       bool   // -R, ALLOW_IP resolve, RESOLVE_IP_HTTPS / RESOLVE_IP_HTTP Y
	ResolveURL      string // --resolve-url, RESOLVE_URL
	ResolveHTTPOnly bool   // --resolve-http-only, RESOLVE_HTTP_ONLY: -R over plain HTTP only
	WgetCmd         string // -w, WGET_CMD: run this wget for -R (default: sesame's HTTPS client)
	UseWgetUA       bool   // --use-wget-user-agent, USE_WGET_USER_AGENT: -R with wget's own User-Agent

	Key, KeyBase64         string // --key-rijndael / --key-base64-rijndael, KEY / KEY_BASE64
	KeyFile                string // -G, KEY_FILE
	HMACKey, HMACKeyBase64 string // --key-hmac / --key-base64-hmac
	HMACKeyFile            string // --get-hmac-key, HMAC_KEY_FILE
	UseHMAC                bool   // --use-hmac, USE_HMAC

	Digest spa.DigestType // -m, DIGEST_TYPE
	HMAC   spa.DigestType // --hmac-digest-type, HMAC_DIGEST_TYPE
	Mode   spa.Mode       // -M, ENCRYPTION_MODE (spa.Asymmetric only with UseGPG)

	// GnuPG mode (see gnupg.go). In it the "key" options (Key, KeyBase64, KeyFile, --stdin)
	// give the signer's passphrase, as in fwknop, which keeps both in one place.
	UseGPG             bool   // -g and every --gpg-* option, USE_GPG
	GPGAgent           bool   // --gpg-agent, USE_GPG_AGENT (see gnupg.go: sesame cannot use the agent)
	GPGNoSigningPW     bool   // --gpg-no-signing-pw, GPG_NO_SIGNING_PW: the signer key has no passphrase
	GPGRecipient       string // --gpg-recipient-key, GPG_RECIPIENT: the server's key
	GPGSigner          string // --gpg-signer-key, GPG_SIGNER: the client's key ("" sends unsigned)
	GPGHomeDir         string // --gpg-home-dir, GPG_HOMEDIR ("" is $GNUPGHOME, else ~/.gnupg)
	GPGExe             string // --gpg-exe, GPG_EXE: the gpg run once to read the keys
	GPGSigningPW       string // GPG_SIGNING_PW: the signer's passphrase (rc file only)
	GPGSigningPWBase64 string // GPG_SIGNING_PW_BASE64

	FWTimeout   int    // -f, FW_TIMEOUT
	NATAccess   string // -N host[:port], NAT_ACCESS
	NATLocal    bool   // --nat-local, NAT_LOCAL
	NATPort     int    // --nat-port, NAT_PORT
	NATRandPort bool   // --nat-rand-port, NAT_RAND_PORT
	ServerCmd   string // -C (never saved to the rc file, as fwknop)

	User       string        // -U, SPOOF_USER
	TimeOffset time.Duration // --time-offset-plus/minus, TIME_OFFSET

	HTTPProxy string // -H, HTTP_PROXY (implies -P http)
	UserAgent string // -u, HTTP_USER_AGENT (also for -R)
	ICMPType  int    // --icmp-type (default 0, echo reply)
	ICMPCode  int    // --icmp-code

	Verbose    int  // -v (count), VERBOSE (0..4, or Y)
	NoSaveArgs bool // --no-save-args, NO_SAVE_ARGS: do not write ~/.fwknop.run
}

// Variable names of ~/.fwknoprc, in the order fwknop 2.6.10 writes them.
var rcOrder = []string{"DIGEST_TYPE", "SPA_SERVER_PROTO", "SPA_SERVER_PORT", "SPA_SOURCE_PORT",
	"FW_TIMEOUT", "ALLOW_IP", "TIME_OFFSET", "ENCRYPTION_MODE", "USE_GPG", "USE_GPG_AGENT", "GPG_RECIPIENT",
	"GPG_SIGNER", "GPG_HOMEDIR", "GPG_EXE", "GPG_SIGNING_PW", "GPG_SIGNING_PW_BASE64", "GPG_NO_SIGNING_PW",
	"SPOOF_USER", "SPOOF_SOURCE_IP",
	"ACCESS", "SPA_SERVER", "RAND_PORT", "KEY", "KEY_BASE64", "HMAC_DIGEST_TYPE", "HMAC_KEY",
	"HMAC_KEY_BASE64", "USE_HMAC", "USE_WGET_USER_AGENT", "KEY_FILE", "HMAC_KEY_FILE", "NAT_ACCESS",
	"HTTP_USER_AGENT", "RESOLVE_URL", "HTTP_PROXY", "NAT_LOCAL", "NAT_RAND_PORT", "NAT_PORT",
	"VERBOSE", "RESOLVE_HTTP_ONLY", "WGET_CMD", "NO_SAVE_ARGS"}

// ParamError is an rc file variable that fwknop would not accept either ("Parameter error"):
// an unknown name or a bad value. It names the file, line and variable.
type ParamError struct {
	Path, Stanza string
	Line         int
	Name, Value  string
	Err          error
}

func (e *ParamError) Error() string {
	where := e.Path
	if e.Line > 0 {
		where = fmt.Sprintf("%s line %d", e.Path, e.Line)
	}
	return fmt.Sprintf("parameter error in %s ([%s]): %s %q: %v", where, e.Stanza, e.Name, e.Value, e.Err)
}

func (e *ParamError) Unwrap() error { return e.Err }

// ErrUnknownVar: an rc variable fwknop 2.6.10 does not know.
var ErrUnknownVar = errors.New("unknown variable")

// Apply sets o from an rc stanza (already merged over [default]) read from the file path.
// Unknown variables, bad values and unsupported features are a *ParamError. The warnings name
// lines whose value lost text after a blank (see rcfile.Var.Dropped).
func (o *Options) Apply(s *rcfile.Stanza, path string) (warnings []string, err error) {
	for _, v := range s.Vars {
		if err := o.applyVar(v.Name, v.Value); err != nil {
			return warnings, &ParamError{Path: path, Stanza: s.Name, Line: v.Line, Name: v.Name, Value: v.Value, Err: err}
		}
		if v.Dropped != "" {
			warnings = append(warnings, fmt.Sprintf("%s line %d: %s is %q: the text %q after it is ignored, as fwknop does; "+
				"remove it, or use %s_BASE64 for a key with blanks", path, v.Line, v.Name, v.Value, v.Dropped, strings.TrimSuffix(v.Name, "_BASE64")))
		}
	}
	return warnings, nil
}

func yes(v string) bool {
	return strings.EqualFold(v, "y") || strings.EqualFold(v, "yes") || v == "1"
}

func (o *Options) applyVar(name, v string) error {
	var err error
	atoi := func(dst *int, max int) {
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 || n > max {
			err = fmt.Errorf("want a number in 0..%d", max)
			return
		}
		*dst = n
	}
	b64 := func(dst *string) {
		if _, e := spa.DecodeKey(v, true); e != nil {
			err = fmt.Errorf("not base64")
			return
		}
		*dst = v
	}
	switch name {
	case "SPA_SERVER":
		o.Server = v
	case "SPA_SERVER_PORT":
		atoi(&o.Port, 65535)
	case "SPA_SERVER_PROTO":
		o.Proto, err = ParseProto(v)
	case "SPA_SOURCE_PORT":
		atoi(&o.SourcePort, 65535)
	case "RAND_PORT":
		o.RandPort = yes(v)
	case "SERVER_RESOLVE_IPV4":
		if yes(v) {
			o.Family = 4
		}
	case "SPOOF_SOURCE_IP":
		o.SpoofSource, err = ParseSpoofSource(v)
	case "ACCESS":
		o.Access = v
	case "ALLOW_IP":
		o.AllowIP, o.SourceIP, o.ResolveIP = "", false, false
		switch strings.ToLower(v) {
		case "source":
			o.SourceIP = true
		case "resolve":
			o.ResolveIP = true
		default:
			if a, e := netip.ParseAddr(v); e != nil || a.Zone() != "" {
				return fmt.Errorf("want an IPv4 or IPv6 address, source or resolve")
			}
			o.AllowIP = v
		}
	case "RESOLVE_IP_HTTPS", "RESOLVE_IP_HTTP":
		if yes(v) {
			o.ResolveIP = true
		}
	case "RESOLVE_URL":
		o.ResolveURL = v
	case "RESOLVE_HTTP_ONLY":
		o.ResolveHTTPOnly = yes(v)
	case "WGET_CMD":
		o.WgetCmd = v
	case "USE_WGET_USER_AGENT":
		o.UseWgetUA = yes(v)
	case "KEY":
		o.Key, o.KeyBase64, o.GPGSigningPW, o.GPGSigningPWBase64 = v, "", "", ""
	case "KEY_BASE64":
		b64(&o.KeyBase64)
		o.Key, o.GPGSigningPW, o.GPGSigningPWBase64 = "", "", ""
	case "KEY_FILE":
		o.KeyFile = v
	case "HMAC_KEY":
		o.HMACKey, o.HMACKeyBase64 = v, ""
	case "HMAC_KEY_BASE64":
		b64(&o.HMACKeyBase64)
		o.HMACKey = ""
	case "HMAC_KEY_FILE":
		o.HMACKeyFile = v
	case "USE_HMAC":
		o.UseHMAC = yes(v)
	case "DIGEST_TYPE":
		o.Digest, err = spa.ParseDigestType(v)
	case "HMAC_DIGEST_TYPE":
		o.HMAC, err = spa.ParseDigestType(v)
	case "ENCRYPTION_MODE":
		o.Mode, err = ParseMode(v)
	case "FW_TIMEOUT":
		atoi(&o.FWTimeout, 65536)
	case "NAT_ACCESS":
		o.NATAccess = v
	case "NAT_LOCAL":
		o.NATLocal = yes(v)
	case "NAT_PORT":
		atoi(&o.NATPort, 65535)
	case "NAT_RAND_PORT":
		o.NATRandPort = yes(v)
	case "SPOOF_USER":
		o.User = v
	case "TIME_OFFSET":
		neg := strings.HasPrefix(v, "-")
		var d time.Duration
		d, err = ParseOffset(strings.TrimPrefix(v, "-"))
		if neg {
			d = -d
		}
		o.TimeOffset = d
	case "HTTP_USER_AGENT":
		o.UserAgent = v
	case "HTTP_PROXY":
		o.HTTPProxy = v
	case "VERBOSE":
		// fwknop: a number must be 0..4; any other word is Y (1) or not.
		if n, e := strconv.Atoi(v); e == nil || strings.HasPrefix(v, "-") {
			if e != nil || n < 0 || n > 4 {
				return fmt.Errorf("want 0..4, Y or N")
			}
			o.Verbose = n
		} else if yes(v) {
			o.Verbose = 1
		} else {
			o.Verbose = 0
		}
	case "NO_SAVE_ARGS":
		o.NoSaveArgs = yes(v)
	case "USE_GPG":
		o.UseGPG = yes(v)
	case "USE_GPG_AGENT":
		o.GPGAgent = yes(v)
	case "GPG_NO_SIGNING_PW":
		o.GPGNoSigningPW = yes(v)
	case "GPG_RECIPIENT":
		o.GPGRecipient = v
	case "GPG_SIGNER":
		o.GPGSigner = v
	case "GPG_HOMEDIR":
		o.GPGHomeDir = v
	case "GPG_EXE":
		o.GPGExe = v
	case "GPG_SIGNING_PW": // the same setting as KEY in fwknop: the last line counts
		o.GPGSigningPW, o.GPGSigningPWBase64, o.Key, o.KeyBase64 = v, "", "", ""
	case "GPG_SIGNING_PW_BASE64":
		b64(&o.GPGSigningPWBase64)
		o.GPGSigningPW, o.Key, o.KeyBase64 = "", "", ""
	default:
		return fmt.Errorf("%w; check the spelling against fwknop(8)", ErrUnknownVar)
	}
	return err
}

// Protocols -P accepts.
var protos = []string{ProtoUDP, ProtoTCP, ProtoHTTP, ProtoICMP, ProtoUDPRaw, ProtoTCPRaw}

// ParseProto parses -P / SPA_SERVER_PROTO (case-insensitive).
func ParseProto(v string) (string, error) {
	p := strings.ToLower(v)
	if slices.Contains(protos, p) {
		return p, nil
	}
	return "", fmt.Errorf("%w: protocol %q: want udp, tcp, http, udpraw, tcpraw or icmp", ErrBadOption, v)
}

// ParseSpoofSource parses -Q / SPOOF_SOURCE_IP: an IPv4 address (fwknop 2.6 spoofs IPv4 only).
func ParseSpoofSource(v string) (string, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || !a.Unmap().Is4() {
		return "", fmt.Errorf("%w: spoofed source %q: want an IPv4 address", ErrBadOption, v)
	}
	return a.Unmap().String(), nil
}

// ParseMode parses -M / ENCRYPTION_MODE. "asymmetric" (GnuPG) is accepted; Build refuses it
// without GnuPG mode, as fwknop does.
func ParseMode(v string) (spa.Mode, error) {
	if strings.EqualFold(v, "asymmetric") {
		return spa.Asymmetric, nil
	}
	m, err := spa.ParseMode(v)
	if err != nil {
		return 0, fmt.Errorf("encryption mode %q (want cbc, ctr, cfb, ofb, ecb or legacy): %w", v, err)
	}
	if m == spa.PCBC {
		return 0, fmt.Errorf("encryption mode %q is not supported; use cbc: %w", v, spa.ErrUnsupported)
	}
	return m, nil
}

// ParseOffset parses a --time-offset value: seconds, or a number with suffix s, m, h or d,
// at most 65536 units (as fwknop).
func ParseOffset(v string) (time.Duration, error) {
	unit := time.Second
	num := v
	if n := len(v); n > 0 {
		switch v[n-1] {
		case 's', 'S':
			num = v[:n-1]
		case 'm', 'M':
			unit, num = time.Minute, v[:n-1]
		case 'h', 'H':
			unit, num = time.Hour, v[:n-1]
		case 'd', 'D':
			unit, num = 24*time.Hour, v[:n-1]
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 65536 {
		return 0, fmt.Errorf("time offset %q: want N, Nm, Nh or Nd with N in 0..65536", v)
	}
	return time.Duration(n) * unit, nil
}

// Stanza renders o as an rc stanza named name, with the variables fwknop would write (keys
// included, the server command never), in fwknop's order.
func (o *Options) Stanza(name string) *rcfile.Stanza {
	vals := map[string]string{}
	if o.Digest != 0 {
		vals["DIGEST_TYPE"] = o.Digest.String()
	}
	if o.Proto != "" {
		vals["SPA_SERVER_PROTO"] = o.Proto
	}
	if o.Port != 0 {
		vals["SPA_SERVER_PORT"] = strconv.Itoa(o.Port)
	}
	if o.SourcePort != 0 {
		vals["SPA_SOURCE_PORT"] = strconv.Itoa(o.SourcePort)
	}
	if o.FWTimeout != 0 {
		vals["FW_TIMEOUT"] = strconv.Itoa(o.FWTimeout)
	}
	switch {
	case o.AllowIP != "":
		vals["ALLOW_IP"] = o.AllowIP
	case o.SourceIP:
		vals["ALLOW_IP"] = "source"
	case o.ResolveIP:
		vals["ALLOW_IP"] = "resolve"
	}
	if o.TimeOffset != 0 {
		vals["TIME_OFFSET"] = strconv.Itoa(int(o.TimeOffset / time.Second))
	}
	if o.Mode != 0 {
		vals["ENCRYPTION_MODE"] = o.Mode.String()
	}
	set := func(name, v string) {
		if v != "" {
			vals[name] = v
		}
	}
	yesNo := func(name string, b bool) {
		if b {
			vals[name] = "Y"
		}
	}
	yesNo("USE_GPG", o.UseGPG)
	yesNo("USE_GPG_AGENT", o.GPGAgent)
	set("GPG_RECIPIENT", o.GPGRecipient)
	set("GPG_SIGNER", o.GPGSigner)
	set("GPG_HOMEDIR", o.GPGHomeDir)
	set("GPG_EXE", o.GPGExe)
	set("GPG_SIGNING_PW", o.GPGSigningPW)
	set("GPG_SIGNING_PW_BASE64", o.GPGSigningPWBase64)
	yesNo("GPG_NO_SIGNING_PW", o.GPGNoSigningPW)
	set("SPOOF_USER", o.User)
	set("SPOOF_SOURCE_IP", o.SpoofSource)
	set("ACCESS", o.Access)
	set("SPA_SERVER", o.Server)
	yesNo("RAND_PORT", o.RandPort)
	set("KEY_FILE", o.KeyFile)
	set("HMAC_KEY_FILE", o.HMACKeyFile)
	set("KEY", o.Key)
	set("KEY_BASE64", o.KeyBase64)
	if o.HMAC != 0 {
		vals["HMAC_DIGEST_TYPE"] = o.HMAC.String()
	}
	set("HMAC_KEY", o.HMACKey)
	set("HMAC_KEY_BASE64", o.HMACKeyBase64)
	yesNo("USE_HMAC", o.UseHMAC)
	set("NAT_ACCESS", o.NATAccess)
	yesNo("NAT_LOCAL", o.NATLocal)
	if o.NATPort != 0 {
		vals["NAT_PORT"] = strconv.Itoa(o.NATPort)
	}
	yesNo("NAT_RAND_PORT", o.NATRandPort)
	set("HTTP_USER_AGENT", o.UserAgent)
	set("RESOLVE_URL", o.ResolveURL)
	set("HTTP_PROXY", o.HTTPProxy)
	yesNo("USE_WGET_USER_AGENT", o.UseWgetUA)
	yesNo("RESOLVE_HTTP_ONLY", o.ResolveHTTPOnly)
	set("WGET_CMD", o.WgetCmd)
	switch {
	case o.Verbose == 1:
		vals["VERBOSE"] = "Y"
	case o.Verbose > 1:
		vals["VERBOSE"] = strconv.Itoa(min(o.Verbose, 4))
	}
	yesNo("NO_SAVE_ARGS", o.NoSaveArgs)
	s := &rcfile.Stanza{Name: name}
	for _, n := range rcOrder {
		if v, ok := vals[n]; ok {
			s.Vars = append(s.Vars, rcfile.Var{Name: n, Value: v})
		}
	}
	return s
}

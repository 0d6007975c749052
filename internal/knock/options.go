package knock

import (
	"fmt"
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
	Server     string // -D, SPA_SERVER
	Port       int    // -p, SPA_SERVER_PORT; 0 = 62201
	Proto      string // -P, SPA_SERVER_PROTO: udp (default), tcp, http, icmp, udpraw
	SourcePort int    // -S, SPA_SOURCE_PORT
	RandPort   bool   // -r, RAND_PORT
	Family     int    // 4 or 6 (-4/-6): resolve the server in this family only

	Access     string // -A, ACCESS: "tcp/22[,udp/53...]"; "" sends NoPortsAccess
	AllowIP    string // -a, ALLOW_IP (IPv4 or IPv6)
	SourceIP   bool   // -s, ALLOW_IP source: allow-IP 0.0.0.0
	ResolveIP  bool   // -R, ALLOW_IP resolve
	ResolveURL string // --resolve-url, RESOLVE_URL

	Key, KeyBase64         string // --key-rijndael / --key-base64-rijndael, KEY / KEY_BASE64
	KeyFile                string // -G, KEY_FILE
	HMACKey, HMACKeyBase64 string // --key-hmac / --key-base64-hmac
	HMACKeyFile            string // --get-hmac-key, HMAC_KEY_FILE
	UseHMAC                bool   // --use-hmac, USE_HMAC

	Digest spa.DigestType // -m, DIGEST_TYPE
	HMAC   spa.DigestType // --hmac-digest-type, HMAC_DIGEST_TYPE
	Mode   spa.Mode       // -M, ENCRYPTION_MODE

	FWTimeout   int    // -f, FW_TIMEOUT
	NATAccess   string // -N host[:port], NAT_ACCESS
	NATLocal    bool   // --nat-local, NAT_LOCAL
	NATPort     int    // --nat-port, NAT_PORT
	NATRandPort bool   // --nat-rand-port, NAT_RAND_PORT
	ServerCmd   string // -C (never saved to the rc file, as fwknop)

	User       string        // -U, SPOOF_USER
	TimeOffset time.Duration // --time-offset-plus/minus, TIME_OFFSET

	HTTPProxy string // -H, HTTP_PROXY
	UserAgent string // -u, HTTP_USER_AGENT
	ICMPType  int    // --icmp-type (default 0, echo reply)
	ICMPCode  int    // --icmp-code
}

// Variable names of ~/.fwknoprc, in the order fwknop writes them.
var rcOrder = []string{"DIGEST_TYPE", "SPA_SERVER_PROTO", "SPA_SERVER_PORT", "SPA_SOURCE_PORT",
	"FW_TIMEOUT", "ALLOW_IP", "TIME_OFFSET", "ENCRYPTION_MODE", "SPOOF_USER", "ACCESS",
	"SPA_SERVER", "RAND_PORT", "KEY_FILE", "HMAC_KEY_FILE", "KEY", "KEY_BASE64",
	"HMAC_DIGEST_TYPE", "HMAC_KEY", "HMAC_KEY_BASE64", "USE_HMAC", "NAT_ACCESS", "NAT_LOCAL",
	"NAT_PORT", "NAT_RAND_PORT", "HTTP_USER_AGENT", "RESOLVE_URL", "HTTP_PROXY"}

// Unsupported rc variables (GnuPG and friends): Apply refuses them if they are switched on.
var rcUnsupported = map[string]string{
	"USE_GPG": "GnuPG mode", "USE_GPG_AGENT": "GnuPG mode", "GPG_RECIPIENT": "GnuPG mode",
	"GPG_SIGNER": "GnuPG mode", "GPG_HOMEDIR": "GnuPG mode", "GPG_EXE": "GnuPG mode",
	"GPG_SIGNING_PW": "GnuPG mode", "GPG_SIGNING_PW_BASE64": "GnuPG mode", "GPG_NO_SIGNING_PW": "GnuPG mode",
	"SPOOF_SOURCE_IP": "source spoofing",
}

// Ignored rc variables: accepted for compatibility, no effect in sesame.
var rcIgnored = map[string]bool{"VERBOSE": true, "NO_SAVE_ARGS": true, "USE_WGET_USER_AGENT": true,
	"WGET_CMD": true, "RESOLVE_HTTP_ONLY": true, "RESOLVE_IP_HTTP": true, "RESOLVE_IP_HTTPS": true,
	"SERVER_RESOLVE_IPV4": true}

// Apply sets o from an rc stanza (already merged over [default]). Unknown variables are
// returned as warnings; bad values and unsupported features are errors naming the variable.
func (o *Options) Apply(s *rcfile.Stanza) (warnings []string, err error) {
	for _, v := range s.Vars {
		if err := o.applyVar(v.Name, v.Value); err != nil {
			if err == errUnknownVar {
				warnings = append(warnings, fmt.Sprintf("ignoring unknown variable %s in stanza [%s]", v.Name, s.Name))
				continue
			}
			where := fmt.Sprintf("stanza [%s]", s.Name)
			if v.Line > 0 {
				where = fmt.Sprintf("line %d (stanza [%s])", v.Line, s.Name)
			}
			return warnings, fmt.Errorf("rc file %s: %s: %w", where, v.Name, err)
		}
	}
	return warnings, nil
}

var errUnknownVar = fmt.Errorf("unknown variable")

func yes(v string) bool {
	return strings.EqualFold(v, "y") || strings.EqualFold(v, "yes") || v == "1"
}

func (o *Options) applyVar(name, v string) error {
	var err error
	atoi := func(dst *int, max int) {
		n, e := strconv.Atoi(v)
		if e != nil || n < 0 || n > max {
			err = fmt.Errorf("%q is not a number in 0..%d", v, max)
			return
		}
		*dst = n
	}
	switch name {
	case "SPA_SERVER":
		o.Server = v
	case "SPA_SERVER_PORT":
		atoi(&o.Port, 65535)
	case "SPA_SERVER_PROTO":
		o.Proto = strings.ToLower(v)
	case "SPA_SOURCE_PORT":
		atoi(&o.SourcePort, 65535)
	case "RAND_PORT":
		o.RandPort = yes(v)
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
			o.AllowIP = v
		}
	case "RESOLVE_URL":
		o.ResolveURL = v
	case "KEY":
		o.Key, o.KeyBase64 = v, ""
	case "KEY_BASE64":
		o.KeyBase64, o.Key = v, ""
	case "KEY_FILE":
		o.KeyFile = v
	case "HMAC_KEY":
		o.HMACKey, o.HMACKeyBase64 = v, ""
	case "HMAC_KEY_BASE64":
		o.HMACKeyBase64, o.HMACKey = v, ""
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
	default:
		if what, ok := rcUnsupported[name]; ok {
			if strings.HasPrefix(name, "USE_") && !yes(v) {
				return nil
			}
			return fmt.Errorf("%w: %s is not supported by sesame; use Rijndael keys (KEY/KEY_BASE64)", spa.ErrUnsupported, what)
		}
		if rcIgnored[name] {
			return nil
		}
		return errUnknownVar
	}
	return err
}

// ParseMode parses -M / ENCRYPTION_MODE; GnuPG ("asymmetric") is refused as unsupported.
func ParseMode(v string) (spa.Mode, error) {
	m, err := spa.ParseMode(v)
	if err != nil {
		return 0, fmt.Errorf("encryption mode %q (want cbc, ctr, cfb, ofb, ecb or legacy): %w", v, err)
	}
	if m == spa.Asymmetric || m == spa.PCBC {
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
	case o.SourceIP:
		vals["ALLOW_IP"] = "source"
	case o.ResolveIP:
		vals["ALLOW_IP"] = "resolve"
	case o.AllowIP != "":
		vals["ALLOW_IP"] = o.AllowIP
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
	set("SPOOF_USER", o.User)
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
	s := &rcfile.Stanza{Name: name}
	for _, n := range rcOrder {
		if v, ok := vals[n]; ok {
			s.Vars = append(s.Vars, rcfile.Var{Name: n, Value: v})
		}
	}
	return s
}

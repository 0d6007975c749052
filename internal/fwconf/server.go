package fwconf

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// Server is the effective fwknopd.conf: typed fields for what sesame uses, with fwknopd's
// Debian defaults filled in, and Raw for every variable that was set.
type Server struct {
	File string // the file read ("" for ParseServer's text)

	PcapIntf         string // PCAP_INTF (-i), default eth0
	PcapFilter       string // PCAP_FILTER (-P), default "udp port 62201"
	PcapFile         string // PCAP_FILE (--pcap-file): a capture file to decide offline
	PcapAnyDirection bool   // ENABLE_PCAP_ANY_DIRECTION
	EnableUDPServer  bool   // ENABLE_UDP_SERVER (-U)
	UDPServPort      uint16 // UDPSERV_PORT, default 62201

	// SPA over HTTP and the accept-and-close TCP server (fwknop -P http / -P tcp).
	EnableSPAOverHTTP   bool   // ENABLE_SPA_OVER_HTTP
	AllowAnyUserAgent   bool   // ALLOW_ANY_USER_AGENT (fwknop 2.6.11; unknown to 2.6.10)
	EnableXForwardedFor bool   // ENABLE_X_FORWARDED_FOR
	EnableTCPServer     bool   // ENABLE_TCP_SERVER
	TCPServPort         uint16 // TCPSERV_PORT, default 62201

	EnableSPAPacketAging    bool          // ENABLE_SPA_PACKET_AGING, default Y
	MaxSPAPacketAge         time.Duration // MAX_SPA_PACKET_AGE, default 120 s (1..100000 s)
	EnableDigestPersistence bool          // ENABLE_DIGEST_PERSISTENCE, default Y
	DigestFile              string        // DIGEST_FILE (-d), default $FWKNOP_RUN_DIR/digest.cache

	RunDir       string // FWKNOP_RUN_DIR (-r), default /run/fwknop
	PIDFile      string // FWKNOP_PID_FILE (-p), default $FWKNOP_RUN_DIR/fwknopd.pid
	AccessFile   string // ACCESS_FILE (-a), default /etc/fwknop/access.conf
	AccessFolder string // ACCESS_FOLDER (--access-folder); when set it replaces AccessFile

	// DestinationRule (ENABLE_DESTINATION_RULE): access grants open the port only on the
	// address the knock was sent to.
	DestinationRule bool

	FlushAtInit    bool // FLUSH_IPT_AT_INIT, default N in sesame (fwknopd: Y)
	FlushAtExit    bool // FLUSH_IPT_AT_EXIT, default N in sesame (fwknopd: Y)
	ExitAtIntfDown bool // EXIT_AT_INTF_DOWN, default N in sesame (fwknopd: Y)

	// NAT (fwknopd's message types 2, 4, 5 and 6; see package server).
	EnableIPTForwarding bool       // ENABLE_IPT_FORWARDING: accept NAT requests (types 2, 4)
	EnableIPTLocalNAT   bool       // ENABLE_IPT_LOCAL_NAT: accept local NAT requests (types 5, 6)
	EnableIPTSNAT       bool       // ENABLE_IPT_SNAT: rewrite the source of forwarded grants
	SNATTranslateIP     netip.Addr // SNAT_TRANSLATE_IP: the SNAT address (zero: MASQUERADE)
	EnableNATDNS        bool       // ENABLE_NAT_DNS, default Y: resolve host names in NAT requests

	GuardPorts   []spa.ProtoPort    // SESAME_GUARD_PORTS
	HostChain    firewall.HostChain // SESAME_HOST_CHAIN; the zero value is none
	Table        string             // SESAME_TABLE: sesame's inet table (default "sesame")
	TableOwner   bool               // SESAME_TABLE_OWNER: own the table where the kernel can (default Y)
	ReplayMargin time.Duration      // SESAME_REPLAY_MARGIN, default 60 s

	// GnuPG defaults for access stanzas that do not set their own (LoadAccess fills them in).
	GPGHomeDir string // GPG_HOME_DIR, default /root/.gnupg
	GPGExe     string // GPG_EXE, default /usr/bin/gpg

	SudoExe string // SUDO_EXE, default /usr/bin/sudo: what ENABLE_CMD_SUDO_EXEC stanzas run commands through

	// MD5Listen (SESAME_MD5_LISTEN, "IP:PORT" or ":PORT") is where the server runs its
	// TCP-MD5 shield listener; MD5Upstream (SESAME_MD5_UPSTREAM, "HOST:PORT") is where
	// signed connections are relayed. Both are set or both are empty.
	MD5Listen   string
	MD5Upstream string

	// MetricsListen (SESAME_METRICS_LISTEN, "IP:PORT") is where Prometheus metrics are served
	// ("" = not served; keep it on loopback or a management network).
	MetricsListen string

	// The fleet (package fleet). FleetRedis is SESAME_FLEET_REDIS, the Redis URL: "" means no
	// fleet, and the other fields are then unused. Zero values stand for package fleet's
	// defaults.
	FleetRedis        string        // redis://, rediss://, redis+sentinel:// or rediss+sentinel://
	FleetGroup        string        // SESAME_FLEET_GROUP ("" = "default")
	FleetKeyFile      string        // SESAME_FLEET_KEY_FILE, required with FleetRedis
	FleetOnError      string        // SESAME_FLEET_ON_ERROR: "closed" or "local" ("" = closed)
	FleetTimeout      time.Duration // SESAME_FLEET_TIMEOUT (milliseconds in the file; 0 = 200 ms)
	FleetMaxSkew      time.Duration // SESAME_FLEET_MAX_SKEW (milliseconds in the file; 0 = 2 s)
	FleetWaitReplicas int           // SESAME_FLEET_WAIT_REPLICAS (0 = no WAIT)
	FleetName         string        // SESAME_FLEET_NAME ("" = random per start)
	FleetTLSCA        string        // SESAME_FLEET_TLS_CA: PEM CA file for rediss URLs
	FleetTLSCert      string        // SESAME_FLEET_TLS_CERT: PEM client certificate
	FleetTLSKey       string        // SESAME_FLEET_TLS_KEY: its private key (mode 600)

	// Raw holds every variable set in the file or by an override, after $VAR expansion.
	Raw map[string]string
	// Where records where each Raw value came from.
	Where map[string]Origin
}

// Origin is where a setting came from: a file and line, or an override (Line 0).
type Origin struct {
	File string
	Line int
}

// ReplayKeep is how long the replay cache keeps a digest for this configuration (see the
// function ReplayKeep).
func (s *Server) ReplayKeep() time.Duration {
	return ReplayKeep(s.EnableSPAPacketAging, s.MaxSPAPacketAge, s.ReplayMargin)
}

// ReplayKeep is how long the replay cache must keep a digest: with packet aging on,
// 2*maxAge + margin (a packet's timestamp may be up to maxAge behind or ahead of the clock, and
// SESAME_REPLAY_MARGIN covers clock steps), so a replay is refused by the cache for as long as
// it could pass the age check; with aging off, 0 (forever). maxAge is MAX_SPA_PACKET_AGE.
// This is the one implementation of the rule; the server calls it with its policy.
func ReplayKeep(aging bool, maxAge, margin time.Duration) time.Duration {
	if !aging {
		return 0
	}
	return 2*maxAge + margin
}

// Options tune the loaders. The zero value is fwknopd's behaviour.
type Options struct {
	// Overrides are fwknopd.conf variables set on the command line (ACCESS_FOLDER for
	// --access-folder, PCAP_INTF for -i, ...). They win over the file, as in fwknopd.
	Overrides map[string]string
	// Location is the time zone of ACCESS_EXPIRE dates (nil: time.Local, as fwknopd's
	// mktime).
	Location *time.Location
	// Read, if not nil, gets the path of every file LoadServer and the access loaders read
	// appended (for CheckCommandFiles).
	Read *[]string

	fs  fileSystem // nil: the real file system
	cwd string     // "": os.Getwd (what fwknopd resolves relative includes against)
}

func (o *Options) fsys() fileSystem {
	if o.fs == nil {
		return osFS{}
	}
	return o.fs
}

// LoadServer reads fwknopd.conf at path, applies opts.Overrides and fwknopd's defaults, and
// checks every value. Warnings (unknown variables, loose permissions, settings without effect)
// are returned, not printed.
func LoadServer(path string, opts Options) (*Server, []Warning, error) {
	data, permWarns, err := opts.fsys().ReadFile(path)
	if err == nil && opts.Read != nil {
		*opts.Read = append(*opts.Read, path)
	}
	if err != nil {
		return nil, nil, &Error{File: path, Msg: fmt.Sprintf("cannot read: %v", err), Err: err}
	}
	var warns []Warning
	for _, w := range permWarns {
		warns = append(warns, Warning{File: path, Msg: w})
	}
	s, w, err := parseServer(path, data, opts)
	return s, append(warns, w...), err
}

// ParseServer parses fwknopd.conf text; name is used in messages.
func ParseServer(name string, data []byte, opts Options) (*Server, []Warning, error) {
	return parseServer(name, data, opts)
}

func parseServer(name string, data []byte, opts Options) (*Server, []Warning, error) {
	s := &Server{File: name, Raw: map[string]string{}, Where: map[string]Origin{}}
	var warns []Warning
	var errs errList
	errs.add(lines(data, func(e entry) error {
		p := pos{name, e.Line}
		if e.Syntax != "" {
			// fwknopd reports such a line in fwknopd.conf and goes on (access.conf: it stops).
			warns = append(warns, p.warn(e.Name, "%s; line ignored (write 'NAME value')", e.Syntax))
			return nil
		}
		v, known := Variables[e.Name]
		if !known || v.Scope&InServer == 0 {
			if known {
				warns = append(warns, p.warn(e.Name, "belongs in access.conf; ignored"))
			} else {
				warns = append(warns, p.warn(e.Name, "unknown variable; ignored"))
			}
			return nil
		}
		val, ref, ok := expand(e.Value, s.Raw)
		if !ok {
			// fwknopd 2.6.10 ignores the line ("Invalid embedded variable") and goes on.
			fix := "set " + ref + " on an earlier line or write the value out"
			if ref == "" {
				fix = "write $NAME with NAME set on an earlier line, or the value without '$'"
			}
			warns = append(warns, p.warn(e.Name, "$%s is not set earlier in the file; line ignored, as fwknopd does; %s", ref, fix))
			return nil
		}
		if o, dup := s.Where[e.Name]; dup {
			warns = append(warns, p.warn(e.Name, "also set on line %d; this later value wins", o.Line))
		}
		s.Raw[e.Name] = val
		s.Where[e.Name] = Origin{name, e.Line}
		return nil
	}))
	for _, k := range sortedKeys(opts.Overrides) {
		v, known := Variables[k]
		if !known || v.Scope&InServer == 0 {
			errs.add(&Error{File: "command line", Var: k, Msg: "unknown fwknopd.conf variable", Err: ErrValue})
			continue
		}
		s.Raw[k] = opts.Overrides[k]
		s.Where[k] = Origin{File: "command line"}
	}
	w, err := s.resolve()
	errs.add(err)
	return s, append(warns, w...), errs.err()
}

// expand applies fwknopd 2.6's one variable reference: a value starting with '$' and an
// upper-case letter or '_' begins with the name (letters A-Z and '_') of a variable set on an
// earlier line, which is replaced by that variable's value; the rest is kept ("$FWKNOP_RUN_DIR/x").
// A value that is just "$" or names a variable not set is invalid (ok false, ref the name);
// '$' followed by anything else is kept as written, as fwknopd keeps it.
func expand(val string, set map[string]string) (out, ref string, ok bool) {
	if val == "" || val[0] != '$' {
		return val, "", true
	}
	if len(val) > 1 && !(val[1] >= 'A' && val[1] <= 'Z' || val[1] == '_') {
		return val, "", true
	}
	i := 1
	for i < len(val) && (val[i] >= 'A' && val[i] <= 'Z' || val[i] == '_') {
		i++
	}
	ref = val[1:i]
	prev, found := set[ref]
	if !found {
		return "", ref, false
	}
	return prev + val[i:], ref, true
}

// value returns the effective value of a variable (set or default) and where it came from.
func (s *Server) value(name string) (string, pos) {
	if v, ok := s.Raw[name]; ok {
		return v, pos(s.Where[name])
	}
	return defaultOf(s, name), pos{File: s.File}
}

// defaultOf is fwknopd's default for a variable, with the run-dir derived paths.
func defaultOf(s *Server, name string) string {
	switch name {
	case "FWKNOP_PID_FILE":
		v, _ := s.value("FWKNOP_RUN_DIR")
		return strings.TrimSuffix(v, "/") + "/fwknopd.pid"
	case "DIGEST_FILE":
		v, _ := s.value("FWKNOP_RUN_DIR")
		return strings.TrimSuffix(v, "/") + "/digest.cache"
	}
	return Variables[name].Default
}

// resolve checks support for every set variable and fills the typed fields.
func (s *Server) resolve() ([]Warning, error) {
	var warns []Warning
	var errs []error
	for _, k := range sortedKeys(s.Raw) {
		if sw, ok := needs[k]; ok && Variables[k].Support != Supported {
			if on, _ := parseYN(str0(s, sw)); !on {
				// fwknopd ignores it while its switch is off, whatever it says.
				if !sameValue(s.Raw[k], Variables[k].Default) {
					warns = append(warns, pos(s.Where[k]).warn(k, "has no effect in sesame while %s is N (%s)", sw, Variables[k].Note))
				}
				continue
			}
		}
		w, err := checkSupport(pos(s.Where[k]), k, s.Raw[k], Variables[k])
		if err != nil {
			errs = append(errs, err)
		}
		if w != nil {
			warns = append(warns, *w)
		}
	}
	str := func(name string) string { v, _ := s.value(name); return v }
	yn := func(name string) bool {
		v, p := s.value(name)
		b, ok := parseYN(v)
		if !ok && v != "" {
			errs = append(errs, p.errorf(ErrValue, name, "use Y or N", "%q is not Y or N", v))
		}
		return b
	}
	num := func(name string, lo, hi int64) int64 {
		v, p := s.value(name)
		n, err := parseUint(v, lo, hi)
		if err != nil {
			errs = append(errs, p.errorf(ErrValue, name, "", "%v", err))
		}
		return n
	}
	s.PcapIntf = str("PCAP_INTF")
	s.PcapFilter = str("PCAP_FILTER")
	s.PcapFile = str("PCAP_FILE")
	s.PcapAnyDirection = yn("ENABLE_PCAP_ANY_DIRECTION")
	s.EnableUDPServer = yn("ENABLE_UDP_SERVER")
	s.UDPServPort = uint16(num("UDPSERV_PORT", 1, 65535))
	s.EnableSPAOverHTTP = yn("ENABLE_SPA_OVER_HTTP")
	s.AllowAnyUserAgent = yn("ALLOW_ANY_USER_AGENT")
	s.EnableXForwardedFor = yn("ENABLE_X_FORWARDED_FOR")
	s.DestinationRule = yn("ENABLE_DESTINATION_RULE")
	s.EnableTCPServer = yn("ENABLE_TCP_SERVER")
	s.TCPServPort = uint16(num("TCPSERV_PORT", 1, 65535))
	s.EnableSPAPacketAging = yn("ENABLE_SPA_PACKET_AGING")
	s.MaxSPAPacketAge = time.Duration(num("MAX_SPA_PACKET_AGE", 1, 100000)) * time.Second
	s.EnableDigestPersistence = yn("ENABLE_DIGEST_PERSISTENCE")
	s.RunDir = str("FWKNOP_RUN_DIR")
	s.DigestFile = str("DIGEST_FILE")
	s.PIDFile = str("FWKNOP_PID_FILE")
	s.AccessFile = str("ACCESS_FILE")
	s.AccessFolder = str("ACCESS_FOLDER")
	s.FlushAtInit = yn("FLUSH_IPT_AT_INIT")
	s.FlushAtExit = yn("FLUSH_IPT_AT_EXIT")
	s.ExitAtIntfDown = yn("EXIT_AT_INTF_DOWN")
	s.TableOwner = yn("SESAME_TABLE_OWNER")
	s.EnableIPTForwarding = yn("ENABLE_IPT_FORWARDING")
	s.EnableIPTLocalNAT = yn("ENABLE_IPT_LOCAL_NAT")
	s.EnableIPTSNAT = yn("ENABLE_IPT_SNAT")
	s.EnableNATDNS = yn("ENABLE_NAT_DNS")
	if v, p := s.value("SNAT_TRANSLATE_IP"); v != "" && !s.EnableIPTSNAT {
		// fwknopd reads it only for SNAT rules (Debian ships "__CHANGEME__").
		warns = append(warns, p.warn("SNAT_TRANSLATE_IP", "has no effect while ENABLE_IPT_SNAT is N"))
	} else if v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" || a.IsUnspecified() {
			errs = append(errs, p.errorf(ErrValue, "SNAT_TRANSLATE_IP", "write one IP address", "%q is not an IP address", v))
		}
		s.SNATTranslateIP = a.Unmap()
	}
	if v, p := s.value("SESAME_TABLE"); v != "" {
		if err := firewall.ValidTableName(v); err != nil {
			errs = append(errs, p.errorf(ErrValue, "SESAME_TABLE", "use letters, digits, '_', '-' or '.'", "%v", err))
		}
		s.Table = v
	}
	if v, p := s.value("SESAME_GUARD_PORTS"); v != "" {
		ports, err := ParsePorts(v)
		if err != nil {
			errs = append(errs, p.errorf(ErrValue, "SESAME_GUARD_PORTS", `write e.g. "tcp/22, tcp/5432"`, "%v", err))
		}
		s.GuardPorts = ports
	}
	{
		v, p := s.value("SESAME_HOST_CHAIN")
		hc, err := firewall.ParseHostChain(v)
		if err != nil {
			errs = append(errs, p.errorf(ErrValue, "SESAME_HOST_CHAIN", "", "%v", err))
		}
		s.HostChain = hc
	}
	s.ReplayMargin = time.Duration(num("SESAME_REPLAY_MARGIN", 0, 86400)) * time.Second
	s.MD5Listen, s.MD5Upstream = str("SESAME_MD5_LISTEN"), str("SESAME_MD5_UPSTREAM")
	s.MetricsListen = str("SESAME_METRICS_LISTEN")
	s.GPGHomeDir, s.GPGExe = str("GPG_HOME_DIR"), str("GPG_EXE")
	s.SudoExe = str("SUDO_EXE")
	if err := s.checkMD5(); err != nil {
		errs = append(errs, err)
	}
	fw, ferrs := s.resolveFleet()
	warns = append(warns, fw...)
	errs = append(errs, ferrs...)
	for _, name := range []string{"PCAP_INTF", "FWKNOP_RUN_DIR", "DIGEST_FILE", "FWKNOP_PID_FILE", "ACCESS_FILE"} {
		if v, p := s.value(name); strings.TrimSpace(v) == "" {
			errs = append(errs, p.errorf(ErrValue, name, "", "must not be empty"))
		}
	}
	if v, p := s.value("FWKNOP_RUN_DIR"); strings.TrimSpace(v) != "" && !filepath.IsAbs(v) {
		// fwknopd: "Path '...' is not absolute." (the only path it requires absolute).
		errs = append(errs, p.errorf(ErrValue, "FWKNOP_RUN_DIR", "write an absolute path, e.g. /run/fwknop",
			"%q is not an absolute path", v))
	}
	var all errList // one line per error: every mistake of the file in one run
	for _, e := range errs {
		all.add(e)
	}
	return warns, all.err()
}

// str0 is the effective value of a variable (set or default).
func str0(s *Server, name string) string { v, _ := s.value(name); return v }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range maps.Keys(m) {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// String renders the typed fields (not Raw/Where), for logs and tests.
func (s Server) String() string {
	return fmt.Sprintf("%+v", struct {
		File                                     string
		PcapIntf, PcapFilter                     string
		PcapAnyDirection, EnableUDPServer        bool
		UDPServPort                              uint16
		EnableSPAOverHTTP, AllowAnyUserAgent     bool
		EnableXForwardedFor, EnableTCPServer     bool
		TCPServPort                              uint16
		EnableSPAPacketAging                     bool
		MaxSPAPacketAge                          time.Duration
		EnableDigestPersistence                  bool
		DigestFile, RunDir, PIDFile, AccessFile  string
		AccessFolder                             string
		FlushAtInit, FlushAtExit, ExitAtIntfDown bool
		GuardPorts                               []spa.ProtoPort
		HostChain, Table                         string
		TableOwner                               bool
		ReplayMargin                             time.Duration
		MD5Listen, MD5Upstream                   string
		FleetRedis, FleetGroup, FleetKeyFile     string
		FleetOnError                             string
		FleetTimeout, FleetMaxSkew               time.Duration
		FleetWaitReplicas                        int
		FleetName                                string
		FleetTLSCA, FleetTLSCert, FleetTLSKey    string
		EnableIPTForwarding, EnableIPTLocalNAT   bool
		EnableIPTSNAT                            bool
		SNATTranslateIP                          netip.Addr
		EnableNATDNS                             bool
		DestinationRule                          bool
	}{s.File, s.PcapIntf, s.PcapFilter, s.PcapAnyDirection, s.EnableUDPServer, s.UDPServPort,
		s.EnableSPAOverHTTP, s.AllowAnyUserAgent, s.EnableXForwardedFor, s.EnableTCPServer, s.TCPServPort,
		s.EnableSPAPacketAging, s.MaxSPAPacketAge, s.EnableDigestPersistence,
		s.DigestFile, s.RunDir, s.PIDFile, s.AccessFile, s.AccessFolder,
		s.FlushAtInit, s.FlushAtExit, s.ExitAtIntfDown, s.GuardPorts, s.HostChain.String(), s.Table, s.TableOwner,
		s.ReplayMargin, s.MD5Listen, s.MD5Upstream,
		RedactURL(s.FleetRedis), s.FleetGroup, s.FleetKeyFile, s.FleetOnError, s.FleetTimeout, s.FleetMaxSkew,
		s.FleetWaitReplicas, s.FleetName, s.FleetTLSCA, s.FleetTLSCert, s.FleetTLSKey,
		s.EnableIPTForwarding, s.EnableIPTLocalNAT, s.EnableIPTSNAT, s.SNATTranslateIP, s.EnableNATDNS, s.DestinationRule})
}

package fwconf

import (
	"net/netip"
	"slices"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

// Stanza is one access.conf SOURCE stanza. The fwconf owner may add fields; these are the contract.
type Stanza struct {
	File string // where the stanza starts, for log messages
	Line int
	Num  int // 1-based stanza number in load order, as fwknopd logs "(stanza #N)"

	SourceAny   bool
	Source      []netip.Prefix
	Destination []netip.Prefix // empty: any

	Keys spa.Keys

	OpenPorts     []spa.ProtoPort // empty: any
	RestrictPorts []spa.ProtoPort

	FWAccessTimeout time.Duration // FW_ACCESS_TIMEOUT, default DefaultFWAccessTimeout
	MaxFWTimeout    time.Duration // MAX_FW_TIMEOUT, default DefaultMaxFWTimeout

	RequireUsername       string    // "" = any
	RequireSourceAddress  bool      // refuse allow-IP 0.0.0.0
	RequireSourceMatch    bool      // SESAME_REQUIRE_SOURCE_MATCH: allow-IP must equal the packet source
	RequireSourceMatchSet bool      // SESAME_REQUIRE_SOURCE_MATCH is written in the stanza
	MD5                   bool      // SESAME_MD5: grants open only the TCP-MD5 listener, with a per-user key
	AccessExpire          time.Time // zero: never (see Expired)

	// NAT (fwknopd's FORCE_NAT, FORCE_SNAT, FORCE_MASQUERADE, DISABLE_DNAT, FORWARD_ALL; see
	// package server for how they shape a grant). Server.CheckNAT refuses them without the
	// fwknopd.conf switch they need.
	ForceNAT        netip.AddrPort // FORCE_NAT "<ip> <port>": the NAT target of every request (zero: unset)
	ForceSNAT       netip.Addr     // FORCE_SNAT "<ip>": SNAT forwarded grants to it (zero: unset)
	ForceMasquerade bool           // FORCE_MASQUERADE: MASQUERADE forwarded grants
	DisableDNAT     bool           // DISABLE_DNAT: forward without DNAT
	ForwardAll      bool           // FORWARD_ALL: forward everything from the client

	// GPG is the stanza's GnuPG mode (GPG_* variables); a stanza may have Rijndael keys,
	// GnuPG, or both. Keys.HMACKey is the HMAC key of both modes.
	GPG GPG

	// Cmd is the stanza's command execution (ENABLE_CMD_EXEC, CMD_EXEC_*, *SUDO*) and command
	// cycle (CMD_CYCLE_*) settings.
	Cmd Command

	// SourceText is the SOURCE value as written (fwknopd logs it).
	SourceText string
	// Raw holds every variable set in the stanza (keys included), as written; %include_keys
	// values appear here too.
	Raw map[string]string
	// Where records where each Raw value came from.
	Where map[string]Origin
}

// Defaults of the stanza timeouts (fwknopd's): what finish fills in for an unset
// FW_ACCESS_TIMEOUT or MAX_FW_TIMEOUT, and what Timeout uses for a zero field.
const (
	DefaultFWAccessTimeout = 30 * time.Second
	DefaultMaxFWTimeout    = 300 * time.Second
)

// SourceMustMatch reports whether a packet's allow-IP must equal its source address: with
// SESAME_REQUIRE_SOURCE_MATCH Y, and for SESAME_MD5 stanzas unless the stanza says
// SESAME_REQUIRE_SOURCE_MATCH N (an authorised user must not fill the MD5 listener's key table
// with other addresses).
func (s *Stanza) SourceMustMatch() bool {
	return s.RequireSourceMatch || (s.MD5 && !s.RequireSourceMatchSet)
}

// Expired reports whether the stanza's ACCESS_EXPIRE(_EPOCH) has passed at now, in whole
// seconds as fwknopd compares them (time(NULL) > expire): a stanza expiring at T still
// accepts packets until T+1 s. fwknopd, and sesame's server, skip expired stanzas.
func (s *Stanza) Expired(now time.Time) bool {
	return !s.AccessExpire.IsZero() && now.Unix() > s.AccessExpire.Unix()
}

// Matches reports whether the stanza applies to a packet from src to dst: SOURCE is ANY or a
// prefix holds src, and DESTINATION is unset or a prefix holds dst. IPv4-mapped addresses
// match as IPv4. An invalid dst (UDP-server mode, where the destination is not known) is
// 0.0.0.0, as fwknopd compares it: it matches only a DESTINATION that holds 0.0.0.0.
func (s *Stanza) Matches(src, dst netip.Addr) bool {
	return s.MatchesSource(src) && s.MatchesDestination(dst)
}

// MatchesSource reports whether SOURCE is ANY or a prefix holds src (the first half of
// Matches).
func (s *Stanza) MatchesSource(src netip.Addr) bool {
	return s.SourceAny || matchAny(s.Source, src)
}

// MatchesDestination reports whether DESTINATION is unset or a prefix holds dst (the second
// half of Matches; an invalid dst is 0.0.0.0).
func (s *Stanza) MatchesDestination(dst netip.Addr) bool {
	if len(s.Destination) == 0 {
		return true
	}
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
	}
	return matchAny(s.Destination, dst)
}

// PortVerdict is what CheckPorts decides about a requested port list.
type PortVerdict uint8

// Port verdicts.
const (
	PortsAllowed   PortVerdict = iota // every requested port may be opened
	PortRestricted                    // a requested port is in RESTRICT_PORTS
	PortNotOpen                       // OPEN_PORTS is set and a requested port is not in it
)

// CheckPorts applies RESTRICT_PORTS and OPEN_PORTS to a request as fwknopd does, pair by pair
// in request order: a pair in RESTRICT_PORTS denies; with OPEN_PORTS set, a pair not in it
// denies. It returns the verdict and, when denied, the first pair that denied. Protocols
// compare as written (ParsePorts and spa.ParseAccess both give lower case).
func (s *Stanza) CheckPorts(req []spa.ProtoPort) (PortVerdict, spa.ProtoPort) {
	for _, p := range req {
		if slices.Contains(s.RestrictPorts, p) {
			return PortRestricted, p
		}
		if len(s.OpenPorts) > 0 && !slices.Contains(s.OpenPorts, p) {
			return PortNotOpen, p
		}
	}
	return PortsAllowed, spa.ProtoPort{}
}

// Timeout is how long a grant of this stanza lasts: the client's timeout (seconds, 0 for
// none) capped at MAX_FW_TIMEOUT, else FW_ACCESS_TIMEOUT; a zero field counts as its default.
func (s *Stanza) Timeout(client uint32) time.Duration {
	if client > 0 {
		limit := s.MaxFWTimeout
		if limit <= 0 {
			limit = DefaultMaxFWTimeout
		}
		return min(time.Duration(client)*time.Second, limit)
	}
	if s.FWAccessTimeout > 0 {
		return s.FWAccessTimeout
	}
	return DefaultFWAccessTimeout
}

func matchAny(prefixes []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Command is what a stanza says about running commands, as fwknopd 2.6.10 reads it.
type Command struct {
	Exec       bool   // ENABLE_CMD_EXEC: command messages (type 0) run their command
	User       string // CMD_EXEC_USER: run commands as this user ("" or root: the daemon's)
	Group      string // CMD_EXEC_GROUP: with this group ("": the user's primary group)
	Sudo       bool   // ENABLE_CMD_SUDO_EXEC: run commands through SUDO_EXE
	SudoUser   string // CMD_SUDO_EXEC_USER: sudo -u ("" or root: none)
	SudoGroup  string // CMD_SUDO_EXEC_GROUP: sudo -g ("" or root: none)
	CycleOpen  string // CMD_CYCLE_OPEN: run instead of a firewall grant ("": no cycle)
	CycleClose string // CMD_CYCLE_CLOSE: run CycleTimer later; "" when CMD_CYCLE_CLOSE is NONE
	CycleTimer time.Duration
}

// MaxCycleCommand is the longest CMD_CYCLE_OPEN or CMD_CYCLE_CLOSE fwknopd accepts, in bytes
// (its 256-byte buffer, with the terminating NUL).
const MaxCycleCommand = 255

// RunsCommands reports whether the stanza makes sesame run commands: command messages
// (ENABLE_CMD_EXEC Y) or a command cycle.
func (s *Stanza) RunsCommands() bool { return s.Cmd.Exec || s.Cmd.CycleOpen != "" }

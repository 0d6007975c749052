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

	FWAccessTimeout time.Duration // FW_ACCESS_TIMEOUT, default 30s
	MaxFWTimeout    time.Duration // MAX_FW_TIMEOUT, default 300s

	RequireUsername      string // "" = any
	RequireSourceAddress bool   // refuse allow-IP 0.0.0.0
	RequireSourceMatch   bool   // SESAME_REQUIRE_SOURCE_MATCH: allow-IP must equal the packet source
	MD5                  bool   // SESAME_MD5: grants also install a TCP-MD5 key on the MD5 listener
	AccessExpire         time.Time
	EnableCmdExec        bool

	// SourceText is the SOURCE value as written (fwknopd logs it).
	SourceText string
	// Raw holds every variable set in the stanza (keys included), as written; %include_keys
	// values appear here too.
	Raw map[string]string
	// Where records where each Raw value came from.
	Where map[string]Origin
}

// Expired reports whether the stanza's ACCESS_EXPIRE(_EPOCH) has passed at now (fwknopd skips
// expired stanzas).
func (s *Stanza) Expired(now time.Time) bool {
	return !s.AccessExpire.IsZero() && now.After(s.AccessExpire)
}

// MatchSource reports whether a packet from src matches SOURCE.
func (s *Stanza) MatchSource(src netip.Addr) bool {
	return s.SourceAny || matchAny(s.Source, src)
}

// MatchDestination reports whether a packet to dst matches DESTINATION (unset: any).
func (s *Stanza) MatchDestination(dst netip.Addr) bool {
	return len(s.Destination) == 0 || matchAny(s.Destination, dst)
}

// PortsAllowed applies OPEN_PORTS and RESTRICT_PORTS to a request as fwknopd does: any
// requested pair in RESTRICT_PORTS denies; with OPEN_PORTS set, every requested pair must be
// in it.
func (s *Stanza) PortsAllowed(req []spa.ProtoPort) bool {
	for _, p := range req {
		if slices.Contains(s.RestrictPorts, p) {
			return false
		}
		if len(s.OpenPorts) > 0 && !slices.Contains(s.OpenPorts, p) {
			return false
		}
	}
	return true
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

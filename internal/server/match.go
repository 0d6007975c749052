package server

import (
	"net/netip"

	"github.com/sesame-spa/sesame/internal/fwconf"
)

// matches reports whether stanza st applies to a packet from src to dst: SOURCE (ANY or a
// prefix containing src) and, if the stanza sets DESTINATION, a prefix containing dst. In
// UDP-server mode dst is unspecified, so a DESTINATION stanza matches only if a prefix contains
// the unspecified address (0.0.0.0/0), as in fwknopd.
func matches(st *fwconf.Stanza, src, dst netip.Addr) bool {
	if !st.SourceAny && !containsAny(st.Source, src) {
		return false
	}
	if len(st.Destination) > 0 {
		if !dst.IsValid() {
			dst = netip.IPv4Unspecified()
		}
		return containsAny(st.Destination, dst)
	}
	return true
}

func containsAny(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

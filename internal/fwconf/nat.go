package fwconf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseForceNAT parses FORCE_NAT's "<ip> <port>" (fwknopd's format: an address, blanks, a port
// 1..65535). sesame also takes an IPv6 address.
func parseForceNAT(v string) (netip.AddrPort, error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return netip.AddrPort{}, fmt.Errorf("%q is not \"<ip> <port>\"", v)
	}
	a, err := netip.ParseAddr(f[0])
	if err != nil || a.Zone() != "" || a.IsUnspecified() {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address", f[0])
	}
	n, err := strconv.ParseUint(f[1], 10, 16)
	if err != nil || n == 0 || strings.TrimLeft(f[1], "0123456789") != "" {
		return netip.AddrPort{}, fmt.Errorf("port %q is not 1..65535", f[1])
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(n)), nil
}

// CheckNAT refuses stanzas whose NAT variables need a fwknopd.conf switch that is off, as
// fwknopd refuses to start: FORCE_NAT needs ENABLE_IPT_FORWARDING or ENABLE_IPT_LOCAL_NAT;
// FORCE_SNAT, FORCE_MASQUERADE, DISABLE_DNAT and FORWARD_ALL shape forwarded grants only and
// need ENABLE_IPT_FORWARDING. It returns one *Error (ErrValue) per offending variable, joined.
func (s *Server) CheckNAT(stanzas []*Stanza) error {
	var errs []error
	refuse := func(st *Stanza, name, need string) {
		o := st.Where[name]
		errs = append(errs, pos(o).errorf(ErrValue, name, "set "+need+" Y in fwknopd.conf or remove "+name,
			"stanza #%d: %s requires %s in fwknopd.conf", st.Num, name, need))
	}
	for _, st := range stanzas {
		if st.ForceNAT.IsValid() && !s.EnableIPTForwarding && !s.EnableIPTLocalNAT {
			refuse(st, "FORCE_NAT", "ENABLE_IPT_FORWARDING or ENABLE_IPT_LOCAL_NAT")
		}
		if s.EnableIPTForwarding {
			continue
		}
		for _, c := range []struct {
			name string
			set  bool
		}{{"FORCE_SNAT", st.ForceSNAT.IsValid()}, {"FORCE_MASQUERADE", st.ForceMasquerade},
			{"DISABLE_DNAT", st.DisableDNAT}, {"FORWARD_ALL", st.ForwardAll}} {
			if c.set {
				refuse(st, c.name, "ENABLE_IPT_FORWARDING")
			}
		}
	}
	return errors.Join(errs...)
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// NAT holds fwknopd.conf's NAT switches (fwknopd 2.6.10's iptables build).
type NAT struct {
	Forwarding bool       // ENABLE_IPT_FORWARDING: grant NAT requests (types 2, 4) as Forward grants
	LocalNAT   bool       // ENABLE_IPT_LOCAL_NAT: grant local NAT requests (types 5, 6) as LocalNAT grants
	SNAT       bool       // ENABLE_IPT_SNAT: rewrite the source of Forward grants
	SNATAddr   netip.Addr // SNAT_TRANSLATE_IP: the address to SNAT to with SNAT (zero: masquerade)
	DNS        bool       // ENABLE_NAT_DNS: resolve a host name in the NAT field (else refuse it)
}

// Enabled reports whether any NAT grant can be made (the firewall needs Config.NAT then).
func (n NAT) Enabled() bool { return n.Forwarding || n.LocalNAT }

// Resolver resolves the host name of a NAT request to an address of the wanted family (ip4 or
// ip6 as in net.Resolver.LookupNetIP). It must honour ctx's deadline.
type Resolver func(ctx context.Context, network, host string) (netip.Addr, error)

// natDNSTimeout bounds one NAT host name lookup: the packet's goroutine (the reader's with one
// worker) waits at most this long.
const natDNSTimeout = time.Second

// defaultResolver looks host up with net.DefaultResolver and returns its first address.
func defaultResolver(ctx context.Context, network, host string) (netip.Addr, error) {
	as, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(as) == 0 {
		return netip.Addr{}, errors.New("no address")
	}
	return as[0].Unmap(), nil
}

// natTarget is the parsed NAT access field: an address or a host name, and a port.
type natTarget struct {
	addr netip.Addr // valid when the field names an address
	host string     // the host name otherwise
	port uint16
}

// parseNATAccess parses the NAT access field "host,port" (fwknop protocol notes §2.8): one
// comma, a host that is an IP address or a host name (letters, digits, '-' and '.', at most
// 253 characters), a port 1..65535 in digits.
func parseNATAccess(s string) (natTarget, error) {
	host, port, ok := strings.Cut(s, ",")
	if !ok || strings.Contains(port, ",") {
		return natTarget{}, fmt.Errorf("NAT field %q is not host,port", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 || strings.TrimLeft(port, "0123456789") != "" {
		return natTarget{}, fmt.Errorf("NAT port %q is not 1..65535", port)
	}
	t := natTarget{port: uint16(n)}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" || a.IsUnspecified() {
			return natTarget{}, fmt.Errorf("NAT address %q is not usable", host)
		}
		t.addr = a.Unmap()
		return t, nil
	}
	if !validHostname(host) {
		return natTarget{}, fmt.Errorf("NAT host %q is neither an address nor a host name", host)
	}
	t.host = host
	return t, nil
}

// validHostname reports whether h is a DNS name: dot-separated labels of 1..63 letters, digits
// and '-', not starting or ending with '-', 253 characters at most.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// isNATType reports whether t is a NAT message type: forward (2, 4) or local (5, 6).
func isNATType(t spa.MessageType) (nat, local bool) {
	switch t {
	case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg:
		return true, false
	case spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		return true, true
	}
	return false, false
}

// natSwitch is checkPolicy's step 12 (fwknopd's check_nat_access_types): a forward NAT request
// needs ENABLE_IPT_FORWARDING, a local one ENABLE_IPT_LOCAL_NAT. ok is true for non-NAT types.
func natSwitch(n NAT, t spa.MessageType) (detail string, ok bool) {
	nat, local := isNATType(t)
	switch {
	case !nat:
		return "", true
	case local && !n.LocalNAT:
		return fmt.Sprintf("type %d: local NAT access requested, but ENABLE_IPT_LOCAL_NAT is not enabled", int(t)), false
	case !local && !n.Forwarding:
		return fmt.Sprintf("type %d: NAT access requested, but ENABLE_IPT_FORWARDING is not enabled", int(t)), false
	}
	return "", true
}

// natPolicy turns a granted access outcome into a NAT one when the message asks for NAT or the
// stanza has FORCE_NAT, as fwknopd 2.6.10's process_spa_request does:
//
//   - The grant is for the first requested protocol and port (the access port); the NAT target
//     is FORCE_NAT, else the message's NAT field (a host name is resolved only with
//     ENABLE_NAT_DNS, within natDNSTimeout).
//   - Types 2 and 4 (and types 1 and 3 under FORCE_NAT with forwarding on) are a Forward grant:
//     DNAT of the access port to the target (unless DISABLE_DNAT, where the client connects to
//     the target itself and the grant is for the target's port), with the source rewritten to
//     FORCE_SNAT, else masqueraded with FORCE_MASQUERADE, else (ENABLE_IPT_SNAT) rewritten to
//     SNAT_TRANSLATE_IP or masqueraded. FORWARD_ALL adds a grant that forwards everything from
//     the client (fwknopd also DNATs every port to the target; sesame only the access port).
//   - Types 5 and 6 (and types 1 and 3 under FORCE_NAT with local NAT only) are a LocalNAT grant
//     to the target port on this host: the packet's destination address dst (FORCE_NAT's
//     address for FORCE_NAT), not the message's host, so a knock cannot DNAT elsewhere.
//
// Refusals: NATRefused (no switch, a SESAME_MD5 stanza, no local address, a name that does
// not resolve) or BadAccess for a NAT field that does not parse; both end the packet's
// processing (terminal), as fwknopd stops there.
func (s *Server) natPolicy(ctx context.Context, p *compiled, st *stanza, m *spa.Message, dst netip.Addr, o outcome) outcome {
	nat, local := isNATType(m.Type)
	force := st.ForceNAT.IsValid()
	if !nat && !force {
		return o
	}
	refuse := func(r Reason, format string, args ...any) outcome {
		return outcome{reason: r, detail: fmt.Sprintf(format, args...), terminal: true}
	}
	if !p.NAT.Enabled() {
		return refuse(NATRefused, "FORCE_NAT, but neither ENABLE_IPT_FORWARDING nor ENABLE_IPT_LOCAL_NAT is enabled")
	}
	if !nat {
		local = !p.NAT.Forwarding
	}
	if st.MD5 {
		return refuse(NATRefused, "SESAME_MD5 stanza: NAT grants would bypass the TCP-MD5 listener")
	}
	var t natTarget
	if force {
		t = natTarget{addr: st.ForceNAT.Addr(), port: st.ForceNAT.Port()}
	} else {
		var err error
		if t, err = parseNATAccess(m.NATAccess); err != nil {
			return refuse(BadAccess, "%v", err)
		}
	}
	v4 := o.allow.Unmap().Is4()
	if local && !force {
		if !dst.IsValid() || dst.IsUnspecified() || dst.Is4() != v4 {
			return refuse(NATRefused, "local NAT: no local address of the client's family (packet destination %v)", dst)
		}
		t.addr, t.host = dst, ""
	}
	if t.host != "" {
		if !p.NAT.DNS {
			return refuse(NATRefused, "NAT host %q is not an address and ENABLE_NAT_DNS is N", t.host)
		}
		network := "ip4"
		if !v4 {
			network = "ip6"
		}
		rctx, cancel := context.WithTimeout(ctx, natDNSTimeout)
		a, err := s.resolve(rctx, network, t.host)
		cancel()
		if err != nil {
			return refuse(NATRefused, "NAT host %q does not resolve: %v", t.host, err)
		}
		t.addr = a.Unmap()
	}
	if t.addr.Is4() != v4 {
		return refuse(NATRefused, "NAT address %v is not of the client's family", t.addr)
	}
	o.nat = &natGrant{addr: t.addr, port: t.port, local: local}
	o.ports = o.ports[:1]
	if local {
		return o
	}
	n := o.nat
	n.disableDNAT, n.forwardAll = st.DisableDNAT, st.ForwardAll
	switch snat := st.ForceSNAT; {
	case snat.IsValid() && snat.Is4() == v4:
		n.snat = snat
	case st.ForceMasquerade:
		n.masquerade = true
	case p.NAT.SNAT && p.NAT.SNATAddr.IsValid() && p.NAT.SNATAddr.Is4() == v4:
		n.snat = p.NAT.SNATAddr
	case p.NAT.SNAT || snat.IsValid():
		n.masquerade = true // fwknopd's fallback; also for an address of the other family
	}
	return o
}

// natGrant is the NAT part of a granted outcome.
type natGrant struct {
	addr        netip.Addr
	port        uint16
	local       bool // LocalNAT, else Forward
	snat        netip.Addr
	masquerade  bool
	disableDNAT bool
	forwardAll  bool
}

// natGrants expands a NAT outcome into its firewall grants (see natPolicy).
func natGrants(o outcome, stanza int) []firewall.Grant {
	n := o.nat
	pp := o.ports[0]
	g := firewall.Grant{Src: o.allow, Proto: protoNum(pp.Proto), Port: pp.Port, Timeout: o.timeout, Stanza: stanza,
		NATAddr: n.addr, NATPort: n.port}
	if n.local {
		g.Kind = firewall.LocalNAT
		return []firewall.Grant{g}
	}
	g.Kind, g.SNAT, g.Masquerade, g.DisableDNAT = firewall.Forward, n.snat, n.masquerade, n.disableDNAT
	if n.disableDNAT {
		g.Port = n.port // the client connects to the target itself
	}
	gs := []firewall.Grant{g}
	if n.forwardAll {
		gs = append(gs, firewall.Grant{Src: o.allow, Timeout: o.timeout, Stanza: stanza, Kind: firewall.Forward,
			ForwardAll: true, SNAT: n.snat, Masquerade: n.masquerade})
	}
	return gs
}

// natString describes a NAT outcome for the grant log line ("" for access grants).
func natString(o outcome) string {
	n := o.nat
	if n == nil {
		return ""
	}
	kind := "forward"
	if n.local {
		kind = "local-nat"
	}
	s := kind + " " + netip.AddrPortFrom(n.addr, n.port).String()
	switch {
	case n.snat.IsValid():
		s += " snat " + n.snat.String()
	case n.masquerade:
		s += " masquerade"
	}
	if n.disableDNAT {
		s += " no-dnat"
	}
	if n.forwardAll {
		s += " forward-all"
	}
	return s
}

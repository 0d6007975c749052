package server

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// outcome is the verdict of one stanza on one decoded packet.
type outcome struct {
	reason   Reason
	detail   string          // extra log text (attr detail=)
	allow    netip.Addr      // address to open
	ports    []spa.ProtoPort // what to open
	timeout  time.Duration   // for how long
	terminal bool            // stop trying further stanzas (fwknopd: invalid allow-IP)
	command  string          // a command message's command (command.go)
	nat      *natGrant       // a NAT grant's target (natPolicy); nil for access grants
}

// checkPolicy runs fwknopd's post-decryption checks (§8 steps 7-15) of stanza st on message m
// received from src, at now. The rules it applies belong to their owners: the access message
// grammar to spa (ParseAllowIP, ParseAccess), OPEN_PORTS, RESTRICT_PORTS and the timeouts to
// fwconf.Stanza (CheckPorts, Timeout).
func checkPolicy(p *compiled, st *stanza, m *spa.Message, src netip.Addr, now time.Time) outcome {
	// Age: |now - timestamp| <= MAX_SPA_PACKET_AGE.
	if p.PacketAging {
		diff := now.Unix() - m.Timestamp
		limit := int64(p.maxAge() / time.Second)
		if diff > limit {
			return outcome{reason: TooOld, detail: fmt.Sprintf("timestamp %d is %d s old (max %d)", m.Timestamp, diff, limit)}
		}
		if -diff > limit {
			return outcome{reason: TooNew, detail: fmt.Sprintf("timestamp %d is %d s ahead (max %d)", m.Timestamp, -diff, limit)}
		}
	}

	// Allow-IP: the text before the first comma, for every message type.
	ipText, _, _ := strings.Cut(m.Message, ",")
	allow, err := spa.ParseAllowIP(ipText)
	if err != nil {
		return outcome{reason: BadAccess, detail: fmt.Sprintf("allow-IP %q", ipText), terminal: true}
	}
	if allow.IsUnspecified() {
		if st.RequireSourceAddress {
			return outcome{reason: SourceRequired}
		}
		allow = src
	} else if st.SourceMustMatch() && allow != src {
		return outcome{reason: SourceMismatch, detail: "allow=" + allow.String()}
	}

	if st.RequireUsername != "" && m.Username != st.RequireUsername {
		return outcome{reason: UsernameMismatch, detail: fmt.Sprintf("user %q", m.Username)}
	}

	// Message type: access messages, and NAT messages whose switch is on (natPolicy shapes
	// their grant).
	switch m.Type {
	case spa.AccessMsg, spa.ClientTimeoutAccessMsg:
	case spa.CommandMsg:
		return commandOutcome(st, m, allow)
	case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg, spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		if detail, ok := natSwitch(p.NAT, m.Type); !ok {
			return outcome{reason: NATRefused, detail: detail}
		}
	default:
		return outcome{reason: BadPlaintext, detail: fmt.Sprintf("message type %d", int(m.Type))}
	}

	// Ports: "none/0" (no ports) means the stanza's OPEN_PORTS.
	acc, err := spa.ParseAccess(m.Message)
	if err != nil {
		return outcome{reason: BadAccess, detail: err.Error(), terminal: true}
	}
	ports := acc.Ports
	if len(ports) == 0 {
		if len(st.OpenPorts) == 0 {
			return outcome{reason: NoPorts}
		}
		ports = st.OpenPorts
	}
	switch v, bad := st.CheckPorts(ports); v {
	case fwconf.PortRestricted:
		return outcome{reason: RestrictedPort, detail: bad.String()}
	case fwconf.PortNotOpen:
		return outcome{reason: PortNotAllowed, detail: bad.String()}
	}

	o := outcome{reason: Granted, allow: allow, ports: ports, timeout: st.Timeout(m.ClientTimeout)}
	if st.MD5 {
		if p.MD5Port == 0 {
			return outcome{reason: PortNotAllowed, detail: "SESAME_MD5 stanza but no TCP-MD5 listener (SESAME_MD5_LISTEN)"}
		}
		// Only the signed listener: the plain ports stay closed to this address.
		o.ports = []spa.ProtoPort{{Proto: "tcp", Port: p.MD5Port}}
	}
	return o
}

// protoNum is the IP protocol number of a spa protocol name, 0 for an unknown one (which the
// firewall refuses).
func protoNum(proto string) uint8 {
	switch proto {
	case "tcp":
		return firewall.ProtoTCP
	case "udp":
		return firewall.ProtoUDP
	}
	return 0
}

// grantsFor expands an accepted outcome into one firewall grant per protocol and port, each
// limited to destination dst if valid (grantDst), or into its NAT grants (natGrants).
func grantsFor(o outcome, stanza int, dst netip.Addr) []firewall.Grant {
	if o.nat != nil {
		return natGrants(o, stanza)
	}
	gs := make([]firewall.Grant, 0, len(o.ports))
	for _, pp := range o.ports {
		gs = append(gs, firewall.Grant{Src: o.allow, Dst: dst, Proto: protoNum(pp.Proto), Port: pp.Port, Timeout: o.timeout, Stanza: stanza})
	}
	return gs
}

// grantDst is the destination an access grant for allow is limited to under
// Policy.DestinationRule: the packet's destination pktDst, unmapped, if on, specified and of
// allow's family; else zero (any destination).
func grantDst(on bool, allow, pktDst netip.Addr) netip.Addr {
	d := pktDst.Unmap().WithZone("")
	if !on || !d.IsValid() || d.IsUnspecified() || d.Is4() != allow.Unmap().Is4() {
		return netip.Addr{}
	}
	return d
}

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
}

const (
	protoTCP = 6
	protoUDP = 17
)

// checkPolicy runs fwknopd's post-decryption checks (§8 steps 7-15) of stanza st on message m
// received from src, at now.
func (s *Server) checkPolicy(p *Policy, st *fwconf.Stanza, m *spa.Message, src netip.Addr, now time.Time) outcome {
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
	allow, err := netip.ParseAddr(ipText)
	if err != nil {
		return outcome{reason: BadAccess, detail: fmt.Sprintf("allow-IP %q", ipText), terminal: true}
	}
	if allow.Zone() != "" {
		return outcome{reason: BadAccess, detail: fmt.Sprintf("allow-IP %q has a zone", ipText), terminal: true}
	}
	allow = allow.Unmap()
	if allow.IsUnspecified() {
		if st.RequireSourceAddress {
			return outcome{reason: SourceRequired}
		}
		allow = src
	} else if st.RequireSourceMatch && allow != src {
		return outcome{reason: SourceMismatch, detail: "allow=" + allow.String()}
	}

	if st.RequireUsername != "" && m.Username != st.RequireUsername {
		return outcome{reason: UsernameMismatch, detail: fmt.Sprintf("user %q", m.Username)}
	}

	// Message type: sesame grants plain and client-timeout access messages only.
	switch m.Type {
	case spa.AccessMsg, spa.ClientTimeoutAccessMsg:
	case spa.CommandMsg:
		return outcome{reason: CommandRefused}
	case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg, spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg:
		return outcome{reason: NATRefused, detail: fmt.Sprintf("type %d", int(m.Type))}
	default:
		return outcome{reason: BadPlaintext, detail: fmt.Sprintf("message type %d", int(m.Type))}
	}

	// Ports ("none/0" = the stanza's OPEN_PORTS).
	acc, none, err := s.parseAccess(m.Message)
	if err != nil {
		return outcome{reason: BadAccess, detail: err.Error(), terminal: true}
	}
	ports := acc.Ports
	if none {
		if len(st.OpenPorts) == 0 {
			return outcome{reason: NoPorts}
		}
		ports = st.OpenPorts
	}
	for _, pp := range ports {
		if protoNum(pp.Proto) == 0 {
			return outcome{reason: BadAccess, detail: "protocol " + pp.Proto}
		}
		if containsPort(st.RestrictPorts, pp) {
			return outcome{reason: RestrictedPort, detail: portString(pp)}
		}
		if len(st.OpenPorts) > 0 && !containsPort(st.OpenPorts, pp) {
			return outcome{reason: PortNotAllowed, detail: portString(pp)}
		}
	}

	return outcome{reason: Granted, allow: allow, ports: ports, timeout: accessTimeout(st, m)}
}

// accessTimeout is the client's timeout capped at MAX_FW_TIMEOUT, else FW_ACCESS_TIMEOUT.
func accessTimeout(st *fwconf.Stanza, m *spa.Message) time.Duration {
	if m.ClientTimeout > 0 {
		limit := st.MaxFWTimeout
		if limit <= 0 {
			limit = defaultMaxFWTimeout
		}
		return min(time.Duration(m.ClientTimeout)*time.Second, limit)
	}
	if st.FWAccessTimeout > 0 {
		return st.FWAccessTimeout
	}
	return defaultAccessTimeout
}

// parseAccess parses an access message. none reports sesame's "IP,none/0" form (open the
// stanza's OPEN_PORTS); its Access then has no ports.
func (s *Server) parseAccess(msg string) (acc spa.Access, none bool, err error) {
	ip, rest, ok := strings.Cut(msg, ",")
	if ok && strings.EqualFold(rest, "none/0") {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return spa.Access{}, false, fmt.Errorf("allow-IP %q: %w", ip, err)
		}
		if a.Unmap().IsUnspecified() {
			a = netip.Addr{}
		}
		return spa.Access{AllowIP: a}, true, nil
	}
	acc, err = s.codec.ParseAccess(msg)
	if err != nil {
		return spa.Access{}, false, err
	}
	if len(acc.Ports) == 0 {
		return spa.Access{}, false, fmt.Errorf("no proto/port in %q", msg)
	}
	return acc, false, nil
}

func protoNum(proto string) uint8 {
	switch strings.ToLower(proto) {
	case "tcp":
		return protoTCP
	case "udp":
		return protoUDP
	}
	return 0
}

func containsPort(list []spa.ProtoPort, pp spa.ProtoPort) bool {
	for _, q := range list {
		if q.Port == pp.Port && strings.EqualFold(q.Proto, pp.Proto) {
			return true
		}
	}
	return false
}

func portString(pp spa.ProtoPort) string { return fmt.Sprintf("%s/%d", pp.Proto, pp.Port) }

// grantsFor expands an accepted outcome into one firewall grant per protocol and port.
func grantsFor(o outcome) []firewall.Grant {
	gs := make([]firewall.Grant, 0, len(o.ports))
	for _, pp := range o.ports {
		gs = append(gs, firewall.Grant{Src: o.allow, Proto: protoNum(pp.Proto), Port: pp.Port, Timeout: o.timeout})
	}
	return gs
}

package spa

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseAccess parses and validates an access message, "ip,proto/port[,proto/port...]", with
// libfko's rules: the allow-IP is dotted-quad IPv4 (sesame also accepts IPv6; "0.0.0.0"
// (or "::") yields the zero Addr, meaning "the packet's source"), each proto is lower-case "tcp" or
// "udp", each port 1..65535 with at most 5 digits, no empty item, and the whole message is
// shorter than 256 bytes. Failures wrap ErrAccess.
//
// sesame extension: the port list "none/0" alone, in lower case (what fwknop's client would
// send when -A is left out), parses to an Access with no Ports, which sesame's server reads as
// "the stanza's OPEN_PORTS". fwknopd 2.6.10 refuses it in any case, and also refuses "TCP/22";
// it accepts "tcp/022" (so does ParseAccess) and "0127.0.0.1" (inet_aton reads it as octal,
// 87.0.0.1; ParseAccess refuses it). internal/fwknoptest checks these against the real fwknopd.
//
// ParseAccess is the server's one parser of access messages: DecodePlaintext applies it to
// every access message, so a decoded Message always parses.
func ParseAccess(msg string) (Access, error) {
	if len(msg) >= maxMessage {
		return Access{}, fmt.Errorf("spa: access message of %d bytes: %w", len(msg), ErrAccess)
	}
	comma := strings.IndexByte(msg, ',')
	if comma < 0 {
		return Access{}, fmt.Errorf("spa: access message %q has no proto/port: %w", msg, ErrAccess)
	}
	ip, err := ParseAllowIP(msg[:comma])
	if err != nil {
		return Access{}, err
	}
	var a Access
	if !ip.IsUnspecified() { // 0.0.0.0 (or ::) means "use the packet's source"
		a.AllowIP = ip
	}
	rest := msg[comma:]
	if rest == ","+noPorts {
		return a, nil
	}
	for rest != "" { // rest starts with ','
		rest = rest[1:]
		var proto string
		switch {
		case strings.HasPrefix(rest, "tcp/"):
			proto = "tcp"
		case strings.HasPrefix(rest, "udp/"):
			proto = "udp"
		default:
			return Access{}, fmt.Errorf("spa: access message %q: bad proto/port: %w", msg, ErrAccess)
		}
		port, r, ok := parsePort(rest[4:])
		if !ok {
			return Access{}, fmt.Errorf("spa: access message %q: bad port: %w", msg, ErrAccess)
		}
		a.Ports = append(a.Ports, ProtoPort{Proto: proto, Port: port})
		rest = r
	}
	return a, nil
}

// noPorts is the port list of an access message that names no port.
const noPorts = "none/0"

// ParseAllowIP checks the allow-IP that starts an access or command message (the text before
// the first comma) as ParseAccess does: dotted-quad IPv4 without leading zeros, or (sesame)
// IPv6 without a zone and not IPv4-mapped. It returns the address as written, 0.0.0.0 and ::
// included. Failures wrap ErrAccess.
func ParseAllowIP(s string) (netip.Addr, error) {
	a, ok := parseAllowIP(s)
	if !ok {
		return netip.Addr{}, fmt.Errorf("spa: allow-IP %q: %w", s, ErrAccess)
	}
	return a, nil
}

// String renders the access message in the form ParseAccess reads; the zero AllowIP is written
// as "0.0.0.0", and an empty port list as "none/0".
func (a Access) String() string {
	var b strings.Builder
	if a.AllowIP.IsValid() {
		b.WriteString(a.AllowIP.String())
	} else {
		b.WriteString("0.0.0.0")
	}
	if len(a.Ports) == 0 {
		b.WriteString("," + noPorts)
	}
	for _, p := range a.Ports {
		b.WriteByte(',')
		b.WriteString(p.String())
	}
	return b.String()
}

// String returns "proto/port".
func (p ProtoPort) String() string { return p.Proto + "/" + strconv.Itoa(int(p.Port)) }

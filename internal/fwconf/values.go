package fwconf

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// parseYN reads a Y/N value as fwknopd does (first letter, any case), but also refuses
// anything that starts with neither.
func parseYN(v string) (bool, bool) {
	if v == "" {
		return false, false
	}
	switch v[0] {
	case 'Y', 'y':
		return true, true
	case 'N', 'n':
		return false, true
	}
	return false, false
}

// normList lower-cases nothing but drops blanks around commas.
func normList(v string) string {
	f := strings.Split(v, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return strings.Join(f, ",")
}

// splitList splits a comma list, trimming blanks; an empty element is an error.
func splitList(v string) ([]string, error) {
	f := strings.Split(v, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
		if f[i] == "" {
			return nil, fmt.Errorf("empty element in list %q", v)
		}
	}
	return f, nil
}

// parseUint reads a decimal integer in [lo, hi].
func parseUint(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a whole number in [%d, %d]", v, lo, hi)
	}
	return n, nil
}

// ParseAddrList parses a SOURCE or DESTINATION value: a comma list of ANY, IPv4 addresses,
// a.b.c.d/nn, a.b.c.d/m.m.m.m (contiguous masks), and, as a sesame extension, IPv6 addresses
// and prefixes. Prefixes are masked (10.1.2.3/8 is 10.0.0.0/8, as fwknopd matches it). any
// reports whether ANY appeared.
func ParseAddrList(v string) (prefixes []netip.Prefix, any bool, err error) {
	elems, err := splitList(v)
	if err != nil {
		return nil, false, err
	}
	for _, e := range elems {
		if strings.EqualFold(e, "ANY") {
			any = true
			continue
		}
		p, err := parsePrefix(e)
		if err != nil {
			return nil, false, err
		}
		prefixes = append(prefixes, p)
	}
	return prefixes, any, nil
}

func parsePrefix(e string) (netip.Prefix, error) {
	addrStr, maskStr, hasMask := strings.Cut(e, "/")
	a, err := netip.ParseAddr(addrStr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address", addrStr)
	}
	a = a.Unmap()
	bits := a.BitLen()
	if hasMask {
		if strings.Contains(maskStr, ".") {
			if !a.Is4() {
				return netip.Prefix{}, fmt.Errorf("%q: dotted masks are for IPv4 addresses", e)
			}
			m, err := netip.ParseAddr(maskStr)
			if err != nil || !m.Is4() {
				return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 mask", maskStr)
			}
			b := m.As4()
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			ones := 0
			for v&0x80000000 != 0 {
				ones++
				v <<= 1
			}
			if v != 0 {
				return netip.Prefix{}, fmt.Errorf("mask %q is not contiguous", maskStr)
			}
			bits = ones
		} else {
			n, err := strconv.Atoi(maskStr)
			if err != nil || n < 1 || n > a.BitLen() {
				return netip.Prefix{}, fmt.Errorf("prefix length %q is not in [1, %d] (use ANY for every address)", maskStr, a.BitLen())
			}
			bits = n
		}
		if bits == 0 {
			return netip.Prefix{}, fmt.Errorf("mask %q matches every address (use ANY)", maskStr)
		}
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// ParsePorts parses an OPEN_PORTS / RESTRICT_PORTS / SESAME_GUARD_PORTS value: a comma list
// of proto/port, each parsed by firewall.ParsePort, the one parser of configured ports (tcp or
// udp in any case, port 1..65535, blanks around items ignored).
//
// The pairs come back as spa.ProtoPort with a lower-case protocol, the form spa.ParseAccess
// gives a request, so Stanza.CheckPorts compares like with like. Two port types remain on
// purpose: spa.ProtoPort is the protocol's (a name from the packet; spa stays free of
// sesame's internal packages), firewall.Port the kernel's (a protocol number). A stanza's
// ports are compared with requests, so they take the request's type; the server converts once,
// when it makes a firewall.Grant.
func ParsePorts(v string) ([]spa.ProtoPort, error) {
	elems, err := splitList(v)
	if err != nil {
		return nil, err
	}
	out := make([]spa.ProtoPort, 0, len(elems))
	for _, e := range elems {
		p, err := firewall.ParsePort(e)
		if err != nil {
			return nil, fmt.Errorf("%q: want tcp/PORT or udp/PORT with PORT 1..65535", e)
		}
		out = append(out, protoPort(p))
	}
	return out, nil
}

// protoPort converts a firewall port to the protocol package's form.
func protoPort(p firewall.Port) spa.ProtoPort {
	proto := "tcp"
	if p.Proto == firewall.ProtoUDP {
		proto = "udp"
	}
	return spa.ProtoPort{Proto: proto, Port: p.Port}
}

// decodeBase64 accepts standard base64 with or without '=' padding.
func decodeBase64(v string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(v)
}

var digestText = map[spa.DigestType]string{
	spa.MD5: "md5", spa.SHA1: "sha1", spa.SHA256: "sha256", spa.SHA384: "sha384",
	spa.SHA512: "sha512", spa.SHA3_256: "sha3_256", spa.SHA3_512: "sha3_512",
}

var modeText = map[spa.Mode]string{
	spa.CBC: "CBC", spa.ECB: "ECB", spa.CFB: "CFB", spa.OFB: "OFB", spa.CTR: "CTR", spa.Legacy: "legacy",
}

// parseExpire reads ACCESS_EXPIRE's MM/DD/YYYY as fwknopd does (midnight starting that day,
// local time; two-digit years are 20YY).
func parseExpire(v string, loc *time.Location) (time.Time, error) {
	f := strings.Split(v, "/")
	if len(f) != 3 {
		return time.Time{}, fmt.Errorf("%q is not MM/DD/YYYY", v)
	}
	m, err1 := strconv.Atoi(f[0])
	d, err2 := strconv.Atoi(f[1])
	y, err3 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || err3 != nil || len(f[2]) > 4 || y < 0 || (y >= 100 && y < 1970) {
		return time.Time{}, fmt.Errorf("%q is not MM/DD/YYYY", v)
	}
	if y < 100 {
		y += 2000
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, loc)
	if t.Month() != time.Month(m) || t.Day() != d {
		return time.Time{}, fmt.Errorf("%q is not a date (MM/DD/YYYY)", v)
	}
	return t, nil
}

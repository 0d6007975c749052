package tcpmd5

import (
	"fmt"
	"net/netip"
	"strings"
)

// A KeyRule asks peers whose address is inside Prefix to sign with Key. IPv4 prefixes
// may be written plain (10.0.0.0/8) or v4-mapped (::ffff:10.0.0.0/104); they are stored
// plain.
type KeyRule struct {
	Prefix netip.Prefix
	Key    Key
}

// Catch-all prefixes. A Listener always holds a key for both (see the package doc).
var (
	AnyIPv4 = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	AnyIPv6 = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
)

// Any returns the rules that ask every peer, IPv4 and IPv6, to sign with key. On a
// dual-stack socket this covers IPv4 clients too, which a ::/0 rule alone does not.
func Any(key Key) []KeyRule {
	return []KeyRule{{Prefix: AnyIPv4, Key: key}, {Prefix: AnyIPv6, Key: key}}
}

// normPrefix validates p, masks its host bits and unmaps v4-mapped prefixes.
func normPrefix(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("tcpmd5: %w: %v", ErrBadPrefix, p)
	}
	a := p.Addr().WithZone("")
	bits := p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// ParsePrefix reads a source prefix as used in key tables: a CIDR prefix
// (192.0.2.0/24, 2001:db8::/32) or a single address (taken as /32 or /128). An IPv6 zone
// ("fe80::1%eth0", "fe80::%eth0/64") is accepted and dropped.
func ParsePrefix(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	if a, err := netip.ParseAddr(addr); err == nil && !hasBits {
		return normPrefix(netip.PrefixFrom(a, a.BitLen()))
	}
	if i := strings.IndexByte(addr, '%'); i >= 0 && hasBits {
		addr = addr[:i] // netip.ParsePrefix refuses zones
	}
	p, err := netip.ParsePrefix(addr + "/" + bits)
	if err != nil || !hasBits {
		return netip.Prefix{}, fmt.Errorf("tcpmd5: %w: %q", ErrBadPrefix, s)
	}
	return normPrefix(p)
}

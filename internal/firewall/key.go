package firewall

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Set keys are concatenations `addr . inet_proto . inet_service`. The kernel lays each field of a
// concatenation out in whole 32-bit registers, so the 1-byte protocol and the 2-byte port are each
// followed by zero padding:
//
//	IPv4: addr[4] | proto, 0, 0, 0 | port(big endian), 0, 0   = 12 bytes
//	IPv6: addr[16] | proto, 0, 0, 0 | port(big endian), 0, 0  = 24 bytes
const (
	keyLen4 = 12
	keyLen6 = 24
)

// isV4 reports whether the grant goes into the IPv4 set (IPv4-mapped IPv6 addresses do: the
// kernel sees such clients as IPv4).
func isV4(a netip.Addr) bool { return a.Unmap().Is4() }

// Destination keys (grantsd4/6, Grant.Dst) are `saddr . daddr . inet_proto . inet_service`:
//
//	IPv4: src[4] | dst[4] | proto, 0, 0, 0 | port, 0, 0      = 16 bytes
//	IPv6: src[16] | dst[16] | proto, 0, 0, 0 | port, 0, 0    = 40 bytes
const (
	keyLenD4 = 16
	keyLenD6 = 40
)

// grantKey encodes the set key of g: a destination key if g has a Dst (access grants only).
func grantKey(g Grant) []byte {
	if g.Dst.IsValid() {
		k := append(addrBytes(g.Src), addrBytes(g.Dst)...)
		return appendPort(appendProto(k, g.Proto), g.Port)
	}
	a := g.Src.Unmap()
	if a.Is4() {
		k := make([]byte, keyLen4)
		b := a.As4()
		copy(k, b[:])
		k[4] = g.Proto
		binary.BigEndian.PutUint16(k[8:], g.Port)
		return k
	}
	k := make([]byte, keyLen6)
	b := a.As16()
	copy(k, b[:])
	k[16] = g.Proto
	binary.BigEndian.PutUint16(k[20:], g.Port)
	return k
}

// parseKey decodes a set key read back from the kernel. It rejects keys of the wrong length
// and non-zero padding.
func parseKey(k []byte) (Grant, error) {
	var g Grant
	var rest []byte
	switch len(k) {
	case keyLen4:
		g.Src = netip.AddrFrom4([4]byte(k[:4]))
		rest = k[4:]
	case keyLen6:
		g.Src = netip.AddrFrom16([16]byte(k[:16]))
		rest = k[16:]
	default:
		return Grant{}, fmt.Errorf("set key of %d bytes, want %d or %d", len(k), keyLen4, keyLen6)
	}
	if rest[1]|rest[2]|rest[3]|rest[6]|rest[7] != 0 {
		return Grant{}, fmt.Errorf("set key %x: non-zero padding", k)
	}
	g.Proto = rest[0]
	g.Port = binary.BigEndian.Uint16(rest[4:6])
	return g, nil
}

// parseDstKey decodes a destination key (grantsd4/6) read back from the kernel.
func parseDstKey(k []byte) (Grant, error) {
	n := 4
	switch len(k) {
	case keyLenD4:
	case keyLenD6:
		n = 16
	default:
		return Grant{}, fmt.Errorf("destination key of %d bytes, want %d or %d", len(k), keyLenD4, keyLenD6)
	}
	// Src . proto . port without the destination is an ordinary key.
	g, err := parseKey(append(append([]byte(nil), k[:n]...), k[2*n:]...))
	if err != nil {
		return Grant{}, fmt.Errorf("destination key %x: %w", k, err)
	}
	if n == 4 {
		g.Dst = netip.AddrFrom4([4]byte(k[n : 2*n]))
	} else {
		g.Dst = netip.AddrFrom16([16]byte(k[n : 2*n]))
	}
	return g, nil
}

// portKey encodes the key of the guard set, `inet_proto . inet_service` (8 bytes).
func portKey(p Port) []byte {
	k := make([]byte, 8)
	k[0] = p.Proto
	binary.BigEndian.PutUint16(k[4:], p.Port)
	return k
}

// NAT keys and values (package doc, "NAT and forwarding"), padded like grant keys:
//
//	dnat:   src . proto . port                          -> natAddr . natPort
//	fwd:    src . proto . port . natAddr . natPort      -> snat (lnat: same key, no value)
//	fwdall: src                                         -> snat
//
// The snat value is the SNAT address, all zeros for none and all ones for masquerade.

// addrBytes returns a's 4 or 16 bytes (IPv4-mapped as IPv4).
func addrBytes(a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// padded appends the 1-byte proto or 2-byte port field in its 4-byte register.
func appendProto(k []byte, p uint8) []byte { return append(k, p, 0, 0, 0) }
func appendPort(k []byte, p uint16) []byte {
	return append(k, byte(p>>8), byte(p), 0, 0)
}

// dnatVal is the DNAT map's value for g: natAddr . natPort.
func dnatVal(g Grant) []byte { return appendPort(addrBytes(g.NATAddr), g.NATPort) }

// fwdKey is the key of g's fwd (Forward) or lnat (LocalNAT) element.
func fwdKey(g Grant) []byte {
	k := appendPort(appendProto(addrBytes(g.Src), g.Proto), g.Port)
	return appendPort(append(k, addrBytes(g.NATAddr)...), g.NATPort)
}

// snatVal is the fwd/fwdall maps' value for g.
func snatVal(g Grant) []byte {
	v4 := isV4(g.Src)
	switch {
	case g.Masquerade:
		return addrBytes(allOnes(v4))
	case g.SNAT.IsValid():
		return addrBytes(g.SNAT)
	case v4:
		return make([]byte, 4)
	}
	return make([]byte, 16)
}

// parseSnat sets g's SNAT or Masquerade from a value read back.
func parseSnat(g *Grant, v []byte) error {
	var a netip.Addr
	switch len(v) {
	case 4:
		a = netip.AddrFrom4([4]byte(v))
	case 16:
		a = netip.AddrFrom16([16]byte(v))
	default:
		return fmt.Errorf("snat value of %d bytes", len(v))
	}
	switch {
	case a.IsUnspecified():
	case a == allOnes(a.Is4()):
		g.Masquerade = true
	default:
		g.SNAT = a
	}
	return nil
}

// parseFwdKey decodes a fwd or lnat key into g's Src, Proto, Port, NATAddr and NATPort.
func parseFwdKey(k []byte) (Grant, error) {
	n := 4
	if len(k) == 44 {
		n = 16
	} else if len(k) != 20 {
		return Grant{}, fmt.Errorf("forward key of %d bytes, want 20 or 44", len(k))
	}
	g, err := parseKey(k[:n+8])
	if err != nil {
		return Grant{}, err
	}
	rest := k[n+8:]
	if n == 4 {
		g.NATAddr = netip.AddrFrom4([4]byte(rest[:4]))
	} else {
		g.NATAddr = netip.AddrFrom16([16]byte(rest[:16]))
	}
	p := rest[n:]
	if p[2]|p[3] != 0 {
		return Grant{}, fmt.Errorf("forward key %x: non-zero padding", k)
	}
	g.NATPort = binary.BigEndian.Uint16(p)
	return g, nil
}

// parseDnat decodes a DNAT element into its key grant (Src, Proto, Port) and target.
func parseDnat(k, v []byte) (Grant, netip.AddrPort, error) {
	g, err := parseKey(k)
	if err != nil {
		return Grant{}, netip.AddrPort{}, err
	}
	var a netip.Addr
	switch len(v) {
	case 8:
		a = netip.AddrFrom4([4]byte(v[:4]))
	case 20:
		a = netip.AddrFrom16([16]byte(v[:16]))
	default:
		return Grant{}, netip.AddrPort{}, fmt.Errorf("dnat value of %d bytes", len(v))
	}
	return g, netip.AddrPortFrom(a, binary.BigEndian.Uint16(v[len(v)-4:])), nil
}

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

// grantKey encodes the set key of g.
func grantKey(g Grant) []byte {
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

// portKey encodes the key of the guard set, `inet_proto . inet_service` (8 bytes).
func portKey(p Port) []byte {
	k := make([]byte, 8)
	k[0] = p.Proto
	binary.BigEndian.PutUint16(k[4:], p.Port)
	return k
}

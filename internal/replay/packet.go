package replay

import (
	"context"
	"net/netip"
	"strconv"
)

// Packet is where the packet of a digest came from: what fwknopd 2.6's digest.cache records
// beside each digest (<proto> <src_ip> <src_port> <dst_ip> <dst_port>).
type Packet struct {
	Proto uint8          // IP protocol number: 17 UDP, 6 TCP, 1 ICMP
	Src   netip.AddrPort // the sender
	Dst   netip.AddrPort // where it was sent; the address is unspecified in UDP-server mode
}

type packetKey struct{}

// WithPacket returns a copy of ctx that carries p to Cache.CheckAndAdd: File writes it in the
// digest's line. It travels in the context, not as an argument, so that a cache that wraps
// another (the fleet's, which keeps a local copy) passes it on unchanged.
func WithPacket(ctx context.Context, p Packet) context.Context {
	return context.WithValue(ctx, packetKey{}, p)
}

// PacketFrom returns the Packet ctx carries (WithPacket), or the zero Packet.
func PacketFrom(ctx context.Context) Packet {
	p, _ := ctx.Value(packetKey{}).(Packet)
	return p
}

// appendAddr writes an address as fwknopd 2.6.10 can read it back: dotted IPv4 (IPv4-mapped
// addresses unmapped); anything else, IPv6 included, as 0.0.0.0, because fwknopd silently
// drops a line whose address is not IPv4, and with it the digest's replay protection.
func appendAddr(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if !a.Is4() {
		a = netip.IPv4Unspecified()
	}
	b = a.AppendTo(b)
	b = append(b, ' ')
	return strconv.AppendUint(b, uint64(ap.Port()), 10)
}

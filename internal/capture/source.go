// Package capture delivers candidate SPA packets: sniffed passively from an interface with a
// kernel BPF filter (the SPA port stays closed), or read from a UDP socket.
package capture

import "net/netip"

// Packet is one candidate SPA packet.
type Packet struct {
	Src, Dst netip.AddrPort // Dst's address is unspecified in UDP-server mode
	Proto    uint8          // 17 udp, 6 tcp, 1 icmp, 58 icmpv6
	Payload  []byte         // the L4 payload; owned by the caller after Read returns
}

// Source is where packets come from.
type Source interface {
	// Read blocks until a packet arrives. After Close it returns an error wrapping net.ErrClosed.
	Read() (Packet, error)
	// Close stops the source and unblocks Read.
	Close() error
}

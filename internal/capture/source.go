// Package capture delivers candidate SPA packets: sniffed passively from an interface with a
// kernel BPF filter (the SPA port stays closed), or read from a UDP socket.
//
// # Sources
//
//   - Sniffer (fwknopd's default pcap mode, without libpcap): an AF_PACKET socket in cooked
//     (SOCK_DGRAM) mode, so every buffer starts at the IP header on Ethernet, loopback and
//     tun/WireGuard links alike. It sees packets before netfilter, so the firewall can drop the
//     SPA port and a scan finds nothing listening. Interface "any" binds to every interface.
//     The kernel copies accepted packets into a memory-mapped TPACKET_V2 ring, so a flood
//     costs the reader no system call per packet.
//   - ResilientSniffer: a Sniffer that outlives its interface. It follows the interface's
//     rtnetlink link events (LinkWatcher) and opens a new socket when the interface is back
//     up, re-created, or created after the daemon started.
//   - UDPServer (ENABLE_UDP_SERVER, -U): a plain dual-stack UDP socket; the firewall must
//     accept the port. FromPacketConn takes a socket from systemd socket activation.
//   - Chan (alias Fake): packets pushed by a test.
//
// # Counters
//
// Sniffer, ResilientSniffer and UDPServer implement Statser: Stats returns SourceStats, the
// packets the kernel had for the source, those it dropped for want of room (a knock lost
// under a flood shows there), and those Read rejected.
//
// # Filter
//
// CompileFilter accepts the PCAP_FILTER forms fwknopd configurations use: "[udp|tcp]
// [src|dst] port N", "udp", "tcp", "icmp" (IPv4, as in pcap), "icmp6", joined with "or" and
// optionally parenthesised. Anything else is an error that names the expression and lists
// what is supported. The generated classic BPF program runs in the kernel and rejects, before
// any copy to userspace: packets the host sends (unless AnyDirection), non-IP frames, IPv4
// fragments, and packets no term matches. IPv6 is matched on the fixed header's Next Header
// only: packets with extension headers never match.
//
// # Loopback and direction
//
// On loopback the kernel shows every packet twice to packet sockets, once leaving
// (PACKET_OUTGOING) and once arriving. The program drops the outgoing copy, always; with
// AnyDirection it keeps outgoing packets on other interfaces only, so each loopback packet
// is still seen exactly once (a replay cache would otherwise flag the second copy).
//
// # Payloads
//
// ParseIP returns the UDP payload, the TCP payload after options, or the ICMP/ICMPv6 payload
// after the 8-byte header (as fwknopd). Sources copy the payload, so the caller owns it.
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

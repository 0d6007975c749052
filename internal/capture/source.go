// Package capture delivers candidate SPA packets: sniffed passively from one or more
// interfaces with a kernel BPF filter (the SPA port stays closed), read from a UDP socket, or
// read from a capture file.
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
//   - MultiSniffer: PCAP_INTF listing several interfaces ("eth0,wg0" or "eth0 wg0", see
//     SplitInterfaces): one ResilientSniffer per interface, each reattaching on its own,
//     merged into one Read; counters summed.
//   - UDPServer (ENABLE_UDP_SERVER, -U): a plain dual-stack UDP socket; the firewall must
//     accept the port. FromPacketConn takes a socket from systemd socket activation.
//   - FileSource (PCAP_FILE, --pcap-file): packets from a pcap or pcapng file (Ethernet, Linux
//     cooked v1/v2, raw IP, BSD loopback), filtered as a Sniffer filters, for "would this have
//     opened?".
//   - Chan (alias Fake): packets pushed by a test.
//
// # Counters
//
// Sniffer, ResilientSniffer, MultiSniffer, FileSource and UDPServer implement Statser: Stats
// returns SourceStats, the packets the kernel had for the source, those it dropped for want of
// room (a knock lost under a flood shows there), those Read rejected, and the fragment
// counters.
//
// # Filter
//
// CompileFilter compiles PCAP_FILTER, a pcap-filter(7) expression (and, or, not, host, net,
// port, portrange, proto, protochain, ip, ip6, tcp, udp, icmp, icmp6 ..., less, greater and
// header arithmetic such as "tcp[tcpflags] & tcp-syn != 0"); what needs a link-layer header
// (ether, arp, vlan, inbound ...) is refused. Filter.Program is its classic BPF program, run in
// the kernel before any copy to userspace; Filter.Match is its userspace twin, which Read
// applies again to what the kernel passed and to reassembled datagrams. Both drop packets the
// host sends (unless AnyDirection) and non-IP frames.
//
// # Fragments and IPv6 extension headers
//
// Sniffers see every packet as the UDP-server mode would: the kernel program and ParseIP walk
// IPv6 extension headers (hop-by-hop, routing, destination options, AH; up to MaxExtHeaders)
// to the upper-layer header, and fragmented datagrams (IPv4, or IPv6 with a Fragment header)
// are reassembled in userspace, with the kernel's bounds (DefaultFragLimits: 30 s, 4 MiB, and
// per-source limits). Overlapping fragments discard their datagram (RFC 5722, for IPv4 too, as
// Linux does). The kernel program passes a fragment on what it can tell (addresses, IPv4's
// protocol); the filter is checked on the whole datagram. ESP and chains longer than
// MaxExtHeaders are dropped.
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
// after the 8-byte header (as fwknopd). Sources copy the payload, so the caller owns it. A
// Screener (Sniffer, ResilientSniffer, MultiSniffer, UDPServer, Chan) first shows each packet
// to a screen while its payload still lies in the receive buffer, and copies only what the
// screen does not settle: a flood of forged packets is rejected without a copy or an
// allocation. A Backlog tells whether another packet is waiting.
package capture

import (
	"net/netip"
	"time"
)

// Packet is one candidate SPA packet.
type Packet struct {
	Src, Dst netip.AddrPort // Dst's address is unspecified in UDP-server mode
	Proto    uint8          // 17 udp, 6 tcp, 1 icmp, 58 icmpv6
	Payload  []byte         // the L4 payload; owned by the caller after Read returns
	// Time is when the source took the packet from the kernel, read once per batch (at most
	// 256 packets from a Sniffer's ring, one recvmmsg batch of the UDPServer), with its
	// monotonic reading; zero from sources that do not say (Chan, FileSource, whose records
	// are not arrivals).
	Time time.Time
}

// Screener is a Source that can show packets to the caller before copying them.
type Screener interface {
	// Screen makes Read call f on every packet before its payload is copied, and skip the
	// packets for which f returns true (the caller settled them). pkt.Payload is the source's
	// receive buffer: f must not keep it, since it is overwritten once f returns. f must be
	// safe to call from several goroutines (a MultiSniffer reads each interface in its own).
	// Call Screen before the first Read.
	Screen(f func(pkt Packet) (settled bool))
}

// Backlog is a Source that can tell whether a packet is waiting to be read.
type Backlog interface {
	// Waiting reports whether a packet may be waiting: Read holds one, the kernel has one
	// queued, or the source cannot tell cheaply. Call it from the goroutine that calls Read.
	Waiting() bool
}

// Source is where packets come from.
type Source interface {
	// Read blocks until a packet arrives. After Close it returns an error wrapping net.ErrClosed.
	Read() (Packet, error)
	// Close stops the source and unblocks Read.
	Close() error
}

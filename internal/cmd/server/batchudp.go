package server

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"

	"github.com/sesame-spa/sesame/internal/capture"
)

// batchSize is how many datagrams one recvmmsg(2) may return.
const batchSize = 64

// batchUDP is a capture.Source over a UDP socket that reads up to batchSize datagrams per
// system call (recvmmsg), which matters under a flood: the syscall is most of the cost of a
// forged packet. Packets are as capture.UDPServer makes them: Src unmapped and without zone,
// Dst the unspecified address of Src's family with the local port, Proto 17. Read must be
// called from one goroutine at a time; Close may be called from any.
type batchUDP struct {
	pc   *net.UDPConn
	bc   *ipv4.PacketConn // recvmmsg works on IPv4 and IPv6 sockets alike
	port uint16
	msgs []ipv4.Message
	n, i int
}

var _ capture.Source = (*batchUDP)(nil)

func newBatchUDP(pc *net.UDPConn) *batchUDP {
	b := &batchUDP{pc: pc, bc: ipv4.NewPacketConn(pc), msgs: make([]ipv4.Message, batchSize)}
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{make([]byte, 65536)}
	}
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		b.port = uint16(ua.Port)
	}
	return b
}

// Read returns the next datagram, reading a new batch when the last one is used up. After
// Close the error wraps net.ErrClosed.
func (b *batchUDP) Read() (capture.Packet, error) {
	for b.i >= b.n {
		n, err := b.bc.ReadBatch(b.msgs, 0)
		if err != nil {
			return capture.Packet{}, fmt.Errorf("udp read on %v: %w", b.pc.LocalAddr(), err)
		}
		b.n, b.i = n, 0
	}
	m := &b.msgs[b.i]
	b.i++
	var src netip.AddrPort
	if ua, ok := m.Addr.(*net.UDPAddr); ok {
		src = ua.AddrPort()
	}
	ip := src.Addr().Unmap().WithZone("")
	dst := netip.IPv4Unspecified()
	if ip.Is6() {
		dst = netip.IPv6Unspecified()
	}
	return capture.Packet{
		Src:     netip.AddrPortFrom(ip, src.Port()),
		Dst:     netip.AddrPortFrom(dst, b.port),
		Proto:   17,
		Payload: bytes.Clone(m.Buffers[0][:m.N]),
	}, nil
}

// Close closes the socket, unblocking Read.
func (b *batchUDP) Close() error { return b.pc.Close() }

// LocalAddr is the socket's address.
func (b *batchUDP) LocalAddr() net.Addr { return b.pc.LocalAddr() }

package capture

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// DefaultUDPAddr is fwknopd's UDP-server address (UDPSERV_PORT 62201 on all addresses).
const DefaultUDPAddr = ":62201"

// maxDatagram fits any UDP payload, so nothing is silently cut.
const maxDatagram = 65536

// udpBatch is how many datagrams one recvmmsg(2) may return. Under a flood the system call
// is most of the cost of a forged packet, so reading many per call matters.
const udpBatch = 64

// UDPServer is a Source reading a plain UDP socket (fwknopd's ENABLE_UDP_SERVER / -U). Unlike
// sniffing, the firewall must accept the port. Packet.Src is the sender with IPv4-mapped IPv6
// addresses unmapped and any zone dropped; Packet.Dst is the datagram's destination address
// (from IP_PKTINFO / IPV6_PKTINFO, so DESTINATION stanzas work in this mode, which fwknopd
// could not: fwknop #289) with the local port, or, over a PacketConn that is not a
// *net.UDPConn, the unspecified address of the sender's family (what fwknopd records,
// 0.0.0.0); Proto is 17.
//
// Read must be called from one goroutine at a time; Close and Stats may be called from any
// goroutine. Over a *net.UDPConn, Read takes up to 64 datagrams per system call (recvmmsg).
type UDPServer struct {
	pc   net.PacketConn
	port uint16

	bc   *ipv4.PacketConn // batch reader, when pc is a *net.UDPConn (works for IPv6 too)
	msgs []ipv4.Message   // the last batch; msgs[i:n] are still to be returned
	n, i int
	// batchTime is when the last batch was read (its packets' Time).
	batchTime time.Time

	buf []byte // the one-datagram path for other PacketConns

	payloads arena             // the copies Read returns
	screen   func(Packet) bool // Screener

	read atomic.Uint64 // datagrams read from the socket

	statsMu   sync.Mutex
	rc        syscall.RawConn // nil if pc has no file descriptor
	lastDrops uint32          // the socket's sk_drops when last read (it wraps at 2^32)
	dropped   uint64
}

var _ Source = (*UDPServer)(nil)

// NewUDPServer listens on addr ("host:port"; ":62201" is dual-stack, both IPv4 and IPv6).
func NewUDPServer(addr string) (*UDPServer, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("capture: udp server: %w", err)
	}
	return FromPacketConn(pc), nil
}

// FromPacketConn reads from a socket opened elsewhere (systemd socket activation). The
// UDPServer owns pc from now on and closes it on Close.
func FromPacketConn(pc net.PacketConn) *UDPServer {
	s := &UDPServer{pc: pc}
	if uc, ok := pc.(*net.UDPConn); ok {
		s.bc = ipv4.NewPacketConn(uc)
		s.msgs = make([]ipv4.Message, udpBatch)
		for i := range s.msgs {
			s.msgs[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		}
		if rc, err := uc.SyscallConn(); err == nil && enablePktinfo(rc) {
			for i := range s.msgs {
				s.msgs[i].OOB = make([]byte, oobSize)
			}
		}
	} else {
		s.buf = make([]byte, maxDatagram)
	}
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		s.port = uint16(ua.Port)
	}
	if sc, ok := pc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			if d, err := socketDrops(rc); err == nil {
				s.rc, s.lastDrops = rc, d // count from now on, not since the socket was made
			}
		}
	}
	return s
}

// Stats returns the counters since FromPacketConn (or NewUDPServer): Dropped is the growth of
// the socket's kernel drop counter (sk_drops, read with getsockopt SO_MEMINFO at each call,
// so it is current and needs nothing on the read path; /proc/net/udp shows the same number
// but only for the reader's network namespace), Received the datagrams read plus Dropped.
// Dropped is 0 for a PacketConn without a file descriptor. It fails once the socket is closed.
func (s *UDPServer) Stats() (SourceStats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	if s.rc != nil {
		d, err := socketDrops(s.rc)
		if err != nil {
			return SourceStats{}, fmt.Errorf("capture: udp server stats on %v: %w", s.pc.LocalAddr(), err)
		}
		s.dropped += uint64(d - s.lastDrops)
		s.lastDrops = d
	}
	return SourceStats{Received: s.read.Load() + s.dropped, Dropped: s.dropped}, nil
}

// socketDrops reads the socket's drop counter (SK_MEMINFO_DROPS of SO_MEMINFO, Linux 4.12).
func socketDrops(rc syscall.RawConn) (uint32, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var errno syscall.Errno
	err := rc.Control(func(fd uintptr) {
		n := uint32(unsafe.Sizeof(mem))
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&n)), 0)
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return 0, fmt.Errorf("SO_MEMINFO: %w", err)
	}
	return mem[unix.SK_MEMINFO_DROPS], nil
}

// LocalAddr is the socket's address.
func (s *UDPServer) LocalAddr() net.Addr { return s.pc.LocalAddr() }

// Read blocks until a datagram arrives (and, with a screen, one the screen does not settle).
// After Close the error wraps net.ErrClosed.
func (s *UDPServer) Read() (Packet, error) {
	for {
		p, err := s.next()
		if err != nil {
			return Packet{}, err
		}
		s.read.Add(1)
		if s.screen != nil && s.screen(p) {
			continue
		}
		p.Payload = s.payloads.copy(p.Payload)
		return p, nil
	}
}

// Waiting implements Backlog: a datagram of the last batch not yet returned, or one queued on
// the socket (SIOCINQ, one system call). It is true when it cannot tell (no batch reader).
func (s *UDPServer) Waiting() bool {
	if s.i < s.n {
		return true
	}
	if s.bc == nil || s.rc == nil {
		return true
	}
	n, ierr := 1, error(nil)
	if err := s.rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
		return true
	}
	return n > 0
}

// Screen implements Screener. The screen runs inside Read, on the payload in the receive buffer.
func (s *UDPServer) Screen(f func(Packet) bool) { s.screen = f }

// next returns the next datagram, its payload still in the receive buffer.
func (s *UDPServer) next() (Packet, error) {
	if s.bc == nil {
		n, a, err := s.pc.ReadFrom(s.buf)
		if err != nil {
			return Packet{}, fmt.Errorf("capture: udp read on %v: %w", s.pc.LocalAddr(), err)
		}
		src, err := addrPort(a)
		if err != nil {
			return Packet{}, fmt.Errorf("capture: udp read on %v: %w", s.pc.LocalAddr(), err)
		}
		p := s.packet(src, s.buf[:n])
		p.Time = time.Now()
		return p, nil
	}
	for s.i >= s.n {
		n, err := s.bc.ReadBatch(s.msgs, 0)
		if err != nil {
			return Packet{}, fmt.Errorf("capture: udp read on %v: %w", s.pc.LocalAddr(), err)
		}
		s.n, s.i, s.batchTime = n, 0, time.Now()
	}
	m := &s.msgs[s.i]
	s.i++
	var src netip.AddrPort
	if ua, ok := m.Addr.(*net.UDPAddr); ok {
		src = ua.AddrPort()
	}
	p := s.packet(src, m.Buffers[0][:m.N])
	p.Time = s.batchTime
	if d := pktinfoDst(m.OOB[:m.NN]); d.IsValid() && d.Is4() == p.Src.Addr().Is4() {
		p.Dst = netip.AddrPortFrom(d, s.port)
	}
	return p, nil
}

// packet makes the Packet for a datagram from src, its payload not yet copied. Its destination
// is the unspecified address of src's family; next puts the real one in when the kernel gave it.
func (s *UDPServer) packet(src netip.AddrPort, payload []byte) Packet {
	ip := src.Addr().Unmap().WithZone("")
	dst := netip.IPv4Unspecified()
	if ip.Is6() {
		dst = netip.IPv6Unspecified()
	}
	return Packet{
		Src:     netip.AddrPortFrom(ip, src.Port()),
		Dst:     netip.AddrPortFrom(dst, s.port),
		Proto:   ProtoUDP,
		Payload: payload,
	}
}

func addrPort(a net.Addr) (netip.AddrPort, error) {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort(), nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("sender address %v: %w", a, err)
	}
	return ap, nil
}

// Close closes the socket, unblocking Read.
func (s *UDPServer) Close() error {
	if err := s.pc.Close(); err != nil {
		return fmt.Errorf("capture: close udp server: %w", err)
	}
	return nil
}

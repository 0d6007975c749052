package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// DefaultFilter is fwknopd's PCAP_FILTER default.
const DefaultFilter = "udp port 62201"

// ErrInterfaceDown is wrapped by Sniffer.Read's error when the sniffed interface went down or
// was deleted. The socket stays open but the caller should close it and open a new Sniffer
// once the interface is back; ResilientSniffer does that. A ResilientSniffer with ExitOnDown
// (fwknopd's EXIT_AT_INTF_DOWN) returns it instead.
var ErrInterfaceDown = errors.New("sniffed interface went down")

// AnyInterface as SniffConfig.Interface sniffs on every interface of the network namespace.
const AnyInterface = "any"

// SniffConfig configures a Sniffer. The names in parentheses are fwknopd.conf's.
type SniffConfig struct {
	// Interface is the interface to sniff (PCAP_INTF); "" or "any" means every interface,
	// including ones that appear later. NewMultiSniffer also takes a list ("eth0,wg0").
	Interface string
	// Filter is the PCAP_FILTER expression (see CompileFilter); "" means DefaultFilter.
	Filter string
	// SnapLen is how many bytes of each packet, counted from the IP header, are captured
	// (MAX_SNIFF_BYTES); 0 means DefaultSnapLen. fwknopd counts from the link header, so the
	// same number keeps 14 more bytes here on Ethernet. Packets longer than SnapLen are
	// rejected as truncated.
	SnapLen int
	// AnyDirection also keeps packets this host sends (ENABLE_PCAP_ANY_DIRECTION). Outgoing
	// copies on loopback interfaces are still dropped, so a loopback packet is seen once.
	AnyDirection bool
	// Promiscuous puts the interface in promiscuous mode (ENABLE_PCAP_PROMISC); it needs a
	// named interface.
	Promiscuous bool
	// ReadBuffer is the size in bytes of the receive ring the kernel copies packets into; 0
	// means DefaultRingSize. Each packet takes one frame of SnapLen plus 128 bytes, rounded
	// up to 16 (1632 bytes by default, so 4 MiB holds about 2,500 packets); when all are
	// taken the kernel drops packets and counts them (Stats). A larger ring rides out bursts.
	ReadBuffer int
}

// Sniffer is a passive Source: an AF_PACKET socket in cooked mode with a kernel BPF filter, so
// it sees packets before netfilter and the SPA port can stay closed. It needs CAP_NET_RAW.
// The kernel copies accepted packets into a memory-mapped receive ring (TPACKET_V2, see
// SniffConfig.ReadBuffer), so under a flood Read makes no system call per packet.
//
// Read must be called from one goroutine at a time; Close may be called from any goroutine and
// unblocks Read; Stats may be called from any goroutine. Read allocates only the copies of the
// payloads, in 64 KiB chunks that several packets share (and, for fragments, their copies until
// the datagram is whole); packets the kernel
// filter lets through but ParseIP or the filter's userspace check reject are counted and
// skipped. Fragments are reassembled (DefaultFragLimits) and the whole datagram is checked.
type Sniffer struct {
	conn *packet.Conn
	rc   syscall.RawConn
	dec  *decoder
	name string
	// ring is read only inside rc.Read and rc.Control, so Close can unmap it once the socket
	// is closed.
	ring *ring

	// pend holds packets taken from the ring by the last fill, pend[next:] not yet returned.
	pend []Packet
	next int
	// payloads holds the copies of the payloads keep takes from the ring.
	payloads arena
	// screen, if set, sees each packet before keep copies it (Screener).
	screen func(Packet) bool
	// readFn runs fill and leaves its error in rerr; it is built once so that Read does not
	// allocate a closure.
	rerr   error
	readFn func(fd uintptr) bool

	closed atomic.Bool

	statsMu  sync.Mutex
	received uint64 // kernel counters, accumulated by Stats
	dropped  uint64
}

// pendSize is how many packets one fill takes from the ring at most.
const pendSize = 32

// scanLimit is how many frames one fill looks at at most: about a quarter of a millisecond of
// forged packets, the longest a kept packet waits behind a flood of them.
const scanLimit = 256

var _ Source = (*Sniffer)(nil)

// ErrNoInterface is wrapped by NewSniffer's error when the named interface does not exist in
// the network namespace.
var ErrNoInterface = errors.New("no such interface")

// interfaceError names the interface an error is about. Every error NewSniffer and a
// Sniffer's methods return is one.
type interfaceError struct {
	name string
	err  error
}

func (e *interfaceError) Error() string {
	return fmt.Sprintf("capture: interface %q: %s", e.name, strings.TrimPrefix(e.err.Error(), "capture: "))
}

func (e *interfaceError) Unwrap() error { return e.err }

// onInterface wraps err so that it names the interface, unless it already does.
func onInterface(name string, err error) error {
	var ie *interfaceError
	if err == nil || errors.As(err, &ie) {
		return err
	}
	return &interfaceError{name: name, err: err}
}

// ifaceName is the name SniffConfig.Interface stands for.
func ifaceName(cfg SniffConfig) string {
	if cfg.Interface == "" {
		return AnyInterface
	}
	return cfg.Interface
}

// check validates cfg without touching the system and returns the compiled filter and the
// snap length to use.
func (cfg SniffConfig) check() (Filter, int, error) {
	expr := cfg.Filter
	if expr == "" {
		expr = DefaultFilter
	}
	f, err := CompileFilter(expr)
	if err != nil {
		return Filter{}, 0, err
	}
	snap := cfg.SnapLen
	if snap == 0 {
		snap = DefaultSnapLen
	}
	if snap < ipv4MinHeader || snap > 65535 {
		return Filter{}, 0, fmt.Errorf("capture: snap length %d out of range %d..65535", cfg.SnapLen, ipv4MinHeader)
	}
	if ifaceName(cfg) == AnyInterface && cfg.Promiscuous {
		return Filter{}, 0, fmt.Errorf("capture: promiscuous mode needs a named interface, not %q", ifaceName(cfg))
	}
	return f, snap, nil
}

// NewSniffer opens the AF_PACKET socket, attaches the filter before binding (so no unfiltered
// packet is ever queued) and binds it to the interface. It must run in the network namespace
// to sniff in. Every error names the interface; if it does not exist the error wraps
// ErrNoInterface.
func NewSniffer(cfg SniffConfig) (*Sniffer, error) {
	s, err := newSniffer(cfg)
	if err != nil {
		return nil, onInterface(ifaceName(cfg), err)
	}
	return s, nil
}

func newSniffer(cfg SniffConfig) (*Sniffer, error) {
	f, snap, err := cfg.check()
	if err != nil {
		return nil, err
	}
	name := ifaceName(cfg)
	ifi := &net.Interface{Name: name}
	if name != AnyInterface {
		if ifi, err = interfaceByName(name); err != nil {
			return nil, err
		}
	}
	opts := ProgramOptions{SnapLen: uint32(snap), AnyDirection: cfg.AnyDirection}
	if cfg.AnyDirection {
		if opts.Loopback, err = loopbackIndexes(); err != nil {
			return nil, err
		}
	}
	prog, err := f.Program(opts)
	if err != nil {
		return nil, err
	}
	raw, err := assemble(prog)
	if err != nil {
		return nil, err
	}
	// Protocol 0 binds the socket to the interface without receiving anything yet: setup
	// binds it again for every protocol once the ring exists, because setting up a ring
	// would discard what the socket had queued.
	conn, err := packet.Listen(ifi, packet.Datagram, 0, &packet.Config{Filter: raw})
	if err != nil {
		return nil, fmt.Errorf("capture: sniff: %w", err)
	}
	s := &Sniffer{conn: conn, dec: newDecoder(f, time.Now), name: name, pend: make([]Packet, 0, pendSize)}
	if err := s.setup(cfg, snap, ifi.Index); err != nil {
		_ = conn.Close()
		if s.ring != nil {
			_ = s.ring.close()
		}
		return nil, err
	}
	s.readFn = func(fd uintptr) bool {
		s.rerr = s.fill(int(fd))
		return s.rerr != unix.EAGAIN
	}
	return s, nil
}

// interfaceByName finds the interface called name in the current network namespace; if
// there is none the error wraps ErrNoInterface.
func interfaceByName(name string) (*net.Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("capture: list interfaces: %w", err)
	}
	for i := range ifs {
		if ifs[i].Name == name {
			return &ifs[i], nil
		}
	}
	return nil, fmt.Errorf("capture: %w", ErrNoInterface)
}

// setup sets promiscuous mode, maps the receive ring and starts receiving on interface index
// ifindex (0 for every interface).
func (s *Sniffer) setup(cfg SniffConfig, snap, ifindex int) error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("capture: sniff: %w", err)
	}
	s.rc = rc
	if cfg.Promiscuous {
		if err := s.conn.SetPromiscuous(true); err != nil {
			return fmt.Errorf("capture: promiscuous mode: %w", err)
		}
	}
	size := cfg.ReadBuffer
	if size <= 0 {
		size = DefaultRingSize
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if s.ring, serr = newRing(int(fd), snap, size); serr != nil {
			return
		}
		var proto [2]byte
		binary.BigEndian.PutUint16(proto[:], unix.ETH_P_ALL)
		sa := &unix.SockaddrLinklayer{Protocol: binary.NativeEndian.Uint16(proto[:]), Ifindex: ifindex}
		if serr = unix.Bind(int(fd), sa); serr != nil {
			serr = fmt.Errorf("capture: sniff: bind: %w", serr)
		}
	})
	if err != nil {
		return fmt.Errorf("capture: sniff: %w", err)
	}
	return serr
}

// loopbackIndexes lists the loopback interfaces of the current network namespace.
func loopbackIndexes() ([]uint32, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("capture: list interfaces: %w", err)
	}
	var idx []uint32
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			idx = append(idx, uint32(ifi.Index))
		}
	}
	return idx, nil
}

// Filter returns the compiled filter in use.
func (s *Sniffer) Filter() Filter { return s.dec.filter }

// Read blocks until a packet passes the filter and parses. After Close the error wraps
// net.ErrClosed; if the interface went down it wraps ErrInterfaceDown (and unix.ENETDOWN);
// other errors come from the socket.
func (s *Sniffer) Read() (Packet, error) {
	for {
		if s.closed.Load() {
			return Packet{}, s.readError(net.ErrClosed)
		}
		if s.next < len(s.pend) {
			p := s.pend[s.next]
			s.pend[s.next] = Packet{}
			s.next++
			return p, nil
		}
		s.pend, s.next = s.pend[:0], 0
		err := s.rc.Read(s.readFn)
		if err == nil {
			err = s.rerr
		}
		if err != nil {
			return Packet{}, s.readError(err)
		}
	}
}

// fill moves packets that pass the filter (and the screen) from the ring into s.pend, up to
// pendSize of them, copying their payloads and handing the frames back. It looks at most at
// scanLimit frames, so a flood the screen settles neither holds back the packets it has kept
// nor keeps Close waiting. If the ring is empty it returns the socket's pending error (ENETDOWN
// when the interface went down), or EAGAIN. It runs inside rc.Read, which holds the socket
// open, so the ring cannot be unmapped meanwhile.
func (s *Sniffer) fill(fd int) error {
	now := time.Now() // the batch's Packet.Time
	scanned := 0
	for len(s.pend) < cap(s.pend) && scanned < scanLimit {
		b, ok := s.ring.next()
		if !ok {
			break
		}
		scanned++
		s.keep(b, now)
		s.ring.release()
	}
	if len(s.pend) > 0 || scanned == scanLimit {
		return nil // Read returns what was kept, or comes back for more
	}
	serr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return err
	case serr != 0:
		return syscall.Errno(serr)
	}
	return unix.EAGAIN
}

// keep appends the packet in b, read at now, to s.pend, with its payload copied, unless the
// decoder rejects it or holds it as a fragment, or the screen settles it.
func (s *Sniffer) keep(b []byte, now time.Time) {
	p, fresh, ok := s.dec.decode(b)
	if !ok {
		return
	}
	p.Time = now
	if s.screen != nil && s.screen(p) {
		return
	}
	if !fresh {
		p.Payload = s.payloads.copy(p.Payload)
	}
	s.pend = append(s.pend, p)
}

// Waiting implements Backlog: a packet taken from the ring and not yet returned, or a frame
// the kernel has handed over (no system call).
func (s *Sniffer) Waiting() bool {
	if s.next < len(s.pend) {
		return true
	}
	waiting := true
	// Inside Control the socket stays open, so the ring stays mapped.
	if s.rc.Control(func(uintptr) { waiting = s.ring.ready() }) != nil {
		return true
	}
	return waiting
}

// Screen implements Screener. The screen runs inside Read, on the payload in the ring.
func (s *Sniffer) Screen(f func(Packet) bool) { s.screen = f }

// readError wraps a socket error for Read.
func (s *Sniffer) readError(err error) error {
	switch {
	case s.closed.Load():
		err = fmt.Errorf("sniff: %w", net.ErrClosed)
	case errors.Is(err, unix.ENETDOWN):
		err = fmt.Errorf("sniff: %w: %w", ErrInterfaceDown, err)
	default:
		err = fmt.Errorf("sniff: %w", err)
	}
	return &interfaceError{name: s.name, err: err}
}

// Close closes the socket, unblocks Read and unmaps the ring. Closing twice is not an error.
func (s *Sniffer) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	// Closing the socket waits for a running rc.Read or rc.Control callback (fill, Waiting) to
	// return, and no later one starts; only then is the ring unmapped.
	err := s.conn.Close()
	if rerr := s.ring.close(); err == nil {
		err = rerr
	}
	if err != nil {
		return &interfaceError{name: s.name, err: fmt.Errorf("close sniffer: %w", err)}
	}
	return nil
}

// Stats returns the counters since the Sniffer opened: the kernel's PACKET_STATISTICS
// (Received, Dropped) and the packets Read rejected. It fails once the Sniffer is closed.
func (s *Sniffer) Stats() (SourceStats, error) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	ks, err := s.conn.Stats()
	if err != nil {
		return SourceStats{}, &interfaceError{name: s.name, err: fmt.Errorf("sniffer stats: %w", err)}
	}
	// PACKET_STATISTICS resets on every read; keep running totals.
	s.received += uint64(ks.Packets)
	s.dropped += uint64(ks.Drops)
	st := SourceStats{Received: s.received, Dropped: s.dropped}
	s.dec.stats(&st)
	return st, nil
}

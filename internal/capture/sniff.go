package capture

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"

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
	// including ones that appear later.
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
	// ReadBuffer sets the socket receive buffer in bytes (SO_RCVBUFFORCE, falling back to
	// SO_RCVBUF); 0 keeps the kernel default. A larger buffer rides out bursts.
	ReadBuffer int
}

// Sniffer is a passive Source: an AF_PACKET socket in cooked mode with a kernel BPF filter, so
// it sees packets before netfilter and the SPA port can stay closed. It needs CAP_NET_RAW.
//
// Read must be called from one goroutine at a time; Close may be called from any goroutine and
// unblocks Read. Read allocates only the returned payload; packets the kernel filter lets
// through but ParseIP or the filter's userspace check reject are counted and skipped.
type Sniffer struct {
	conn   *packet.Conn
	rc     syscall.RawConn
	filter Filter
	name   string
	batch  *batch

	// readFn fills batch and leaves its error in rerr; it is built once so that Read does not
	// allocate a closure.
	rerr   error
	readFn func(fd uintptr) bool

	closed   atomic.Bool
	rejected atomic.Uint64
	received uint64 // kernel counters, accumulated by Stats
	dropped  uint64
}

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
	conn, err := packet.Listen(ifi, packet.Datagram, unix.ETH_P_ALL, &packet.Config{Filter: raw})
	if err != nil {
		return nil, fmt.Errorf("capture: sniff: %w", err)
	}
	s := &Sniffer{conn: conn, filter: f, name: name, batch: newBatch(batchSize, snap)}
	if err := s.setup(cfg); err != nil {
		_ = conn.Close()
		return nil, err
	}
	s.readFn = func(fd uintptr) bool {
		s.rerr = s.batch.recv(int(fd))
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

func (s *Sniffer) setup(cfg SniffConfig) error {
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
	if cfg.ReadBuffer > 0 {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.ReadBuffer)
			if serr != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.ReadBuffer)
			}
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("capture: receive buffer: %w", err)
		}
	}
	return nil
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
func (s *Sniffer) Filter() Filter { return s.filter }

// Read blocks until a packet passes the filter and parses. After Close the error wraps
// net.ErrClosed; if the interface went down it wraps ErrInterfaceDown (and unix.ENETDOWN);
// other errors come from the socket.
func (s *Sniffer) Read() (Packet, error) {
	if s.closed.Load() {
		return Packet{}, s.readError(net.ErrClosed)
	}
	for {
		b, ok := s.batch.next()
		if !ok {
			err := s.rc.Read(s.readFn)
			if err == nil {
				err = s.rerr
			}
			if err != nil {
				return Packet{}, s.readError(err)
			}
			continue
		}
		p, err := ParseIP(b)
		if err != nil || !s.filter.Match(p) {
			s.rejected.Add(1)
			continue
		}
		p.Payload = bytes.Clone(p.Payload)
		return p, nil
	}
}

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

// Close closes the socket and unblocks Read. Closing twice is not an error.
func (s *Sniffer) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if err := s.conn.Close(); err != nil {
		return &interfaceError{name: s.name, err: fmt.Errorf("close sniffer: %w", err)}
	}
	return nil
}

// SniffStats are a Sniffer's counters since it opened.
type SniffStats struct {
	Received uint64 // packets the kernel filter accepted (Dropped included)
	Dropped  uint64 // accepted packets the kernel dropped because the receive buffer was full
	Rejected uint64 // accepted packets Read skipped (truncated, malformed, fragments)
}

// Stats returns the counters. It must not be called concurrently with itself.
func (s *Sniffer) Stats() (SniffStats, error) {
	ks, err := s.conn.Stats()
	if err != nil {
		return SniffStats{}, &interfaceError{name: s.name, err: fmt.Errorf("sniffer stats: %w", err)}
	}
	// PACKET_STATISTICS resets on every read; keep running totals.
	s.received += uint64(ks.Packets)
	s.dropped += uint64(ks.Drops)
	return SniffStats{Received: s.received, Dropped: s.dropped, Rejected: s.rejected.Load()}, nil
}

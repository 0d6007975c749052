package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// Link types (LINKTYPE_* of the pcap and pcapng formats, tcpdump.org/linktypes.html) that
// FileSource reads.
const (
	LinkNull     = 0   // BSD loopback: 4-byte address family in the writer's byte order
	LinkEthernet = 1   // EN10MB, with up to two VLAN tags
	LinkRaw      = 101 // raw IP; also read as 12 and 14, its DLT_RAW numbers on some systems
	LinkLoop     = 108 // OpenBSD loopback: 4-byte address family, big-endian
	LinkSLL      = 113 // Linux cooked capture v1 ("tcpdump -i any")
	LinkSLL2     = 276 // Linux cooked capture v2
	LinkIPv4     = 228
	LinkIPv6     = 229
)

// ErrFileFormat is wrapped by FileSource's errors about the file's content: not a pcap or
// pcapng file, an unsupported link type, a truncated or corrupt record.
var ErrFileFormat = errors.New("not a readable capture file")

// maxRecord bounds one record's captured length, so a corrupt length cannot make Read
// allocate gigabytes (pcapng's blocks are bounded the same way).
const maxRecord = 1 << 18

// FileSource is a Source reading packets from a pcap or pcapng capture file (PCAP_FILE,
// fwknopd's --pcap-file), so an operator can ask what a recorded knock would have done. Each
// record's link-layer header is removed (see the Link* constants), fragments are reassembled,
// and the filter is applied in userspace exactly as Sniffer.Read re-checks what its kernel
// program accepts. Every packet in the file counts, whatever its direction. Records of other
// link types or protocols are skipped and counted as rejected.
//
// Read must be called from one goroutine at a time; Stats and Close may be called from any.
type FileSource struct {
	f    io.ReadCloser
	r    *bufio.Reader
	buf  []byte // the current record
	path string
	dec  *decoder

	// pcap
	order binary.ByteOrder
	nanos bool
	link  uint32
	ng    bool
	// pcapng: the interfaces of the current section
	ifaces []ngIface

	last     time.Time // the current record's time; reassembly's clock
	lastRead time.Time // the time of the last packet Read returned
	mu       sync.Mutex
	received uint64
	closed   bool
}

type ngIface struct {
	link uint32
	unit time.Duration // one timestamp tick
}

var (
	_ Source  = (*FileSource)(nil)
	_ Statser = (*FileSource)(nil)
)

// NewFileSource opens the capture file at path and compiles filter ("" means DefaultFilter)
// with CompileFilter. Errors: the filter's (*FilterError), the file's opening, or
// ErrFileFormat when the file is neither pcap (microsecond or nanosecond, either byte order)
// nor pcapng, or has a link type FileSource does not read.
func NewFileSource(path, filter string) (*FileSource, error) {
	if filter == "" {
		filter = DefaultFilter
	}
	flt, err := CompileFilter(filter)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("capture: pcap file: %w", err)
	}
	return newFileSource(f, path, flt)
}

// newFileSource reads the capture in f, which it closes on failure and on Close.
func newFileSource(f io.ReadCloser, path string, flt Filter) (*FileSource, error) {
	s := &FileSource{f: f, r: bufio.NewReaderSize(f, 1<<16), path: path}
	s.dec = newDecoder(flt, func() time.Time { return s.last })
	if err := s.readHeader(); err != nil {
		f.Close()
		if errors.Is(err, io.EOF) && !errors.Is(err, ErrFileFormat) {
			err = fmt.Errorf("%w: file header cut short: %w", ErrFileFormat, err)
		}
		return nil, s.fail(err)
	}
	return s, nil
}

func (s *FileSource) fail(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w: %w", ErrFileFormat, err)
	}
	return fmt.Errorf("capture: pcap file %s: %w", s.path, err)
}

// Filter returns the compiled filter in use.
func (s *FileSource) Filter() Filter { return s.dec.filter }

// Time returns the capture time of the last packet Read returned.
func (s *FileSource) Time() time.Time { return s.lastRead }

func (s *FileSource) readHeader() error {
	var magic [4]byte
	if _, err := io.ReadFull(s.r, magic[:]); err != nil {
		return fmt.Errorf("%w: %w", ErrFileFormat, err)
	}
	switch binary.LittleEndian.Uint32(magic[:]) {
	case 0xa1b2c3d4:
		s.order = binary.LittleEndian
	case 0xa1b23c4d:
		s.order, s.nanos = binary.LittleEndian, true
	case 0xd4c3b2a1:
		s.order = binary.BigEndian
	case 0x4d3cb2a1:
		s.order, s.nanos = binary.BigEndian, true
	case 0x0a0d0d0a:
		s.ng = true
		return s.readSection()
	default:
		return fmt.Errorf("%w: magic %x", ErrFileFormat, magic)
	}
	var h [20]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		return err
	}
	s.link = s.order.Uint32(h[16:]) & 0x0fffffff // the top bits may carry the FCS length
	if !linkSupported(s.link) {
		return fmt.Errorf("%w: link type %d", ErrFileFormat, s.link)
	}
	return nil
}

func linkSupported(l uint32) bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, 12, 14, LinkLoop, LinkSLL, LinkSLL2, LinkIPv4, LinkIPv6:
		return true
	}
	return false
}

// Read returns the next packet in the file that passes the filter. At the end of the file the
// error wraps io.EOF; after Close it wraps net.ErrClosed; a damaged file gives an error
// wrapping ErrFileFormat.
func (s *FileSource) Read() (Packet, error) {
	for {
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return Packet{}, s.fail(net.ErrClosed)
		}
		frame, err := s.next()
		if err != nil {
			return Packet{}, s.fail(err)
		}
		s.mu.Lock()
		s.received++
		s.mu.Unlock()
		ipb, ok := s.stripLink(frame)
		if !ok {
			s.dec.rejected.Add(1)
			continue
		}
		p, fresh, ok := s.dec.decode(ipb)
		if !ok {
			continue
		}
		if !fresh {
			p.Payload = append([]byte(nil), p.Payload...)
		}
		s.lastRead = s.last
		return p, nil
	}
}

// next returns the next record's captured bytes (valid until the next call) and sets s.last
// and s.link.
func (s *FileSource) next() ([]byte, error) {
	if !s.ng {
		var h [16]byte
		if _, err := io.ReadFull(s.r, h[:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: record header cut short", ErrFileFormat)
			}
			return nil, err
		}
		sec, frac := s.order.Uint32(h[0:]), s.order.Uint32(h[4:])
		n := s.order.Uint32(h[8:])
		if n > maxRecord {
			return nil, fmt.Errorf("%w: record of %d bytes", ErrFileFormat, n)
		}
		unit := time.Microsecond
		if s.nanos {
			unit = time.Nanosecond
		}
		s.last = time.Unix(int64(sec), 0).Add(time.Duration(frac) * unit)
		return s.readN(int(n))
	}
	for {
		typ, body, err := s.block()
		if err != nil {
			return nil, err
		}
		switch typ {
		case 0x0a0d0d0a: // a new section
			if err := s.parseSection(body); err != nil {
				return nil, err
			}
		case 1: // interface description
			if len(body) < 8 {
				return nil, fmt.Errorf("%w: short interface block", ErrFileFormat)
			}
			ifc := ngIface{link: uint32(s.order.Uint16(body[0:])), unit: time.Microsecond}
			ifc.unit = ngResolution(s.order, body[8:], ifc.unit)
			s.ifaces = append(s.ifaces, ifc)
		case 6, 2: // enhanced packet, obsolete packet
			if len(body) < 20 {
				return nil, fmt.Errorf("%w: short packet block", ErrFileFormat)
			}
			id := int(s.order.Uint32(body[0:]))
			if typ == 2 {
				id = int(s.order.Uint16(body[0:]))
			}
			if id >= len(s.ifaces) {
				return nil, fmt.Errorf("%w: packet on undeclared interface %d", ErrFileFormat, id)
			}
			ts := uint64(s.order.Uint32(body[4:]))<<32 | uint64(s.order.Uint32(body[8:]))
			n := int(s.order.Uint32(body[12:]))
			if n > len(body)-20 {
				return nil, fmt.Errorf("%w: packet block cut short", ErrFileFormat)
			}
			ifc := s.ifaces[id]
			s.link = ifc.link
			s.last = time.Unix(0, 0).Add(time.Duration(ts) * ifc.unit)
			return body[20 : 20+n], nil
		case 3: // simple packet: interface 0, no time
			if len(body) < 4 || len(s.ifaces) == 0 {
				return nil, fmt.Errorf("%w: bad simple packet block", ErrFileFormat)
			}
			n := min(int(s.order.Uint32(body[0:])), len(body)-4)
			s.link = s.ifaces[0].link
			return body[4 : 4+n], nil
		}
	}
}

// ngResolution reads if_tsresol from an interface block's options.
func ngResolution(order binary.ByteOrder, opts []byte, def time.Duration) time.Duration {
	for len(opts) >= 4 {
		code, n := order.Uint16(opts), int(order.Uint16(opts[2:]))
		opts = opts[4:]
		if code == 0 || n > len(opts) {
			break
		}
		if code == 9 && n >= 1 { // if_tsresol
			v := opts[0]
			unit := time.Duration(0)
			switch {
			case v&0x80 == 0 && v <= 9:
				unit = time.Second
				for range v {
					unit /= 10
				}
			case v&0x80 != 0 && v&0x7f <= 30:
				unit = time.Second >> (v & 0x7f)
			}
			if unit > 0 {
				return unit
			}
		}
		opts = opts[(n+3)&^3:]
	}
	return def
}

// readSection reads a section header block whose type was already read.
func (s *FileSource) readSection() error {
	var lenb [4]byte
	if _, err := io.ReadFull(s.r, lenb[:]); err != nil {
		return err
	}
	var bom [4]byte
	if _, err := io.ReadFull(s.r, bom[:]); err != nil {
		return err
	}
	switch binary.LittleEndian.Uint32(bom[:]) {
	case 0x1a2b3c4d:
		s.order = binary.LittleEndian
	case 0x4d3c2b1a:
		s.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: pcapng byte-order magic %x", ErrFileFormat, bom)
	}
	total := int(s.order.Uint32(lenb[:]))
	if total < 28 || total > maxRecord || total%4 != 0 {
		return fmt.Errorf("%w: section header of %d bytes", ErrFileFormat, total)
	}
	_, err := s.readN(total - 12)
	return err
}

func (s *FileSource) parseSection(body []byte) error {
	if len(body) < 4 {
		return fmt.Errorf("%w: short section header", ErrFileFormat)
	}
	switch binary.LittleEndian.Uint32(body) {
	case 0x1a2b3c4d:
		s.order = binary.LittleEndian
	case 0x4d3c2b1a:
		s.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: pcapng byte-order magic %x", ErrFileFormat, body[:4])
	}
	s.ifaces = s.ifaces[:0]
	return nil
}

// block reads one pcapng block and returns its type and body (between the length fields).
// A section header's body starts with its byte-order magic, read in the new order.
func (s *FileSource) block() (uint32, []byte, error) {
	var h [8]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: block header cut short", ErrFileFormat)
		}
		return 0, nil, err
	}
	typ := s.order.Uint32(h[0:])
	total := s.order.Uint32(h[4:])
	if typ == 0x0a0d0d0a {
		// The length is in the new section's byte order: peek at its magic.
		m, err := s.r.Peek(4)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: section header cut short", ErrFileFormat)
		}
		if binary.LittleEndian.Uint32(m) == 0x1a2b3c4d {
			total = binary.LittleEndian.Uint32(h[4:])
		} else {
			total = binary.BigEndian.Uint32(h[4:])
		}
	}
	if total < 12 || total > maxRecord || total%4 != 0 {
		return 0, nil, fmt.Errorf("%w: block of %d bytes", ErrFileFormat, total)
	}
	b, err := s.readN(int(total) - 8)
	if err != nil {
		return 0, nil, err
	}
	return typ, b[:len(b)-4], nil
}

// readN reads n bytes into a buffer reused by the next call.
func (s *FileSource) readN(n int) ([]byte, error) {
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if _, err := io.ReadFull(s.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: record cut short", ErrFileFormat)
		}
		return nil, err
	}
	return b, nil
}

// stripLink returns the IP packet in a record of link type s.link.
func (s *FileSource) stripLink(b []byte) ([]byte, bool) {
	var ethertype uint16
	switch s.link {
	case LinkRaw, 12, 14, LinkIPv4, LinkIPv6:
		return b, len(b) > 0
	case LinkNull, LinkLoop:
		if len(b) < 4 {
			return nil, false
		}
		fam := binary.BigEndian.Uint32(b)
		if s.link == LinkNull && fam > 0xffff {
			fam = binary.LittleEndian.Uint32(b) // written in the other byte order
		}
		switch fam {
		case 2, 10, 24, 28, 30: // AF_INET; AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
			return b[4:], true
		}
		return nil, false
	case LinkEthernet:
		if len(b) < 14 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
		for range 2 { // 802.1Q / 802.1ad tags
			if (ethertype != 0x8100 && ethertype != 0x88a8) || len(b) < 4 {
				break
			}
			ethertype, b = binary.BigEndian.Uint16(b[2:]), b[4:]
		}
	case LinkSLL:
		if len(b) < 16 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case LinkSLL2:
		if len(b) < 20 {
			return nil, false
		}
		ethertype, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	default:
		return nil, false
	}
	if ethertype != 0x0800 && ethertype != 0x86dd {
		return nil, false
	}
	return b, true
}

// Stats returns the records read (Received), those skipped (Rejected: another link type or
// protocol, malformed, or filtered out) and the fragment counters. Dropped is always 0.
func (s *FileSource) Stats() (SourceStats, error) {
	s.mu.Lock()
	st := SourceStats{Received: s.received}
	s.mu.Unlock()
	s.dec.stats(&st)
	return st, nil
}

// Close closes the file. Closing twice is not an error.
func (s *FileSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("capture: pcap file %s: %w", s.path, err)
	}
	return nil
}

package firewall

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// One socket. When sesame's table carries NFT_TABLE_F_OWNER, the kernel lets only the netlink
// socket that created it change it, so every write goes through the single lasting socket that
// google/nftables opens for reads too. The library cannot put a table flag or an element
// expiration into its batches, so sesame builds every write transaction itself: the library
// encodes the messages it can (on a recording connection that never reaches the kernel), the
// few it cannot are built by hand (table.go, refresh.go), and sock.send frames them as one
// batch on the owning socket and collects the kernel's answers.

// nlConn is the part of *netlink.Conn that sock uses.
type nlConn interface {
	SendMessages([]netlink.Message) ([]netlink.Message, error)
	Receive() ([]netlink.Message, error)
	SetReadDeadline(time.Time) error
	SyscallConn() (syscall.RawConn, error)
}

// sock is sesame's netlink socket: lib for the library's reads, nl (the same socket) for writes,
// rec to encode messages with the library without sending them.
type sock struct {
	lib *nftables.Conn
	nl  nlConn
	rec *nftables.Conn
	buf []netlink.Message // what rec recorded since the last take

	// tx carries transactions: send frames them into wbuf and reads the answers into rbuf
	// itself, on nl's socket, which costs less than half the library's allocations and one
	// system call less per answer (a knock waits on one transaction). seq numbers the
	// messages.
	tx         wire
	wbuf, rbuf []byte
	seq        uint32

	sndbuf int // the send buffer fit set (0: the kernel's default, about 208 KiB)
}

// newSock opens the lasting connection (opts select the namespace or a test dial) and forces the
// socket open so nl is set.
func newSock(opts ...nftables.ConnOption) (*sock, error) {
	s := &sock{}
	keep := nftables.WithSockOptions(func(c *netlink.Conn) error {
		s.nl = c
		return nil
	})
	lib, err := nftables.New(append(opts, nftables.AsLasting(), keep)...)
	if err != nil {
		return nil, fmt.Errorf("open netlink: %w", err)
	}
	s.lib = lib
	if s.nl == nil {
		// A lasting Conn dials on first use; any read opens it.
		if _, err := lib.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
			lib.CloseLasting()
			return nil, fmt.Errorf("open netlink: %w", err)
		}
	}
	if s.nl == nil {
		lib.CloseLasting()
		return nil, errors.New("open netlink: the library did not hand out its socket")
	}
	if rc, err := s.nl.SyscallConn(); err == nil {
		s.tx = rawWire{rc}
	} else {
		s.tx = msgWire{s.nl} // a socket without a file descriptor: the library's test dial
	}
	s.rbuf = make([]byte, recvSize)
	s.rec, err = nftables.New(nftables.WithTestDial(s.record))
	if err != nil {
		lib.CloseLasting()
		return nil, fmt.Errorf("open recorder: %w", err)
	}
	return s, nil
}

// record is rec's fake kernel: it keeps the messages (without the batch delimiters) and
// acknowledges each.
func (s *sock) record(req []netlink.Message) ([]netlink.Message, error) {
	var acks []netlink.Message
	for _, m := range req {
		switch m.Header.Type {
		case unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_MSG_BATCH_END:
			continue
		}
		s.buf = append(s.buf, m)
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks = append(acks, netlink.Message{
				Header: netlink.Header{Length: 4, Type: netlink.Error, Sequence: m.Header.Sequence},
				Data:   []byte{0, 0, 0, 0},
			})
		}
	}
	return acks, nil
}

// take returns the messages queued on rec since the last take.
func (s *sock) take() ([]netlink.Message, error) {
	if err := s.rec.Flush(); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	out := s.buf
	s.buf = nil
	return out, nil
}

// send sends msgs as one transaction on the owning socket and waits for the kernel's verdict.
// Every message asks for an acknowledgement and none for an echo, so the kernel answers each
// with exactly one ack or error. After an error send still reads the rest of the transaction's
// answers (waiting up to a second for them: an aborted transaction's answers may trail the
// first error) and then drains, so no stale answer is left on the socket.
func (s *sock) send(msgs []netlink.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	first := s.seq + 1
	s.wbuf = s.frame(s.wbuf[:0], unix.NFNL_MSG_BATCH_BEGIN, netlink.Request, nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
	for _, m := range msgs {
		// No echo (the library asks for one on rules, to learn handles sesame does not use).
		flags := (m.Header.Flags | netlink.Request | netlink.Acknowledge) &^ netlink.Echo
		s.wbuf = s.frame(s.wbuf, uint16(m.Header.Type), flags, m.Data)
	}
	s.wbuf = s.frame(s.wbuf, unix.NFNL_MSG_BATCH_END, netlink.Request, nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES))
	if err := s.fit(len(s.wbuf)); err != nil {
		return err
	}
	err := s.tx.write(s.wbuf)
	if cap(s.wbuf) > keepWbuf {
		s.wbuf = nil // a takeover's megabytes are not kept for the grants after it
	}
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var failed error
	for got := 0; got < len(msgs); {
		acks, err := s.acks(first, s.seq)
		if err != nil {
			if failed != nil && isTimeout(err) {
				break // the rest never came: drain below
			}
			if failed == nil {
				failed = err
				if !isReply(err) {
					break
				}
				// The rest of a failed transaction's answers can come later (measured: ~100 ms
				// after the first, for a transaction with NAT chains); wait for all of them so
				// none is read as the answer to the next request.
				if s.nl.SetReadDeadline(time.Now().Add(time.Second)) != nil {
					break
				}
			}
		}
		got += acks
	}
	if failed != nil {
		s.drain()
	}
	return failed
}

// frame appends one netlink message (struct nlmsghdr in host order, then data, padded to 4
// bytes) to b, numbered with the socket's next sequence number.
func (s *sock) frame(b []byte, typ uint16, flags netlink.HeaderFlags, data []byte) []byte {
	if s.seq++; s.seq == 0 {
		s.seq = 1 // 0 stands for an answer without a number (acks)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, uint16(flags))
	b = binary.NativeEndian.AppendUint32(b, s.seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	b = append(b, data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// wire is what send writes a framed transaction to and reads the kernel's answers from.
type wire interface {
	// write sends b, one or more framed messages, in one datagram.
	write(b []byte) error
	// read reads one datagram of answers into b (truncated to len(b)) and returns its length.
	read(b []byte) (int, error)
}

// rawWire is the socket itself.
type rawWire struct{ rc syscall.RawConn }

func (w rawWire) write(b []byte) error {
	var serr error
	err := w.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	return err
}

func (w rawWire) read(b []byte) (int, error) {
	var n int
	var rerr error
	err := w.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b, 0)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// msgWire carries the same bytes over a connection's messages, for a socket without a file
// descriptor (the library's test dial): write parses the frames back into messages, read
// frames the answers again (an error answer as the NLMSG_ERROR it came as).
type msgWire struct{ nl nlConn }

func (w msgWire) write(b []byte) error {
	ms, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return err
	}
	out := make([]netlink.Message, len(ms))
	for i, m := range ms {
		out[i] = netlink.Message{Header: netlink.Header{Length: m.Header.Len, Type: netlink.HeaderType(m.Header.Type),
			Flags: netlink.HeaderFlags(m.Header.Flags), Sequence: m.Header.Seq, PID: m.Header.Pid},
			Data: bytes.Clone(m.Data)} // b is reused, and a test socket keeps what it was sent
	}
	_, err = w.nl.SendMessages(out)
	return err
}

func (w msgWire) read(b []byte) (int, error) {
	ms, err := w.nl.Receive()
	var oe *netlink.OpError
	if err != nil && errors.As(err, &oe) {
		var errno syscall.Errno
		if !errors.As(oe.Err, &errno) {
			return 0, err
		}
		ms = []netlink.Message{{Header: netlink.Header{Type: netlink.Error},
			Data: binary.NativeEndian.AppendUint32(nil, uint32(-int32(errno)))}}
	} else if err != nil {
		return 0, err
	}
	var out []byte
	for _, m := range ms {
		m.Header.Length = uint32(unix.NLMSG_HDRLEN + len(m.Data))
		mb, err := m.MarshalBinary()
		if err != nil {
			return 0, err
		}
		out = append(out, mb...)
	}
	return copy(b, out), nil
}

// keepWbuf is the largest transaction buffer send keeps for the next one (about 5,000 grants).
const keepWbuf = 256 << 10

// recvSize is how much of one answer acks reads: an error answer quotes the failed message,
// which can be large, but only its header and error code are read (the rest is discarded).
const recvSize = 64 << 10

// acks reads one datagram of answers and returns how many acknowledgements or errors it held
// for the messages numbered first to last (answers to earlier transactions, if any were left,
// are skipped; an answer numbered 0 comes from a test socket and counts), and the first error
// as a *netlink.OpError (what the library returns for one), or the socket's error wrapped (a
// timeout after SetReadDeadline).
func (s *sock) acks(first, last uint32) (int, error) {
	n, err := s.tx.read(s.rbuf)
	if err != nil {
		return 0, fmt.Errorf("receive: %w", err)
	}
	count, failed := 0, error(nil)
	for b := s.rbuf[:n]; len(b) >= unix.NLMSG_HDRLEN; {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		seq := binary.NativeEndian.Uint32(b[8:12])
		ours := seq == 0 || seq-first <= last-first
		if binary.NativeEndian.Uint16(b[4:6]) == unix.NLMSG_ERROR && len(b) >= unix.NLMSG_HDRLEN+4 && ours {
			count++
			if code := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); code != 0 && failed == nil {
				failed = &netlink.OpError{Op: "receive", Err: syscall.Errno(-code)}
			}
		}
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break // truncated: the rest of this datagram was not read
		}
		b = b[l:]
	}
	return count, failed
}

// isReply reports whether err is the kernel's answer to one message (a netlink error reply).
func isReply(err error) bool {
	var oe *netlink.OpError
	return errors.As(err, &oe) && oe.Err != nil && !isTimeout(err)
}

// defaultSndbuf is a send size every kernel's default buffer takes (net.core.wmem_default is
// 208 KiB on Debian; the kernel doubles what is set).
const defaultSndbuf = 160 << 10

// fit grows the socket's send buffer when one transaction is larger than it: the kernel takes a
// batch in one sendmsg (it is one transaction) and refuses one larger than the buffer with
// EMSGSIZE, so taking over a table with 100,000 live grants needs megabytes. SO_SNDBUFFORCE
// (CAP_NET_ADMIN, which sesame has) passes net.core.wmem_max.
func (s *sock) fit(size int) error {
	if size+size/8+1024 <= max(s.sndbuf, defaultSndbuf) {
		return nil
	}
	rw, ok := s.tx.(rawWire)
	if !ok {
		return nil // a test socket
	}
	want := max(2*size, 1<<20)
	var serr error
	if err := rw.rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, want)
	}); err != nil {
		return fmt.Errorf("send buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("send buffer of %d bytes for a %d-byte transaction: %w", want, size, serr)
	}
	s.sndbuf = want
	return nil
}

// drain discards answers still queued after a failed transaction. A read whose deadline has
// passed times out without reading, so each read gets its own short deadline (one for the whole
// loop ran out while a large transaction's answers were still queued).
func (s *sock) drain() {
	defer s.nl.SetReadDeadline(time.Time{})
	for i := 0; i < 1<<16; i++ {
		if s.nl.SetReadDeadline(time.Now().Add(2*time.Millisecond)) != nil {
			return
		}
		_, err := s.nl.Receive()
		if err != nil && isTimeout(err) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// close closes the socket. With an owned table that is what hands the table back to the kernel
// (it stays, ownerless, with NFT_TABLE_F_PERSIST).
func (s *sock) close() error { return s.lib.CloseLasting() }

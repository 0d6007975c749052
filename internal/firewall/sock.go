package firewall

import (
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
}

// sock is sesame's netlink socket: lib for the library's reads, nl (the same socket) for writes,
// rec to encode messages with the library without sending them.
type sock struct {
	lib *nftables.Conn
	nl  nlConn
	rec *nftables.Conn
	buf []netlink.Message // what rec recorded since the last take

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
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: netlink.Request},
		Data: nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)})
	for _, m := range msgs {
		// No echo (the library asks for one on rules, to learn handles sesame does not use).
		m.Header.Flags = (m.Header.Flags | netlink.Request | netlink.Acknowledge) &^ netlink.Echo
		m.Header.Sequence = 0 // the socket numbers them
		batch = append(batch, m)
	}
	batch = append(batch, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: netlink.Request},
		Data: nfgen(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES)})
	if err := s.fit(batch); err != nil {
		return err
	}
	if _, err := s.nl.SendMessages(batch); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	var first error
	for got := 0; got < len(msgs); {
		replies, err := s.nl.Receive()
		if err != nil {
			if first != nil && isTimeout(err) {
				break // the rest never came: drain below
			}
			if first == nil {
				first = err
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
			got++
			continue
		}
		for _, r := range replies {
			if r.Header.Type == netlink.Error {
				got++
			}
		}
	}
	if first != nil {
		s.drain()
	}
	return first
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
func (s *sock) fit(batch []netlink.Message) error {
	size := 0
	for _, m := range batch {
		size += 16 + len(m.Data) + 4 // header, data, alignment
	}
	if size+size/8+1024 <= max(s.sndbuf, defaultSndbuf) {
		return nil
	}
	sc, ok := s.nl.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil // a test socket
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("send buffer: %w", err)
	}
	want := max(2*size, 1<<20)
	var serr error
	if err := rc.Control(func(fd uintptr) {
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

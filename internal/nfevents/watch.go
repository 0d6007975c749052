package nfevents

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// DefaultReadBuffer is the receive buffer Watch asks for when Config.ReadBuffer is 0: room for
// the events of tens of thousands of changed objects between two reads.
const DefaultReadBuffer = 4 << 20

// maxDrain bounds the datagrams one Next reads after the first, so a steady stream of changes
// cannot keep it from returning.
const maxDrain = 64

// Config configures Watch.
type Config struct {
	// NetNSFd is an open file descriptor of the network namespace to watch; 0 watches the
	// namespace of the calling thread.
	NetNSFd int
	// ReadBuffer is the socket's receive buffer in bytes; 0 means DefaultReadBuffer. It is set
	// with SO_RCVBUFFORCE (which ignores net.core.rmem_max and needs CAP_NET_ADMIN), falling
	// back to SO_RCVBUF. The kernel doubles the value and enforces a minimum of a few KiB.
	ReadBuffer int
}

// Watcher receives the nftables events of one network namespace from the NFNLGRP_NFTABLES
// multicast group. Its socket only listens: it sends nothing to the kernel and never changes
// the ruleset (sesame's one writing socket is in internal/firewall). Next must not be called
// concurrently with itself; Close may be called at any time.
//
// Open the Watcher before reading the state it guards, so that no change falls between the
// read and the first event.
type Watcher struct {
	recv  receiver
	close func() error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// raw, if set, sees every received message before it is parsed (tests record golden
	// messages with it). The message's Data is only valid during the call.
	raw func(netlink.Message)
}

// A receiver reads one datagram of netlink messages. With wait it blocks until one arrives;
// without, it returns errEmpty when none is queued.
type receiver func(wait bool) ([]netlink.Message, error)

var errEmpty = errors.New("nothing queued")

var (
	_ Source = (*Watcher)(nil)
	_ Source = (*Fake)(nil)
)

// errClosed is returned by Next after Close.
var errClosed = fmt.Errorf("nfevents: closed: %w", net.ErrClosed)

// Watch opens a NETLINK_NETFILTER socket in cfg's namespace, joins NFNLGRP_NFTABLES and sets
// its receive buffer. Errors wrap the failing system call's error.
func Watch(cfg Config) (*Watcher, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{
		NetNS:  cfg.NetNSFd,
		Groups: 1 << (unix.NFNLGRP_NFTABLES - 1),
	})
	if err != nil {
		return nil, fmt.Errorf("nfevents: dial netfilter netlink: %w", err)
	}
	size := cfg.ReadBuffer
	if size == 0 {
		size = DefaultReadBuffer
	}
	rc, err := c.SyscallConn()
	if err == nil {
		err = setReadBuffer(rc, c, size)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("nfevents: set receive buffer to %d bytes: %w", size, err)
	}
	r := &sockReader{rc: rc, buf: make([]byte, 64<<10)}
	return newWatcher(r.recv, c.Close), nil
}

func newWatcher(recv receiver, close func() error) *Watcher {
	return &Watcher{recv: recv, close: close}
}

// setReadBuffer sets SO_RCVBUFFORCE, or SO_RCVBUF where that is not permitted.
func setReadBuffer(rc syscall.RawConn, c *netlink.Conn, size int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	if errors.Is(serr, unix.EPERM) {
		return c.SetReadBuffer(size)
	}
	if serr != nil {
		return fmt.Errorf("setsockopt SO_RCVBUFFORCE: %w", serr)
	}
	return nil
}

// Next blocks until the kernel delivers events and returns them together with every event
// already queued behind them (up to 64 datagrams), so a consumer that acts once per call
// coalesces a burst. The batch is never empty. Each transaction's events end with a NewGen,
// which the kernel sends in a datagram of its own: it may come in this batch or the next.
//
// An overflow of the receive buffer (ENOBUFS) becomes an Overrun event in the batch, not an
// error, and so does a message that fails to decode, whose news is lost the same way. After
// Close, Next returns an error wrapping net.ErrClosed; other errors wrap the receive error.
func (w *Watcher) Next() ([]Event, error) {
	var evs []Event
	lost := false
	overrun := func() {
		if !lost {
			evs, lost = append(evs, Event{Kind: Overrun}), true
		}
	}
	for wait, drained := true, 0; ; {
		if w.closed.Load() {
			return nil, errClosed
		}
		msgs, err := w.recv(wait)
		switch {
		case err == nil:
		case w.closed.Load():
			return nil, errClosed
		case errors.Is(err, unix.ENOBUFS):
			overrun()
		case !wait:
			// Nothing more queued (errEmpty), or a failure the next blocking receive reports.
			return evs, nil
		default:
			return nil, fmt.Errorf("nfevents: receive: %w", err)
		}
		for _, m := range msgs {
			if w.raw != nil {
				w.raw(m)
			}
			ev, ok, err := Parse(m)
			switch {
			case err != nil:
				overrun()
			case ok:
				evs = append(evs, ev)
			}
		}
		if len(evs) > 0 { // from now on only take what is already queued
			wait = false
			if drained++; drained > maxDrain {
				return evs, nil
			}
		}
	}
}

// Close closes the socket and makes a blocked or later Next return an error wrapping
// net.ErrClosed. Calls after the first return the first call's result.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		if err := w.close(); err != nil {
			w.closeErr = fmt.Errorf("nfevents: close: %w", err)
		}
	})
	return w.closeErr
}

// sockReader reads whole datagrams from the non-blocking netlink socket behind rc.
type sockReader struct {
	rc  syscall.RawConn
	buf []byte
}

// recv implements receiver. Datagrams not sent by the kernel (netlink port 0) are dropped.
func (s *sockReader) recv(wait bool) ([]netlink.Message, error) {
	var (
		n    int
		from unix.Sockaddr
		rerr error
	)
	read := func(fd uintptr) bool {
		for {
			// Learn the datagram's length (MSG_TRUNC), grow the buffer, then take it.
			n, _, rerr = unix.Recvfrom(int(fd), nil, unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT)
			if rerr == nil {
				if n > len(s.buf) {
					s.buf = make([]byte, n)
				}
				n, from, rerr = unix.Recvfrom(int(fd), s.buf, unix.MSG_DONTWAIT)
			}
			if rerr != unix.EINTR {
				break
			}
		}
		return !(wait && rerr == unix.EAGAIN)
	}
	var err error
	if wait {
		err = s.rc.Read(read)
	} else {
		err = s.rc.Control(func(fd uintptr) { read(fd) })
	}
	switch {
	case err != nil:
		return nil, err
	case rerr == unix.EAGAIN:
		return nil, errEmpty
	case rerr != nil:
		return nil, fmt.Errorf("recvfrom: %w", rerr)
	}
	if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
		return nil, nil
	}
	raw, err := syscall.ParseNetlinkMessage(s.buf[:n])
	if err != nil {
		// A datagram the kernel sent but that does not split into messages: its news is lost.
		return nil, fmt.Errorf("split datagram of %d bytes: %w", n, unix.ENOBUFS)
	}
	msgs := make([]netlink.Message, len(raw))
	for i, r := range raw {
		msgs[i] = netlink.Message{
			Header: netlink.Header{
				Length:   r.Header.Len,
				Type:     netlink.HeaderType(r.Header.Type),
				Flags:    netlink.HeaderFlags(r.Header.Flags),
				Sequence: r.Header.Seq,
				PID:      r.Header.Pid,
			},
			Data: r.Data,
		}
	}
	return msgs, nil
}

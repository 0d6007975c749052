package capture

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkWatcher is the kernel's LinkWatcher: an rtnetlink socket subscribed to RTMGRP_LINK
// for events, and a second one for RTM_GETLINK queries. Both belong to the network namespace
// NewLinkWatcher runs in, whichever goroutine later uses them.
type NetlinkWatcher struct {
	events  *netlink.Conn
	query   *netlink.Conn
	pending []netlink.Message // received, not yet returned by Next
	closed  atomic.Bool
}

var _ LinkWatcher = (*NetlinkWatcher)(nil)

// linkEventBuffer is the event socket's receive buffer in bytes: room for a few thousand
// link messages, so a burst of changes on a busy host rarely overruns it (an overrun is
// reported as ErrLinkEventsLost, never silently).
const linkEventBuffer = 1 << 20

// NewLinkWatcher subscribes to the link events of the current network namespace.
func NewLinkWatcher() (*NetlinkWatcher, error) {
	ev, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		return nil, fmt.Errorf("capture: link events: rtnetlink: %w", err)
	}
	_ = ev.SetReadBuffer(linkEventBuffer) // best effort: the default works, with more overruns
	q, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		ev.Close()
		return nil, fmt.Errorf("capture: link queries: rtnetlink: %w", err)
	}
	return &NetlinkWatcher{events: ev, query: q}, nil
}

// Next returns the next RTM_NEWLINK or RTM_DELLINK event. A kernel queue overrun (ENOBUFS)
// or an undecodable message is an error wrapping ErrLinkEventsLost; after Close the error
// wraps net.ErrClosed.
func (w *NetlinkWatcher) Next() (LinkEvent, error) {
	for {
		for len(w.pending) > 0 {
			m := w.pending[0]
			w.pending = w.pending[1:]
			t := uint16(m.Header.Type)
			if t != unix.RTM_NEWLINK && t != unix.RTM_DELLINK {
				continue
			}
			ev, err := parseLinkMessage(t, m.Data)
			if err != nil {
				return LinkEvent{}, fmt.Errorf("capture: link events: %w: %w", ErrLinkEventsLost, err)
			}
			return ev, nil
		}
		msgs, err := w.events.Receive()
		switch {
		case w.closed.Load():
			return LinkEvent{}, fmt.Errorf("capture: link events: %w", net.ErrClosed)
		case errors.Is(err, unix.ENOBUFS):
			return LinkEvent{}, fmt.Errorf("capture: link events: %w: %w", ErrLinkEventsLost, err)
		case err != nil:
			return LinkEvent{}, fmt.Errorf("capture: link events: %w", err)
		}
		w.pending = msgs
	}
}

// Link asks the kernel for the link called name. A name longer than IFNAMSIZ-1 bytes cannot
// exist, so it is reported as absent.
func (w *NetlinkWatcher) Link(name string) (LinkEvent, bool, error) {
	if name == "" || len(name) >= unix.IFNAMSIZ {
		return LinkEvent{}, false, nil
	}
	msgs, err := w.query.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.RTM_GETLINK), Flags: netlink.Request},
		Data:   appendLinkRequest(nil, name),
	})
	switch {
	case errors.Is(err, unix.ENODEV):
		return LinkEvent{}, false, nil
	case err != nil:
		return LinkEvent{}, false, fmt.Errorf("capture: interface %q: rtnetlink query: %w", name, err)
	}
	for _, m := range msgs {
		if uint16(m.Header.Type) != unix.RTM_NEWLINK {
			continue
		}
		ev, err := parseLinkMessage(unix.RTM_NEWLINK, m.Data)
		if err != nil {
			return LinkEvent{}, false, fmt.Errorf("capture: interface %q: rtnetlink reply: %w", name, err)
		}
		return ev, ev.Name == name, nil
	}
	return LinkEvent{}, false, fmt.Errorf("capture: interface %q: rtnetlink query: no RTM_NEWLINK in the reply", name)
}

// Close closes both sockets and unblocks Next. Closing twice is not an error.
func (w *NetlinkWatcher) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	err := errors.Join(w.events.Close(), w.query.Close())
	if err != nil {
		return fmt.Errorf("capture: close link watcher: %w", err)
	}
	return nil
}

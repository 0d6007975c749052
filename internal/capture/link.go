package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrLinkEventsLost is wrapped by LinkWatcher.Next's error when events were dropped (the
// kernel's queue overran, or one could not be decoded): links may have changed unseen, so
// the caller should re-read the state it cares about with Link and call Next again.
var ErrLinkEventsLost = errors.New("link events lost")

// LinkEvent is the state of one network interface, as an rtnetlink RTM_NEWLINK or
// RTM_DELLINK message reports it.
type LinkEvent struct {
	Name  string
	Index int // changes when a link is deleted and created again under the same name
	// Up is IFF_UP: the link is administratively up. AF_PACKET sockets bound to a link get
	// ENETDOWN when it goes down and receive nothing until it is up again, so this is the
	// state a sniffer waits for. A link that is up without carrier is Up (and not Running):
	// a socket bound to it stays valid and sees packets once the carrier returns.
	Up bool
	// Running is IFF_RUNNING: up with carrier (operational state up or unknown).
	Running bool
	// OperState is IFLA_OPERSTATE (RFC 2863); OperUnknown when the message has none.
	OperState OperState
	// Gone is set for RTM_DELLINK: the link was deleted or moved to another namespace.
	Gone bool
}

// OperState is a link's RFC 2863 operational state (IF_OPER_* in linux/if.h).
type OperState uint8

// The operational states.
const (
	OperUnknown OperState = iota
	OperNotPresent
	OperDown
	OperLowerLayerDown
	OperTesting
	OperDormant
	OperUp
)

func (o OperState) String() string {
	names := [...]string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}
	if int(o) < len(names) {
		return names[o]
	}
	return fmt.Sprintf("operstate(%d)", uint8(o))
}

// LinkWatcher reports the network interfaces of one network namespace coming and going.
type LinkWatcher interface {
	// Next blocks until a link is created, changed or deleted and returns its new state.
	// An error wrapping ErrLinkEventsLost means events were dropped; Next may be called
	// again. After Close it returns an error wrapping net.ErrClosed. Next is called from one
	// goroutine at a time, and concurrently with Link.
	Next() (LinkEvent, error)
	// Link returns the current state of the link called name; ok is false if there is none.
	Link(name string) (ev LinkEvent, ok bool, err error)
	// Close unblocks Next and releases the watcher.
	Close() error
}

// ifinfomsg (linux/rtnetlink.h), in host byte order:
//
//	0  u8  family
//	1  u8  padding
//	2  u16 device type (ARPHRD_*)
//	4  s32 index
//	8  u32 flags (IFF_*)
//	12 u32 change mask
//
// followed by attributes, each a 4-byte header (u16 length including the header, u16 type)
// and its value, padded to 4 bytes.
const ifinfomsgLen = unix.SizeofIfInfomsg

// parseLinkMessage decodes the payload (after the netlink header) of an RTM_NEWLINK or
// RTM_DELLINK message of type typ. It needs IFLA_IFNAME; IFLA_OPERSTATE is optional. Other
// attributes are skipped.
func parseLinkMessage(typ uint16, b []byte) (LinkEvent, error) {
	var ev LinkEvent
	switch typ {
	case unix.RTM_NEWLINK:
	case unix.RTM_DELLINK:
		ev.Gone = true
	default:
		return LinkEvent{}, fmt.Errorf("link message: type %d is not RTM_NEWLINK or RTM_DELLINK", typ)
	}
	if len(b) < ifinfomsgLen {
		return LinkEvent{}, fmt.Errorf("link message: %d bytes, shorter than ifinfomsg (%d)", len(b), ifinfomsgLen)
	}
	ev.Index = int(int32(binary.NativeEndian.Uint32(b[4:8])))
	flags := binary.NativeEndian.Uint32(b[8:12])
	ev.Up = flags&unix.IFF_UP != 0
	ev.Running = flags&unix.IFF_RUNNING != 0
	haveName := false
	for a := b[ifinfomsgLen:]; len(a) > 0; {
		if len(a) < 4 {
			return LinkEvent{}, fmt.Errorf("link message: %d trailing bytes, shorter than an attribute header", len(a))
		}
		n := int(binary.NativeEndian.Uint16(a[0:2]))
		typ := binary.NativeEndian.Uint16(a[2:4]) & 0x3fff // without NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if n < 4 || n > len(a) {
			return LinkEvent{}, fmt.Errorf("link message: attribute %d length %d out of range 4..%d", typ, n, len(a))
		}
		v := a[4:n]
		switch typ {
		case unix.IFLA_IFNAME:
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			ev.Name, haveName = string(v), true
		case unix.IFLA_OPERSTATE:
			if len(v) < 1 {
				return LinkEvent{}, errors.New("link message: empty IFLA_OPERSTATE")
			}
			ev.OperState = OperState(v[0])
		}
		a = a[min(align4(n), len(a)):]
	}
	if !haveName || ev.Name == "" {
		return LinkEvent{}, fmt.Errorf("link message for index %d has no IFLA_IFNAME", ev.Index)
	}
	return ev, nil
}

// appendLinkRequest appends an RTM_GETLINK payload asking for the link called name: an empty
// ifinfomsg (index 0, so the kernel looks the name up) and IFLA_IFNAME.
func appendLinkRequest(b []byte, name string) []byte {
	b = append(b, make([]byte, ifinfomsgLen)...)
	return appendAttr(b, unix.IFLA_IFNAME, append([]byte(name), 0))
}

// appendAttr appends one netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	n := 4 + len(v)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	return append(b, make([]byte, align4(n)-n)...)
}

func align4(n int) int { return (n + 3) &^ 3 }

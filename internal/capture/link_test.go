package capture

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// marshalLink builds an RTM_NEWLINK (or, for Gone, RTM_DELLINK) payload for ev, as the kernel
// lays it out, with extra attributes placed before IFLA_IFNAME.
func marshalLink(ev LinkEvent, extra ...[]byte) (uint16, []byte) {
	typ := uint16(unix.RTM_NEWLINK)
	if ev.Gone {
		typ = unix.RTM_DELLINK
	}
	var flags uint32
	if ev.Up {
		flags |= unix.IFF_UP
	}
	if ev.Running {
		flags |= unix.IFF_RUNNING
	}
	b := make([]byte, ifinfomsgLen)
	binary.NativeEndian.PutUint16(b[2:], 1) // ARPHRD_ETHER
	binary.NativeEndian.PutUint32(b[4:], uint32(int32(ev.Index)))
	binary.NativeEndian.PutUint32(b[8:], flags|unix.IFF_BROADCAST|unix.IFF_MULTICAST)
	binary.NativeEndian.PutUint32(b[12:], 0xffffffff)
	for _, a := range extra {
		b = append(b, a...)
	}
	b = appendAttr(b, unix.IFLA_IFNAME, append([]byte(ev.Name), 0))
	b = appendAttr(b, unix.IFLA_OPERSTATE, []byte{byte(ev.OperState)})
	return typ, b
}

func TestParseLinkMessage(t *testing.T) {
	up := LinkEvent{Name: "veth1a", Index: 7, Up: true, Running: true, OperState: OperUp}
	typ, msg := marshalLink(up, appendAttr(nil, unix.IFLA_MTU, []byte{0xdc, 5, 0, 0}),
		appendAttr(nil, unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, []byte{4, 0, 2, 0}))
	if got, err := parseLinkMessage(typ, msg); err != nil || got != up {
		t.Fatalf("up link: %+v, %v; want %+v", got, err, up)
	}
	gone := LinkEvent{Name: "spa0", Index: 12, OperState: OperDown, Gone: true}
	if got, err := parseLinkMessage(marshalLink(gone)); err != nil || got != gone {
		t.Fatalf("deleted link: %+v, %v; want %+v", got, err, gone)
	}
	// No IFLA_OPERSTATE, a name without its NUL, the last attribute unpadded.
	b := make([]byte, ifinfomsgLen)
	binary.NativeEndian.PutUint32(b[4:], 3)
	binary.NativeEndian.PutUint32(b[8:], unix.IFF_UP)
	b = append(b, 7, 0, unix.IFLA_IFNAME, 0, 'e', 't', 'h')
	want := LinkEvent{Name: "eth", Index: 3, Up: true}
	if got, err := parseLinkMessage(unix.RTM_NEWLINK, b); err != nil || got != want {
		t.Fatalf("minimal message: %+v, %v; want %+v", got, err, want)
	}
	// The RTM_GETLINK request carries the same layout.
	if got, err := parseLinkMessage(unix.RTM_NEWLINK, appendLinkRequest(nil, "wg0")); err != nil || got.Name != "wg0" || got.Index != 0 {
		t.Fatalf("request: %+v, %v", got, err)
	}

	for _, c := range []struct {
		name string
		typ  uint16
		b    []byte
		want string
	}{
		{"wrong type", unix.RTM_NEWADDR, msg, "not RTM_NEWLINK"},
		{"short", unix.RTM_NEWLINK, msg[:ifinfomsgLen-1], "shorter than ifinfomsg"},
		{"no name", unix.RTM_NEWLINK, msg[:ifinfomsgLen], "no IFLA_IFNAME"},
		{"empty name", unix.RTM_NEWLINK, appendAttr(make([]byte, ifinfomsgLen), unix.IFLA_IFNAME, []byte{0}), "no IFLA_IFNAME"},
		{"truncated header", unix.RTM_NEWLINK, append(make([]byte, ifinfomsgLen), 8, 0), "attribute header"},
		{"length past end", unix.RTM_NEWLINK, append(make([]byte, ifinfomsgLen), 9, 0, 3, 0, 'a', 0, 0, 0), "out of range"},
		{"length below header", unix.RTM_NEWLINK, append(make([]byte, ifinfomsgLen), 2, 0, 3, 0), "out of range"},
		{"empty operstate", unix.RTM_NEWLINK, appendAttr(make([]byte, ifinfomsgLen), unix.IFLA_OPERSTATE, nil), "IFLA_OPERSTATE"},
	} {
		if ev, err := parseLinkMessage(c.typ, c.b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %+v, %v; want an error containing %q", c.name, ev, err, c.want)
		}
	}
}

func TestOperStateString(t *testing.T) {
	if OperUp.String() != "up" || OperLowerLayerDown.String() != "lowerlayerdown" || OperState(9).String() != "operstate(9)" {
		t.Fatal(OperUp, OperLowerLayerDown, OperState(9))
	}
}

// FuzzParseLinkMessage: no panic, and what parses survives marshal and parse unchanged.
func FuzzParseLinkMessage(f *testing.F) {
	for _, ev := range []LinkEvent{
		{Name: "veth1a", Index: 7, Up: true, Running: true, OperState: OperUp},
		{Name: "spa0", Index: -1, OperState: OperState(200), Gone: true},
	} {
		typ, b := marshalLink(ev)
		f.Add(typ, b)
	}
	f.Add(uint16(unix.RTM_NEWLINK), appendLinkRequest(nil, "lo"))
	f.Add(uint16(unix.RTM_NEWLINK), []byte{})
	f.Fuzz(func(t *testing.T, typ uint16, b []byte) {
		ev, err := parseLinkMessage(typ, b)
		if err != nil {
			return
		}
		if ev.Name == "" || strings.IndexByte(ev.Name, 0) >= 0 {
			t.Fatalf("name %q", ev.Name)
		}
		ev2, err := parseLinkMessage(marshalLink(ev))
		if err != nil || ev2 != ev {
			t.Fatalf("round trip: %+v, %v; want %+v", ev2, err, ev)
		}
	})
}

package tcpmd5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrNoKey is returned by a Dialer that has neither Key nor KeyFor.
var ErrNoKey = errors.New("tcpmd5: dialer has no key")

// A Dialer dials TCP connections whose SYN is signed with the key for the exact remote
// address. The zero value plus a Key is ready to use.
type Dialer struct {
	// Dialer supplies timeouts, local address and the rest. A Control or ControlContext
	// set here runs before the key is installed.
	net.Dialer

	// Key signs connections to every address, unless KeyFor is set.
	Key Key

	// KeyFor, if set, chooses the key per resolved remote address (called once per
	// connection attempt, before connect(2)). It is the seam for per-server or derived
	// keys.
	KeyFor func(remote netip.AddrPort) (Key, error)
}

// Dial connects to addr on network ("tcp", "tcp4" or "tcp6") with key.
func Dial(ctx context.Context, network, addr string, key Key) (net.Conn, error) {
	d := &Dialer{Key: key}
	return d.DialContext(ctx, network, addr)
}

// DialContext connects to addr on the named network with the Dialer's key.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.Key.IsZero() && d.KeyFor == nil {
		return nil, ErrNoKey
	}
	nd := d.Dialer
	userCtl, userCtlCtx := d.Dialer.Control, d.Dialer.ControlContext
	nd.Control = nil
	nd.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		switch {
		case userCtlCtx != nil:
			if err := userCtlCtx(ctx, network, address, c); err != nil {
				return err
			}
		case userCtl != nil:
			if err := userCtl(network, address, c); err != nil {
				return err
			}
		}
		return d.control(address, c)
	}
	conn, err := nd.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("tcpmd5: dial %s: %w", addr, err)
	}
	return conn, nil
}

func (d *Dialer) control(address string, c syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("tcpmd5: remote address %q: %w", address, err)
	}
	ap = netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port())
	key := d.Key
	if d.KeyFor != nil {
		if key, err = d.KeyFor(ap); err != nil {
			return fmt.Errorf("tcpmd5: key for %v: %w", ap, err)
		}
	}
	if key.IsZero() {
		return fmt.Errorf("%w for %v", ErrNoKey, ap)
	}
	a := ap.Addr().Unmap()
	p := netip.PrefixFrom(a, a.BitLen())
	var serr error
	err = c.Control(func(fd uintptr) {
		var fam int
		if fam, serr = fdFamily(int(fd)); serr == nil {
			serr = setFDKey(int(fd), fam, p, []byte(key.b), true)
		}
	})
	if err != nil {
		return fmt.Errorf("tcpmd5: socket control: %w", err)
	}
	return serr
}

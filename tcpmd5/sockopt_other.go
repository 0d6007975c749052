//go:build !linux

package tcpmd5

import (
	"net/netip"
	"syscall"
)

// TCP-MD5 keys are set with a Linux-only socket option. Elsewhere the package compiles,
// and Listen, FromListener, Dial and Dialer.DialContext fail with an error matching
// ErrNotSupported before any key would be set.

func fdFamily(int) (int, error) { return 0, ErrNotSupported }

func setFDKey(int, int, netip.Prefix, []byte, bool) error { return ErrNotSupported }

type rawSocket struct{ rc syscall.RawConn }

func newRawSocket(syscall.RawConn) (*rawSocket, error) { return nil, ErrNotSupported }

func (*rawSocket) v6() bool                       { return false }
func (*rawSocket) set(netip.Prefix, []byte) error { return ErrNotSupported }
func (*rawSocket) del(netip.Prefix) error         { return ErrNotSupported }

package tcpmd5

import (
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fdFamily returns the socket's address family (SO_DOMAIN). The family, not the address
// string, decides how keys are written: Go listens on "0.0.0.0:p" with an AF_INET6 socket.
func fdFamily(fd int) (int, error) {
	f, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return 0, fmt.Errorf("tcpmd5: getsockopt SO_DOMAIN: %w", err)
	}
	return f, nil
}

// md5sig builds the kernel struct for prefix p on a socket of the given family. A nil
// key means delete. exact selects plain TCP_MD5SIG (the exact address, no prefix flag).
func md5sig(family int, p netip.Prefix, key []byte, exact bool) (*unix.TCPMD5Sig, error) {
	var s unix.TCPMD5Sig
	a := p.Addr()
	switch family {
	case unix.AF_INET:
		if !a.Is4() {
			return nil, syscall.EINVAL
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&s.Addr))
		sa.Family = unix.AF_INET
		sa.Addr = a.As4()
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&s.Addr))
		sa.Family = unix.AF_INET6
		sa.Addr = a.As16() // IPv4 becomes ::ffff:a.b.c.d; the kernel stores it as AF_INET
	default:
		return nil, syscall.EAFNOSUPPORT
	}
	if !exact {
		s.Flags = unix.TCP_MD5SIG_FLAG_PREFIX
		s.Prefixlen = uint8(p.Bits())
	}
	s.Keylen = uint16(len(key))
	copy(s.Key[:], key)
	return &s, nil
}

// setFDKey installs (key != nil) or deletes (key == nil) the key for p on fd.
func setFDKey(fd, family int, p netip.Prefix, key []byte, exact bool) error {
	op := "set"
	if key == nil {
		op = "delete"
	}
	s, err := md5sig(family, p, key, exact)
	if err == nil {
		opt := unix.TCP_MD5SIG_EXT
		if exact {
			opt = unix.TCP_MD5SIG
		}
		err = unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, opt, s)
	}
	if err != nil {
		return &KeyError{Op: op, Prefix: p, Err: err}
	}
	return nil
}

// rawSocket installs listener keys through a syscall.RawConn.
type rawSocket struct {
	rc     syscall.RawConn
	family int
}

func newRawSocket(rc syscall.RawConn) (*rawSocket, error) {
	s := &rawSocket{rc: rc}
	var ferr error
	if err := rc.Control(func(fd uintptr) { s.family, ferr = fdFamily(int(fd)) }); err != nil {
		return nil, fmt.Errorf("tcpmd5: socket control: %w", err)
	}
	return s, ferr
}

func (s *rawSocket) v6() bool { return s.family == unix.AF_INET6 }

func (s *rawSocket) set(p netip.Prefix, key []byte) error {
	return s.do(p, key)
}

func (s *rawSocket) del(p netip.Prefix) error { return s.do(p, nil) }

func (s *rawSocket) do(p netip.Prefix, key []byte) error {
	var serr error
	if err := s.rc.Control(func(fd uintptr) { serr = setFDKey(int(fd), s.family, p, key, false) }); err != nil {
		return fmt.Errorf("tcpmd5: socket control: %w", err)
	}
	return serr
}

package tcpmd5

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// Errors that callers can branch on with errors.Is. A *KeyError matches both one of these
// and the kernel's errno.
var (
	// ErrInvalid: the kernel refused the key (EINVAL): wrong address family for the
	// socket, prefix too long for the family, or a bad key length.
	ErrInvalid = errors.New("key refused by the kernel (family, prefix or key length)")
	// ErrTooManyKeys: the socket's option memory is full (ENOMEM); about 960 keys fit
	// with the default net.core.optmem_max of 128 KiB.
	ErrTooManyKeys = errors.New("too many keys on one socket (kernel optmem_max)")
	// ErrNoSuchKey: there is no key for that prefix (ENOENT from the kernel, or the
	// listener's own table has no such rule).
	ErrNoSuchKey = errors.New("no key for that prefix")
	// ErrNotSupported: the kernel has no TCP-MD5 support (ENOPROTOOPT), or the OS is not
	// Linux (every entry point returns it there).
	ErrNotSupported = errors.New("TCP-MD5 not supported by this kernel or OS")
	// ErrBadPrefix: the prefix is not valid (zero value or host bits beyond 32/128).
	ErrBadPrefix = errors.New("invalid prefix")
)

// A KeyError reports a failed key operation on a socket.
type KeyError struct {
	Op     string       // "set" or "delete"
	Prefix netip.Prefix // the source prefix (exact /32 or /128 for dialers)
	Err    error        // usually a syscall.Errno
}

func (e *KeyError) Error() string {
	if s := sentinel(e.Err); s != nil {
		return fmt.Sprintf("tcpmd5: %s key for %v: %v: %v", e.Op, e.Prefix, s, e.Err)
	}
	return fmt.Sprintf("tcpmd5: %s key for %v: %v", e.Op, e.Prefix, e.Err)
}

// Unwrap returns the package sentinel matching the errno (if any) and the errno itself.
func (e *KeyError) Unwrap() []error {
	if s := sentinel(e.Err); s != nil {
		return []error{s, e.Err}
	}
	return []error{e.Err}
}

func sentinel(err error) error {
	switch {
	case errors.Is(err, syscall.EINVAL):
		return ErrInvalid
	case errors.Is(err, syscall.ENOMEM):
		return ErrTooManyKeys
	case errors.Is(err, syscall.ENOENT):
		return ErrNoSuchKey
	case errors.Is(err, syscall.ENOPROTOOPT):
		return ErrNotSupported
	}
	return nil
}

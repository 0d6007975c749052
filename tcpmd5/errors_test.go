package tcpmd5

import (
	"errors"
	"syscall"
	"testing"
)

func TestKeyErrorMatches(t *testing.T) {
	for errno, sent := range map[syscall.Errno]error{
		syscall.ENOMEM:      ErrTooManyKeys,
		syscall.EINVAL:      ErrInvalid,
		syscall.ENOENT:      ErrNoSuchKey,
		syscall.ENOPROTOOPT: ErrNotSupported,
	} {
		err := error(&KeyError{Op: "set", Prefix: AnyIPv4, Err: errno})
		if !errors.Is(err, sent) || !errors.Is(err, errno) {
			t.Errorf("%v does not match %v and %v", err, sent, errno)
		}
	}
	e := &KeyError{Op: "set", Prefix: AnyIPv4, Err: syscall.ENOMEM}
	if want := "tcpmd5: set key for 0.0.0.0/0: too many keys on one socket (kernel optmem_max): cannot allocate memory"; e.Error() != want {
		t.Errorf("message %q", e.Error())
	}
}

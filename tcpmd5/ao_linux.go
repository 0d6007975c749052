package tcpmd5

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TCP-AO (RFC 5925, Linux ≥ 6.7 with CONFIG_TCP_AO) is not implemented yet. This file
// holds the kernel ABI and a runtime probe so the work can start from a tested layout;
// nothing outside the package's tests calls it.

// errAONotSupported is returned by probeAO when the kernel lacks TCP-AO.
var errAONotSupported = errors.New("TCP-AO not supported by this kernel")

// TCP_AO_ADD_KEY (include/uapi/linux/tcp.h); x/sys does not define the TCP-AO options.
// The others are TCP_AO_DEL_KEY 39, TCP_AO_INFO 40, TCP_AO_GET_KEYS 41, TCP_AO_REPAIR 42.
const tcpAOAddKey = 38

// tcpAOAdd mirrors struct tcp_ao_add (288 bytes, 8-byte aligned).
type tcpAOAdd struct {
	_         [0]uint64 // sockaddr_storage alignment
	Addr      [128]byte // struct __kernel_sockaddr_storage
	AlgName   [64]byte  // e.g. "hmac(sha256)", NUL-terminated
	Ifindex   int32     // VRF, with TCP_AO_KEYF_IFINDEX
	Bits      uint32    // set_current:1, set_rnext:1, reserved:30
	Reserved2 uint16
	Prefix    uint8
	SndID     uint8
	RcvID     uint8
	Maclen    uint8
	Keyflags  uint8
	Keylen    uint8
	Key       [80]byte
}

// probeAO reports whether the kernel supports TCP-AO by adding a hmac(sha256) key for
// 0.0.0.0/0 to a throwaway socket that never connects: nil if it took the key,
// errAONotSupported (wrapping ENOPROTOOPT) if the kernel lacks TCP-AO, another error
// otherwise.
func probeAO() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("tcpmd5: probe socket: %w", err)
	}
	defer unix.Close(fd)
	var a tcpAOAdd
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&a.Addr))
	sa.Family = unix.AF_INET
	copy(a.AlgName[:], "hmac(sha256)")
	a.SndID, a.RcvID = 100, 100
	a.Keylen = 16
	copy(a.Key[:], "sesame-ao-probe!")
	b := unsafe.Slice((*byte)(unsafe.Pointer(&a)), unsafe.Sizeof(a))
	err = unix.SetsockoptString(fd, unix.IPPROTO_TCP, tcpAOAddKey, string(b))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOPROTOOPT):
		return fmt.Errorf("tcpmd5: %w: %w", errAONotSupported, err)
	}
	return fmt.Errorf("tcpmd5: TCP-AO probe: %w", err)
}

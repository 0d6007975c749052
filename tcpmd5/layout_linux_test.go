package tcpmd5

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestLayoutTCPMD5Sig(t *testing.T) {
	var s unix.TCPMD5Sig
	if got := unsafe.Sizeof(s); got != 216 {
		t.Errorf("sizeof(tcp_md5sig) = %d, want 216", got)
	}
	for name, c := range map[string][2]uintptr{
		"flags":     {unsafe.Offsetof(s.Flags), 128},
		"prefixlen": {unsafe.Offsetof(s.Prefixlen), 129},
		"keylen":    {unsafe.Offsetof(s.Keylen), 130},
		"ifindex":   {unsafe.Offsetof(s.Ifindex), 132},
		"key":       {unsafe.Offsetof(s.Key), 136},
	} {
		if c[0] != c[1] {
			t.Errorf("offsetof(%s) = %d, want %d", name, c[0], c[1])
		}
	}
}

func TestLayoutTCPAOAdd(t *testing.T) {
	var a tcpAOAdd
	if got := unsafe.Sizeof(a); got != 288 {
		t.Errorf("sizeof(tcp_ao_add) = %d, want 288", got)
	}
	if got := unsafe.Alignof(a); got != 8 {
		t.Errorf("alignof(tcp_ao_add) = %d, want 8", got)
	}
	for name, c := range map[string][2]uintptr{
		"addr":      {unsafe.Offsetof(a.Addr), 0},
		"alg_name":  {unsafe.Offsetof(a.AlgName), 128},
		"ifindex":   {unsafe.Offsetof(a.Ifindex), 192},
		"bits":      {unsafe.Offsetof(a.Bits), 196},
		"reserved2": {unsafe.Offsetof(a.Reserved2), 200},
		"prefix":    {unsafe.Offsetof(a.Prefix), 202},
		"sndid":     {unsafe.Offsetof(a.SndID), 203},
		"rcvid":     {unsafe.Offsetof(a.RcvID), 204},
		"maclen":    {unsafe.Offsetof(a.Maclen), 205},
		"keyflags":  {unsafe.Offsetof(a.Keyflags), 206},
		"keylen":    {unsafe.Offsetof(a.Keylen), 207},
		"key":       {unsafe.Offsetof(a.Key), 208},
	} {
		if c[0] != c[1] {
			t.Errorf("offsetof(%s) = %d, want %d", name, c[0], c[1])
		}
	}
}

// TestMD5SigEncoding checks the bytes handed to the kernel, as in linux/tcp.h.
func TestMD5SigEncoding(t *testing.T) {
	raw := func(s *unix.TCPMD5Sig) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(s)), 216) }

	// IPv4 prefix on an AF_INET6 socket: written v4-mapped, family AF_INET6.
	s, err := md5sig(unix.AF_INET6, netip.MustParsePrefix("10.0.0.0/8"), []byte("k1"), false)
	if err != nil {
		t.Fatal(err)
	}
	b := raw(s)
	if fam := binary.NativeEndian.Uint16(b[0:2]); fam != unix.AF_INET6 {
		t.Errorf("family %d, want AF_INET6", fam)
	}
	want := netip.MustParseAddr("::ffff:10.0.0.0").As16()
	if got := [16]byte(b[8:24]); got != want {
		t.Errorf("sin6_addr = %x, want %x", got, want)
	}
	if b[128] != unix.TCP_MD5SIG_FLAG_PREFIX || b[129] != 8 || binary.NativeEndian.Uint16(b[130:]) != 2 || string(b[136:138]) != "k1" {
		t.Errorf("flags/prefixlen/keylen/key = %d/%d/%d/%q", b[128], b[129], binary.NativeEndian.Uint16(b[130:]), b[136:138])
	}

	// AF_INET socket: sockaddr_in with the address at offset 4.
	s, _ = md5sig(unix.AF_INET, netip.MustParsePrefix("192.0.2.7/32"), []byte("k"), true)
	b = raw(s)
	if binary.NativeEndian.Uint16(b[0:2]) != unix.AF_INET || [4]byte(b[4:8]) != [4]byte{192, 0, 2, 7} || b[128] != 0 || b[129] != 0 {
		t.Errorf("AF_INET exact encoding wrong: % x", b[:8])
	}

	// Delete: keylen 0.
	s, _ = md5sig(unix.AF_INET, AnyIPv4, nil, false)
	if s.Keylen != 0 {
		t.Errorf("delete keylen %d", s.Keylen)
	}

	// IPv6 prefix on an AF_INET socket is refused before the kernel sees it.
	if _, err := md5sig(unix.AF_INET, AnyIPv6, []byte("k"), false); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("v6 on AF_INET: %v", err)
	}
}

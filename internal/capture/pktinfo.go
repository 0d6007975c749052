package capture

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// oobSize holds one IP_PKTINFO or IPV6_PKTINFO control message with room to spare.
const oobSize = 64

// enablePktinfo asks the kernel for each datagram's destination address (IP_PKTINFO for IPv4,
// IPV6_RECVPKTINFO for IPv6 and, on a dual-stack socket, for IPv4-mapped senders too). It
// reports whether the socket took either option.
func enablePktinfo(rc syscall.RawConn) bool {
	ok := false
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil {
			ok = true
		}
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil {
			ok = true
		}
	})
	return ok
}

// pktinfoDst returns the header destination address from the control messages in oob (a
// recvmsg(2) ancillary buffer in host byte order layout: struct cmsghdr, then in_pktinfo's
// ipi_addr at offset 8 or in6_pktinfo's ipi6_addr at offset 0), unmapped. It returns the zero
// Addr when oob holds neither or is malformed.
func pktinfoDst(oob []byte) netip.Addr {
	// struct cmsghdr { size_t cmsg_len; int cmsg_level, cmsg_type; }, aligned to size_t.
	const hdr = unix.SizeofCmsghdr
	const word = hdr - 8 // sizeof(size_t)
	for len(oob) >= hdr {
		var l int
		if word == 8 {
			l = int(min(binary.NativeEndian.Uint64(oob[0:8]), uint64(len(oob)+1)))
		} else {
			l = int(binary.NativeEndian.Uint32(oob[0:4]))
		}
		level := int32(binary.NativeEndian.Uint32(oob[word : word+4]))
		typ := int32(binary.NativeEndian.Uint32(oob[word+4 : word+8]))
		if l < hdr || l > len(oob) {
			return netip.Addr{}
		}
		data := oob[hdr:l]
		switch {
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr; }
			return netip.AddrFrom4([4]byte(data[8:12]))
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { struct in6_addr ipi6_addr; int ipi6_ifindex; }
			return netip.AddrFrom16([16]byte(data[0:16])).Unmap()
		}
		next := (l + word - 1) &^ (word - 1) // CMSG_ALIGN
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}

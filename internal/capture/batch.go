package capture

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many packets one recvmmsg(2) call may return. Under a flood this turns one
// system call per packet into one per batchSize packets; when idle it costs nothing extra.
const batchSize = 32

// batch is a set of preallocated receive buffers for recvmmsg(2), reused for the life of a
// Sniffer so that reading does not allocate.
type batch struct {
	hdrs []unix.Mmsghdr
	iovs []unix.Iovec
	bufs [][]byte
	n    int // packets received by the last recvmmsg
	i    int // next packet to hand out
}

func newBatch(size, snap int) *batch {
	b := &batch{
		hdrs: make([]unix.Mmsghdr, size),
		iovs: make([]unix.Iovec, size),
		bufs: make([][]byte, size),
	}
	slab := make([]byte, size*snap)
	for i := range b.hdrs {
		b.bufs[i] = slab[i*snap : (i+1)*snap : (i+1)*snap]
		b.iovs[i].Base = &b.bufs[i][0]
		b.iovs[i].SetLen(snap)
		b.hdrs[i].Hdr.Iov = &b.iovs[i]
		b.hdrs[i].Hdr.SetIovlen(1)
	}
	return b
}

// next returns the next buffered packet, if any.
func (b *batch) next() ([]byte, bool) {
	if b.i >= b.n {
		return nil, false
	}
	h := &b.hdrs[b.i]
	p := b.bufs[b.i][:min(int(h.Len), len(b.bufs[b.i]))]
	b.i++
	return p, true
}

// recv fills the batch from fd without blocking. It returns EAGAIN when nothing is queued.
func (b *batch) recv(fd int) error {
	b.n, b.i = 0, 0
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])),
			uintptr(len(b.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			b.n = int(n)
			return nil
		case unix.EINTR:
			continue
		default:
			return errno
		}
	}
}

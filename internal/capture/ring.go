package capture

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultRingSize is the size of a Sniffer's receive ring when SniffConfig.ReadBuffer is 0.
const DefaultRingSize = 1 << 20

// frameHeadroom is what the kernel puts before the IP header in a frame of a cooked socket:
// the tpacket2_hdr and the sockaddr_ll, aligned (80 bytes on Linux 6; 128 leaves slack).
const frameHeadroom = 128

// ringGeometry is the layout of a receive ring (struct tpacket_req): frames of frameSize
// bytes, perBlock to a block of blockSize bytes (a multiple of the page size), blocks blocks.
type ringGeometry struct {
	frameSize, perBlock, blockSize, blocks int
}

// geometry lays out a ring of about size bytes (at least one block) whose frames hold snap
// bytes of packet. Blocks are 64 KiB, or the power of two that holds one frame.
func geometry(snap, size, pageSize int) ringGeometry {
	g := ringGeometry{frameSize: (frameHeadroom + snap + unix.TPACKET_ALIGNMENT - 1) &^ (unix.TPACKET_ALIGNMENT - 1)}
	g.blockSize = max(1<<16, pageSize)
	for g.blockSize < g.frameSize {
		g.blockSize *= 2
	}
	g.perBlock = g.blockSize / g.frameSize
	g.blocks = max(1, (size+g.blockSize-1)/g.blockSize)
	return g
}

func (g ringGeometry) frames() int { return g.perBlock * g.blocks }

// ring is a TPACKET_V2 receive ring mapped from an AF_PACKET socket: the kernel copies each
// packet the socket filter accepts into the next free frame and hands the frame over by
// setting TP_STATUS_USER in its header; the reader hands it back with TP_STATUS_KERNEL. The
// reader makes no system call while packets are waiting, and the kernel never allocates a
// socket buffer for them. When every frame is taken the kernel drops the packet and counts it
// in PACKET_STATISTICS.
//
// TPACKET_V3 (variable-size packets in blocks) is not used: its reader is woken only when a
// block is full or the block timer (at least 1 ms) fires, which would delay a lone knock.
// libpcap uses V2 in immediate mode for the same reason.
//
// A ring is used by one goroutine at a time. Its memory stays mapped until close; the caller
// must make sure nothing reads it after that.
type ring struct {
	mem  []byte
	geo  ringGeometry
	head int // the next frame to look at
	off  int // its offset in mem
	slot int // its index in its block
}

// newRing sets up a receive ring on the packet socket fd and maps it. Packets the socket
// queued before have to be read with recv; the ring only holds later ones.
func newRing(fd, snap, size int) (*ring, error) {
	g := geometry(snap, size, os.Getpagesize())
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
		return nil, fmt.Errorf("capture: ring: PACKET_VERSION: %w", err)
	}
	req := unix.TpacketReq{Block_size: uint32(g.blockSize), Block_nr: uint32(g.blocks),
		Frame_size: uint32(g.frameSize), Frame_nr: uint32(g.frames())}
	if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("capture: ring of %d frames of %d bytes: PACKET_RX_RING: %w", g.frames(), g.frameSize, err)
	}
	mem, err := unix.Mmap(fd, 0, g.blockSize*g.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("capture: ring: mmap %d bytes: %w", g.blockSize*g.blocks, err)
	}
	r := &ring{mem: mem, geo: g}
	r.touch()
	return r, nil
}

// touch zeroes the ring (every frame stays TP_STATUS_KERNEL, as the kernel made it) before the
// socket is bound, so each page has been written through this mapping once. The first burst
// then does not pay the first access to each page, which a hypervisor with shadow page tables
// makes cost microseconds a page (about 10 ms for a 4 MiB ring on the machine bench/ ran on).
func (r *ring) touch() { clear(r.mem) }

// hdr returns the header of the head frame.
func (r *ring) hdr() *unix.Tpacket2Hdr {
	return (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[r.off]))
}

// next returns the packet in the head frame, starting at the network header, if the kernel
// has handed the frame over. The bytes stay valid until release. A frame whose offsets do not
// fit in it (never seen; the kernel fills them) comes back empty, so the caller rejects it.
func (r *ring) next() ([]byte, bool) {
	if !r.ready() {
		return nil, false
	}
	h := r.hdr()
	start, end := int(h.Net), int(h.Net)+int(h.Snaplen)
	if end > r.geo.frameSize {
		return []byte{}, true
	}
	frame := unsafe.Slice((*byte)(unsafe.Pointer(h)), r.geo.frameSize)
	return frame[start:end:end], true
}

// ready reports whether the kernel has handed over the head frame.
func (r *ring) ready() bool {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.hdr().Status)))&unix.TP_STATUS_USER != 0
}

// release hands the head frame back to the kernel and moves to the next one: the next slot of
// the block, or the first of the next block (blocks may end in slack that holds no frame).
func (r *ring) release() {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&r.hdr().Status)), unix.TP_STATUS_KERNEL)
	r.head++
	r.slot++
	r.off += r.geo.frameSize
	switch {
	case r.head == r.geo.frames():
		r.head, r.slot, r.off = 0, 0, 0
	case r.slot == r.geo.perBlock:
		r.slot, r.off = 0, (r.head/r.geo.perBlock)*r.geo.blockSize
	}
}

// close unmaps the ring.
func (r *ring) close() error {
	if err := unix.Munmap(r.mem); err != nil {
		return fmt.Errorf("capture: ring: munmap: %w", err)
	}
	return nil
}

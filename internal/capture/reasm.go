package capture

import (
	"container/list"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// FragLimits bound the memory and time fragment reassembly takes, as the kernel's
// net.ipv4.ipfrag_* sysctls do. When a limit would be passed, the oldest incomplete datagram
// (of the source, for the per-source limits) is dropped to make room.
type FragLimits struct {
	// Timeout is how long an incomplete datagram is kept from its first fragment (ipfrag_time).
	Timeout time.Duration
	// Memory is the bytes all incomplete datagrams may hold, overhead included
	// (ipfrag_high_thresh).
	Memory int
	// PerSource is the bytes the incomplete datagrams of one source address may hold; at
	// least one largest datagram.
	PerSource int
	// Datagrams is how many incomplete datagrams one source address may have at once.
	Datagrams int
}

// DefaultFragLimits are the kernel's defaults (30 s, 4 MiB), with 256 KiB and 64 datagrams per
// source so one sender cannot take all the room.
var DefaultFragLimits = FragLimits{Timeout: 30 * time.Second, Memory: 4 << 20, PerSource: 256 << 10, Datagrams: 64}

// What an incomplete datagram and each fragment cost beyond their data, in bytes.
const (
	fragQueueCost = 256
	fragPieceCost = 64
	// maxIPv4Datagram and maxIPv6Payload are the largest datagrams reassembly builds (no
	// jumbograms).
	maxIPv4Datagram = 65535
	maxIPv6Payload  = 65535
)

type fragKey struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8 // IPv4's protocol field (part of the IPv4 key, RFC 791)
}

type fragPiece struct {
	off, end int
	data     []byte
}

// fragQueue is one incomplete datagram.
type fragQueue struct {
	key     fragKey
	v6      bool
	created time.Time
	pieces  []fragPiece // sorted by offset, disjoint
	have    int         // data bytes held
	total   int         // the datagram's data length once the last fragment came, else -1
	header  []byte      // from the fragment at offset 0: the IPv4 header, or IPv6's unfragmentable part
	next    uint8       // IPv6: the first fragment's Fragment header Next Header
	prevNx  int         // IPv6: offset in header of the Next Header field to set to next
	dead    bool        // overlapping fragments came: discard the rest of this datagram (RFC 5722)
	cost    int
	age     *list.Element // in reassembler.order
}

// reassembler rebuilds IP datagrams from fragments with bounded memory and time: the per-flow
// Linux behaviour (ip_fragment.c, reassembly.c), in userspace. Exact duplicates of a held
// fragment are ignored; any other overlap discards the whole datagram, including fragments
// still to come, for IPv4 as for IPv6 (RFC 5722; Linux does the same for both). It is not
// safe for concurrent use.
type reassembler struct {
	lim    FragLimits
	queues map[fragKey]*fragQueue
	order  *list.List // *fragQueue, oldest first
	perSrc map[netip.Addr][]*fragQueue
	used   int
	// Counters: fragments discarded (overlap, limits, timeouts, malformed) and datagrams
	// completed.
	discarded, completed uint64
}

func newReassembler(lim FragLimits) *reassembler {
	return &reassembler{lim: lim, queues: map[fragKey]*fragQueue{}, order: list.New(),
		perSrc: map[netip.Addr][]*fragQueue{}}
}

// add takes the fragment v (parsed by parseView, frag set) received at now and returns the
// whole datagram (starting at the IP header, freshly allocated) when v completes one, else
// nil. The fragment's bytes are copied.
func (r *reassembler) add(v *ipView, now time.Time) []byte {
	r.expire(now)
	b := v.b
	var key fragKey
	var off, hdrLen int
	var more bool
	var data []byte
	if v.v6 {
		fo := v.l4
		of := binary.BigEndian.Uint16(b[fo+2:])
		off, more = int(of&0xfff8), of&1 != 0
		key = fragKey{src: v.src(), dst: v.dst(), id: binary.BigEndian.Uint32(b[fo+4:])}
		data, hdrLen = b[fo+fragHeader:v.end], fo
		if off == 0 && !more { // an atomic fragment (RFC 6946): whole on its own
			r.completed++
			return r.build6(b[:fo], v.prevNext, b[fo], data)
		}
		if hdrLen-ipv6Header+off+len(data) > maxIPv6Payload {
			r.discarded++
			return nil
		}
	} else {
		fl := binary.BigEndian.Uint16(b[6:8])
		off, more = int(fl&0x1fff)*8, fl&0x2000 != 0
		key = fragKey{src: v.src(), dst: v.dst(), id: uint32(binary.BigEndian.Uint16(b[4:6])), proto: b[9]}
		data, hdrLen = b[v.l4:v.end], v.l4
		if hdrLen+off+len(data) > maxIPv4Datagram {
			r.discarded++ // would build an oversized datagram ("ping of death")
			return nil
		}
	}
	end := off + len(data)
	if len(data) == 0 || (more && len(data)%8 != 0) {
		r.discarded++
		return nil
	}
	q := r.queues[key]
	if q == nil {
		q = r.newQueue(key, v.v6, now)
		if q == nil {
			r.discarded++
			return nil
		}
	}
	if q.dead {
		r.discarded++
		return nil
	}
	// Where the fragment goes, and whether it fits with what is held.
	i, _ := slices.BinarySearchFunc(q.pieces, off, func(p fragPiece, off int) int { return p.off - off })
	if i < len(q.pieces) && q.pieces[i].off == off && q.pieces[i].end == end {
		return nil // an exact duplicate, a retransmission: ignored
	}
	switch {
	case i > 0 && q.pieces[i-1].end > off, i < len(q.pieces) && q.pieces[i].off < end:
		r.kill(q)
		r.discarded++
		return nil
	case !more && q.total >= 0 && q.total != end,
		!more && len(q.pieces) > 0 && q.pieces[len(q.pieces)-1].end > end,
		more && q.total >= 0 && end > q.total:
		r.kill(q) // two different ends
		r.discarded++
		return nil
	}
	cost := fragPieceCost + len(data)
	if off == 0 {
		cost += hdrLen
	}
	if !r.fits(key.src, q, cost) {
		r.discarded++
		return nil
	}
	q.pieces = slices.Insert(q.pieces, i, fragPiece{off: off, end: end, data: append([]byte(nil), data...)})
	q.have += len(data)
	q.cost += cost
	r.used += cost
	if !more {
		q.total = end
	}
	if off == 0 {
		q.header = append([]byte(nil), b[:hdrLen]...)
		if v.v6 {
			q.next, q.prevNx = b[hdrLen], v.prevNext
		}
	}
	if q.total < 0 || q.have != q.total {
		return nil
	}
	r.remove(q)
	// The header came with the first fragment, the size checks with each: check the whole.
	if q.v6 && len(q.header)-ipv6Header+q.total > maxIPv6Payload || !q.v6 && len(q.header)+q.total > maxIPv4Datagram {
		r.discarded += uint64(len(q.pieces))
		return nil
	}
	r.completed++
	if q.v6 {
		return r.build6(q.header, q.prevNx, q.next, nil, q.pieces...)
	}
	return r.build4(q.header, q.pieces)
}

// build4 rebuilds an IPv4 datagram: the first fragment's header with the fragment offset and
// more-fragments flag cleared, the total length and the checksum set.
func (r *reassembler) build4(hdr []byte, pieces []fragPiece) []byte {
	n := len(hdr)
	for _, p := range pieces {
		n += len(p.data)
	}
	out := make([]byte, 0, n)
	out = append(out, hdr...)
	for _, p := range pieces {
		out = append(out, p.data...)
	}
	binary.BigEndian.PutUint16(out[2:], uint16(n))
	binary.BigEndian.PutUint16(out[6:], binary.BigEndian.Uint16(out[6:])&0x4000) // keep DF
	binary.BigEndian.PutUint16(out[10:], 0)
	binary.BigEndian.PutUint16(out[10:], ipChecksum(out[:len(hdr)]))
	return out
}

// build6 rebuilds an IPv6 datagram: the unfragmentable part with the Fragment header taken
// out (the Next Header that named it now names what the Fragment header named), then the
// fragmentable part, data or pieces.
func (r *reassembler) build6(unfrag []byte, prevNext int, next uint8, data []byte, pieces ...fragPiece) []byte {
	n := len(unfrag) + len(data)
	for _, p := range pieces {
		n += len(p.data)
	}
	out := make([]byte, 0, n)
	out = append(out, unfrag...)
	out = append(out, data...)
	for _, p := range pieces {
		out = append(out, p.data...)
	}
	out[prevNext] = next
	binary.BigEndian.PutUint16(out[4:], uint16(n-ipv6Header))
	return out
}

func ipChecksum(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// newQueue starts an incomplete datagram, dropping the source's oldest if it has too many;
// nil if there is no room even then.
func (r *reassembler) newQueue(key fragKey, v6 bool, now time.Time) *fragQueue {
	if qs := r.perSrc[key.src]; len(qs) >= r.lim.Datagrams {
		r.drop(qs[0])
	}
	if !r.fits(key.src, nil, fragQueueCost) {
		return nil
	}
	q := &fragQueue{key: key, v6: v6, created: now, total: -1, cost: fragQueueCost}
	r.queues[key] = q
	q.age = r.order.PushBack(q)
	r.perSrc[key.src] = append(r.perSrc[key.src], q)
	r.used += q.cost
	return q
}

// fits makes room for cost more bytes held for src by dropping datagrams other than keep,
// oldest first: the source's for the per-source limit, anyone's for the total. It reports
// whether there is room.
func (r *reassembler) fits(src netip.Addr, keep *fragQueue, cost int) bool {
	for {
		qs := r.perSrc[src]
		held := 0
		for _, o := range qs {
			held += o.cost
		}
		var victim *fragQueue
		switch {
		case held+cost > r.lim.PerSource:
			for _, o := range qs {
				if o != keep {
					victim = o
					break
				}
			}
		case r.used+cost > r.lim.Memory:
			for e := r.order.Front(); e != nil; e = e.Next() {
				if o := e.Value.(*fragQueue); o != keep {
					victim = o
					break
				}
			}
		default:
			return true
		}
		if victim == nil {
			return false
		}
		r.drop(victim)
	}
}

// expire drops the datagrams older than the timeout.
func (r *reassembler) expire(now time.Time) {
	for e := r.order.Front(); e != nil; e = r.order.Front() {
		q := e.Value.(*fragQueue)
		if now.Sub(q.created) < r.lim.Timeout {
			return
		}
		r.drop(q)
	}
}

// kill discards q's data but keeps it, dead, until it times out, so that the fragments of the
// datagram still to come are discarded too.
func (r *reassembler) kill(q *fragQueue) {
	r.discarded += uint64(len(q.pieces))
	r.used -= q.cost - fragQueueCost
	q.cost = fragQueueCost
	q.pieces, q.header, q.dead = nil, nil, true
}

// drop forgets q, counting its fragments as discarded.
func (r *reassembler) drop(q *fragQueue) {
	r.discarded += uint64(len(q.pieces))
	r.remove(q)
}

// remove forgets q.
func (r *reassembler) remove(q *fragQueue) {
	delete(r.queues, q.key)
	r.order.Remove(q.age)
	q.age = nil
	r.used -= q.cost
	qs := r.perSrc[q.key.src]
	if i := slices.Index(qs, q); i >= 0 {
		qs = slices.Delete(qs, i, i+1)
	}
	if len(qs) == 0 {
		delete(r.perSrc, q.key.src)
	} else {
		r.perSrc[q.key.src] = qs
	}
}

// pending returns the number of incomplete (or dead) datagrams and the bytes they hold.
func (r *reassembler) pending() (datagrams, bytes int) { return len(r.queues), r.used }

package capture

import (
	"sync"
	"sync/atomic"
	"time"
)

// decoder turns captured IP packets into Packets: it reassembles fragments, checks the filter
// in userspace and parses the upper-layer header. Sniffer and FileSource share it. decode runs
// on one goroutine at a time; the counters may be read from any.
type decoder struct {
	filter Filter
	now    func() time.Time // the time a fragment arrived; only called for fragments

	mu    sync.Mutex // guards reasm (decode against stats)
	reasm *reassembler

	rejected    atomic.Uint64
	fragments   atomic.Uint64
	reassembled atomic.Uint64
}

func newDecoder(f Filter, now func() time.Time) *decoder {
	return &decoder{filter: f, now: now, reasm: newReassembler(DefaultFragLimits)}
}

// decode returns the packet in b when it passes the filter. ok is false when b was rejected
// (counted) or held as a fragment. Unless fresh, the payload aliases b.
func (d *decoder) decode(b []byte) (p Packet, fresh, ok bool) {
	v, err := parseView(b)
	if err != nil {
		d.rejected.Add(1)
		return Packet{}, false, false
	}
	if v.frag {
		d.fragments.Add(1)
		d.mu.Lock()
		dg := d.reasm.add(&v, d.now())
		d.mu.Unlock()
		if dg == nil {
			return Packet{}, false, false
		}
		d.reassembled.Add(1)
		if v, err = parseView(dg); err != nil || v.frag {
			d.rejected.Add(1)
			return Packet{}, false, false
		}
		fresh = true
	}
	if !d.filter.match(&v) {
		d.rejected.Add(1)
		return Packet{}, false, false
	}
	if p, err = v.packet(); err != nil {
		d.rejected.Add(1)
		return Packet{}, false, false
	}
	return p, fresh, true
}

// stats fills in the decoder's counters.
func (d *decoder) stats(st *SourceStats) {
	st.Rejected = d.rejected.Load()
	st.Fragments = d.fragments.Load()
	st.Reassembled = d.reassembled.Load()
	d.mu.Lock()
	st.FragmentsDiscarded = d.reasm.discarded
	d.mu.Unlock()
}

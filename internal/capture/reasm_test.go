package capture

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// feed gives the fragments to r at now and returns the datagrams completed.
func feed(t testing.TB, r *reassembler, now time.Time, frags ...[]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range frags {
		v, err := parseView(f)
		if err != nil || !v.frag {
			t.Fatalf("not a fragment (%v): %x", err, f)
		}
		if dg := r.add(&v, now); dg != nil {
			out = append(out, dg)
		}
	}
	return out
}

// whole4 is what reassembling pkt's fragments gives: no DF (frag4 clears it), the checksum set.
func whole4(pkt []byte, id uint16) []byte {
	w := append([]byte(nil), pkt...)
	binary.BigEndian.PutUint16(w[4:], id)
	binary.BigEndian.PutUint16(w[6:], 0)
	binary.BigEndian.PutUint16(w[10:], 0)
	binary.BigEndian.PutUint16(w[10:], ipChecksum(w[:20]))
	return w
}

func shuffled(frags [][]byte, seed uint64) [][]byte {
	out := append([][]byte(nil), frags...)
	rand.New(rand.NewPCG(seed, 1)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func TestReassembleInAnyOrder(t *testing.T) {
	pl := bytes.Repeat(spaPayload(), 8) // 1440 bytes
	p4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	p6 := ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl))
	for seed := range uint64(20) {
		r := newReassembler(DefaultFragLimits)
		got := feed(t, r, t0, shuffled(frag4(p4, 200, uint16(seed)), seed)...)
		if len(got) != 1 || !bytes.Equal(got[0], whole4(p4, uint16(seed))) {
			t.Fatalf("seed %d: IPv4 reassembly gave %d datagrams", seed, len(got))
		}
		got = feed(t, r, t0, shuffled(frag6(p6, 200, uint32(seed)), seed)...)
		if len(got) != 1 || !bytes.Equal(got[0], p6) {
			t.Fatalf("seed %d: IPv6 reassembly gave %d datagrams %x", seed, len(got), got)
		}
		if n, b := r.pending(); n != 0 || b != 0 || r.completed != 2 {
			t.Fatalf("left %d datagrams, %d bytes, completed %d", n, b, r.completed)
		}
	}
}

func TestReassembleIPv6Headers(t *testing.T) {
	pl := bytes.Repeat([]byte("k"), 300)
	// A hop-by-hop header before the Fragment header (unfragmentable part) and a destination
	// options header after it (fragmentable part).
	whole := ip6ext(ProtoUDP, cli6, srv6, []uint8{extHopByHop, extDestOpts}, udpHdr(40000, 62201, pl))
	unfrag, fragmentable := whole[:48], whole[48:]
	var frags [][]byte
	for off := 0; off < len(fragmentable); off += 96 {
		end := min(off+96, len(fragmentable))
		g := append([]byte(nil), unfrag...)
		g[40] = extFragment // the hop-by-hop header now names the Fragment header
		fh := []byte{extDestOpts, 0, 0, 0, 0, 0, 0, 9}
		of := uint16(off)
		if end < len(fragmentable) {
			of |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], of)
		g = append(append(g, fh...), fragmentable[off:end]...)
		binary.BigEndian.PutUint16(g[4:], uint16(len(g)-40))
		frags = append(frags, g)
	}
	r := newReassembler(DefaultFragLimits)
	got := feed(t, r, t0, frags...)
	if len(got) != 1 || !bytes.Equal(got[0], whole) {
		t.Fatalf("got %x\nwant %x", got, whole)
	}
	p, err := ParseIP(got[0])
	if err != nil || !bytes.Equal(p.Payload, pl) || p.Dst.Port() != 62201 {
		t.Fatalf("parsed %v %v", p, err)
	}
	// An atomic fragment (offset 0, no more fragments) is whole on its own.
	atomic := frag6(ip6(ProtoUDP, cli6, srv6, udpHdr(1, 2, []byte("atom"))), 1000, 1)
	if got := feed(t, r, t0, atomic...); len(got) != 1 || !bytes.Equal(got[0], ip6(ProtoUDP, cli6, srv6, udpHdr(1, 2, []byte("atom")))) {
		t.Fatalf("atomic fragment: %x", got)
	}
}

func TestReassembleDuplicatesAndOverlaps(t *testing.T) {
	pl := bytes.Repeat([]byte("x"), 400)
	p4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	p6 := ip6(ProtoUDP, cli6, srv6, udpHdr(40000, 62201, pl))

	// An exact duplicate is a retransmission: ignored.
	r := newReassembler(DefaultFragLimits)
	f := frag4(p4, 128, 1)
	if got := feed(t, r, t0, f[0], f[1], f[1], f[2], f[0], f[3]); len(got) != 1 || !bytes.Equal(got[0], whole4(p4, 1)) {
		t.Fatalf("duplicates: %d datagrams", len(got))
	}

	// An overlap discards the datagram, and the fragments still to come (RFC 5722), until the
	// timeout.
	for _, v6 := range []bool{false, true} {
		r := newReassembler(DefaultFragLimits)
		var a, b [][]byte
		if v6 {
			a, b = frag6(p6, 128, 2), frag6(p6, 64, 2)
		} else {
			a, b = frag4(p4, 128, 2), frag4(p4, 64, 2)
		}
		if got := feed(t, r, t0, a[0], b[3]); len(got) != 0 { // b[3] is bytes 192..255: overlaps nothing held...
			t.Fatal("completed early")
		}
		if got := feed(t, r, t0, b[1]); len(got) != 0 { // ...b[1], bytes 64..127, overlaps a[0]
			t.Fatal("completed early")
		}
		if got := feed(t, r, t0.Add(time.Second), a...); len(got) != 0 {
			t.Fatalf("v6=%v: a datagram whose fragments overlapped was completed", v6)
		}
		if n, bytes := r.pending(); n != 1 || bytes != fragQueueCost {
			t.Fatalf("dead datagram: %d queues, %d bytes", n, bytes)
		}
		// After the timeout the identification may be used again.
		if got := feed(t, r, t0.Add(DefaultFragLimits.Timeout), a...); len(got) != 1 {
			t.Fatalf("v6=%v: not reassembled after the dead one timed out", v6)
		}
	}

	// Two different ends.
	r = newReassembler(DefaultFragLimits)
	short := frag4(ip4(ProtoUDP, cli4, srv4, 0, udpHdr(1, 2, pl[:200])), 128, 3)
	long := frag4(p4, 128, 3)
	if got := feed(t, r, t0, short[1], long[3], long[0], long[1], long[2]); len(got) != 0 {
		t.Fatal("datagram with two ends completed")
	}
}

func TestReassembleMalformed(t *testing.T) {
	pl := bytes.Repeat([]byte("y"), 300)
	p4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))
	r := newReassembler(DefaultFragLimits)
	// Not a multiple of 8 with more fragments to come.
	f := frag4(p4, 100, 4)
	if got := feed(t, r, t0, f...); len(got) != 0 || r.discarded == 0 {
		t.Fatalf("odd-sized fragments: %d datagrams, %d discarded", len(got), r.discarded)
	}
	// A fragment reaching past 65535 bytes ("ping of death").
	big := frag4(p4, 64, 5)
	last := big[len(big)-1]
	binary.BigEndian.PutUint16(last[6:], 0x1fff) // offset 65528
	d := r.discarded
	if got := feed(t, r, t0, last); len(got) != 0 || r.discarded != d+1 {
		t.Fatal("oversized fragment taken")
	}
}

func TestReassembleTimeout(t *testing.T) {
	p4 := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, bytes.Repeat([]byte("z"), 300)))
	f := frag4(p4, 128, 6)
	r := newReassembler(DefaultFragLimits)
	feed(t, r, t0, f[0], f[1])
	// Just before the timeout the datagram completes; from it on, it is forgotten.
	if got := feed(t, r, t0.Add(DefaultFragLimits.Timeout-time.Nanosecond), f[2]); len(got) != 1 {
		t.Fatal("not completed before the timeout")
	}
	feed(t, r, t0, f[0], f[1])
	if got := feed(t, r, t0.Add(DefaultFragLimits.Timeout), f[2]); len(got) != 0 {
		t.Fatal("completed with fragments older than the timeout")
	}
	if n, _ := r.pending(); n != 1 {
		t.Fatalf("%d datagrams pending, want the new one", n)
	}
}

func TestReassembleLimits(t *testing.T) {
	lim := FragLimits{Timeout: time.Minute, Memory: 64 << 10, PerSource: 16 << 10, Datagrams: 4}
	pl := bytes.Repeat([]byte("w"), 3000)
	knock := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, pl))

	// One source cannot hold more than Datagrams incomplete datagrams: the oldest go.
	r := newReassembler(lim)
	for id := range uint16(10) {
		feed(t, r, t0, frag4(knock, 1000, id)[0])
	}
	if n, _ := r.pending(); n != 4 {
		t.Fatalf("%d datagrams from one source, want 4", n)
	}
	// Nor more than PerSource bytes: a flood of first fragments from one source evicts its
	// own, not another source's.
	other := netip.MustParseAddr("10.99.0.3")
	kf := frag4(ip4(ProtoUDP, other, srv4, 0, udpHdr(40000, 62201, pl)), 1000, 77)
	feed(t, r, t0, kf[0])
	flood := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, bytes.Repeat([]byte("f"), 8000)))
	for id := range uint16(50) {
		feed(t, r, t0, frag4(flood, 4000, 100+id)[:2]...)
	}
	if got := feed(t, r, t0, kf[1:]...); len(got) != 1 {
		t.Fatal("another source's datagram was evicted by one source's flood")
	}
	// The total is bounded: many sources each under their limit evict the oldest datagrams.
	r = newReassembler(lim)
	for i := range 200 {
		src := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		feed(t, r, t0, frag4(ip4(ProtoUDP, src, srv4, 0, udpHdr(1, 2, pl)), 1000, 1)[0])
		if _, b := r.pending(); b > lim.Memory {
			t.Fatalf("%d bytes held, limit %d", b, lim.Memory)
		}
	}
	// A knock arriving during the flood is still reassembled.
	if got := feed(t, r, t0, frag4(knock, 1000, 999)...); len(got) != 1 {
		t.Fatal("knock lost under a many-source flood")
	}
}

// FuzzReassemble: whatever fragments arrive, the reassembler does not panic, stays within its
// limits, and returns only datagrams that parse with the fragments' addresses. A datagram cut
// into fragments given in any order, duplicates included, comes back whole exactly once.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte("hello, fragments"), uint8(8), uint64(1), false, []byte{})
	f.Add(bytes.Repeat([]byte("A"), 700), uint8(64), uint64(7), true, []byte{0x60, 0, 0, 0, 0, 8, 44, 64})
	f.Add(bytes.Repeat([]byte("B"), 200), uint8(3), uint64(3), false, []byte{0x45, 0, 0, 28, 0, 1, 0x20, 0})
	f.Add(bytes.Repeat([]byte("C"), 888), uint8(0), uint64(1), false, []byte{})
	lim := FragLimits{Timeout: time.Second, Memory: 32 << 10, PerSource: 8 << 10, Datagrams: 4}
	f.Fuzz(func(t *testing.T, payload []byte, size uint8, seed uint64, v6 bool, junk []byte) {
		if len(payload) > 4000 {
			return
		}
		r := newReassembler(lim)
		// Junk first: a hostile fragment with the same addresses.
		if v, err := parseView(junk); err == nil && v.frag {
			if dg := r.add(&v, t0); dg != nil {
				if _, err := parseView(dg); err != nil {
					t.Fatalf("reassembled junk does not parse: %v", err)
				}
			}
		}
		n := (int(size)%16 + 1) * 8
		var whole []byte
		var frags [][]byte
		if v6 {
			whole = ip6(ProtoUDP, cli6, srv6, udpHdr(1, 2, payload))
			frags = frag6(whole, n, 0xabcdef)
		} else {
			whole = ip4(ProtoUDP, cli4, srv4, 0, udpHdr(1, 2, payload))
			frags = frag4(whole, n, 0xabcd)
			whole = whole4(whole, 0xabcd)
			if len(frags) == 1 {
				return // not a fragment
			}
		}
		// What holding all of it costs: the queue, the header once, the data, and each piece
		// (the duplicate is ignored, so it costs nothing).
		need := fragQueueCost + len(whole) + len(frags)*fragPieceCost
		rng := rand.New(rand.NewPCG(seed, 2))
		frags = shuffled(append(frags, frags[rng.IntN(len(frags))]), seed)
		var got [][]byte
		for _, fr := range frags {
			v, err := parseView(fr)
			if err != nil || !v.frag {
				t.Fatalf("fragment does not parse: %v", err)
			}
			if dg := r.add(&v, t0.Add(time.Millisecond)); dg != nil {
				got = append(got, dg)
			}
			if _, b := r.pending(); b > lim.Memory {
				t.Fatalf("%d bytes held", b)
			}
		}
		if need > lim.PerSource {
			return // may legitimately not fit
		}
		if len(got) != 1 || !bytes.Equal(got[0], whole) {
			// The junk may have claimed the identification; then nothing or the junk's may
			// come out, but never a wrong datagram with our data.
			for _, g := range got {
				if bytes.Equal(g, whole) {
					return
				}
			}
			if len(junk) == 0 {
				t.Fatalf("got %d datagrams, want the whole one", len(got))
			}
		}
	})
}

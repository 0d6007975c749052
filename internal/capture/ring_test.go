package capture

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

func TestRingGeometry(t *testing.T) {
	for _, c := range []struct {
		snap, size, page int
		want             ringGeometry
	}{
		{1500, 1 << 20, 4096, ringGeometry{frameSize: 1632, perBlock: 40, blockSize: 1 << 16, blocks: 16}},
		{1500, 0, 4096, ringGeometry{frameSize: 1632, perBlock: 40, blockSize: 1 << 16, blocks: 1}},
		{1500, 1<<16 + 1, 4096, ringGeometry{frameSize: 1632, perBlock: 40, blockSize: 1 << 16, blocks: 2}},
		{20, 1 << 16, 4096, ringGeometry{frameSize: 160, perBlock: 409, blockSize: 1 << 16, blocks: 1}},
		{65535, 1 << 20, 4096, ringGeometry{frameSize: 65664, perBlock: 1, blockSize: 1 << 17, blocks: 8}},
		{1500, 1 << 20, 1 << 16, ringGeometry{frameSize: 1632, perBlock: 40, blockSize: 1 << 16, blocks: 16}},
		{1500, 1 << 20, 1 << 18, ringGeometry{frameSize: 1632, perBlock: 160, blockSize: 1 << 18, blocks: 4}},
	} {
		if g := geometry(c.snap, c.size, c.page); g != c.want {
			t.Errorf("geometry(snap %d, size %d, page %d) = %+v, want %+v", c.snap, c.size, c.page, g, c.want)
		}
	}
	// What the kernel's PACKET_RX_RING checks, for every snap length allowed.
	for snap := ipv4MinHeader; snap <= 65535; snap++ {
		g := geometry(snap, 1<<20, 4096)
		if g.frameSize%16 != 0 || g.frameSize < snap+80 || g.blockSize%4096 != 0 || g.perBlock < 1 ||
			g.perBlock*g.frameSize > g.blockSize {
			t.Fatalf("snap %d: geometry %+v", snap, g)
		}
	}
}

// TestIntegrationSnifferRingFull: with every frame of the ring taken the kernel drops packets
// and Stats counts them; the frames' packets are still read, and the ring takes packets again
// once they are.
func TestIntegrationSnifferRingFull(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc, ReadBuffer: 1}) // one block
	frames := geometry(DefaultSnapLen, 1, 4096).frames()
	const sent = 200
	f := newFloodSender(t, cli)
	if err := f.send(sent); err != nil {
		t.Fatal(err)
	}
	st := waitReceived(t, s, sent)
	if st.Dropped != sent-uint64(frames) || st.Rejected != 0 {
		t.Fatalf("stats %+v after %d packets into %d frames, want %d dropped", st, sent, frames, sent-frames)
	}
	for range frames {
		if p, err := s.Read(); err != nil || len(p.Payload) != 200 {
			t.Fatalf("Read: %d bytes, %v", len(p.Payload), err)
		}
	}
	if err := f.send(1); err != nil {
		t.Fatal(err)
	}
	if p, err := s.Read(); err != nil || len(p.Payload) != 200 {
		t.Fatalf("Read after the ring emptied: %d bytes, %v", len(p.Payload), err)
	}
	if st, err := s.Stats(); err != nil || st.Received != sent+1 || st.Dropped != sent-uint64(frames) {
		t.Fatalf("stats %+v, %v", st, err)
	}
}

// waitReceived waits until the sniffer's kernel counter has n packets (delivery over the
// veth may end in a softirq after the send returned) and returns the counters.
func waitReceived(t testing.TB, s *Sniffer, n uint64) SourceStats {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		st, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Received >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the kernel counted %d of %d packets", st.Received, n)
		}
	}
}

// TestIntegrationSnifferCloseUnderFlood: Close while Read is busy with a full ring ends Read
// with net.ErrClosed and unmaps the ring without the reader touching it afterwards (a fault
// would crash the test binary).
func TestIntegrationSnifferCloseUnderFlood(t *testing.T) {
	srv, cli := nstest.Pair(t)
	f := newFloodSender(t, cli)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				if f.send(64) != nil {
					return
				}
			}
		}
	}()
	for round := range 20 {
		s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc, ReadBuffer: 1 << 16})
		errc := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			for n := 0; ; n++ {
				if n == 100 {
					close(started)
				}
				if _, err := s.Read(); err != nil {
					errc <- err
					return
				}
			}
		}()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("round %d: Read: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("round %d: Read after Close: %v, want net.ErrClosed", round, err)
		}
	}
}

// TestRingWalk: release moves the head through every frame of every block in order, skipping
// the slack at the end of a block, and wraps to the first frame, twice round.
func TestRingWalk(t *testing.T) {
	for _, g := range []ringGeometry{geometry(1500, 4<<20, 4096), geometry(100, 1, 4096), geometry(70000, 1<<20, 4096)} {
		r := &ring{mem: make([]byte, g.blockSize*g.blocks), geo: g}
		for i := range 2 * g.frames() {
			f := i % g.frames()
			if want := (f/g.perBlock)*g.blockSize + (f%g.perBlock)*g.frameSize; r.head != f || r.off != want {
				t.Fatalf("%+v: step %d: head %d at %d, want frame %d at %d", g, i, r.head, r.off, f, want)
			}
			r.release()
		}
	}
}

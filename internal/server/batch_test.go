package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/spa"
)

// slowMany is a ManyGranter whose commits take a while (a cost model of a netlink
// transaction), so concurrent grants pile up.
type slowMany struct {
	fakeFirewall
	mu      sync.Mutex
	batches []int
	bad     netip.Addr // a batch containing this source fails
}

func (f *slowMany) GrantMany(ctx context.Context, gs []firewall.Grant) error {
	time.Sleep(2 * time.Millisecond)
	f.mu.Lock()
	f.batches = append(f.batches, len(gs))
	f.mu.Unlock()
	for _, g := range gs {
		if g.Src == f.bad {
			return errors.New("refused")
		}
	}
	for _, g := range gs {
		f.fakeFirewall.Grant(ctx, g)
	}
	return nil
}

func TestGroupCommit(t *testing.T) {
	fw := &slowMany{bad: netip.MustParseAddr("10.99.1.7")}
	codec := newFakeCodec()
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: fw, Cache: newFakeCache(), NewOpener: codec.opener,
		Workers: 8, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	src := newChanSource()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), src) }()
	const n = 64
	for i := 0; i < n; i++ {
		m := baseMessage()
		m.Message = fmt.Sprintf("10.99.1.%d,tcp/22", i)
		src.ch <- pkt("10.99.0.2", codec.add(m, keysA))
	}
	close(src.ch) // end of input: Run returns once every packet is settled
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v, want the source's io.EOF", err)
	}
	st := s.Stats()
	if st.Handled != n || st.ByReason[Granted] != n-1 || st.ByReason[FirewallError] != 1 || len(fw.list()) != n-1 {
		t.Errorf("stats %+v, %d grants", st, len(fw.list()))
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.batches) >= n {
		t.Errorf("%d commits for %d grants: no batching (%v)", len(fw.batches), n, fw.batches)
	}
	t.Logf("commit sizes: %v", fw.batches)
}

// TestBatcherBounds: concurrent requests are committed in batches of at most maxBatch grants
// (a larger request alone), each request exactly once, and each caller gets its own result.
func TestBatcherBounds(t *testing.T) {
	fw := &slowMany{bad: netip.MustParseAddr("10.98.0.1")}
	b := newBatcher(fw)
	sizes := []int{600, 600, 1500, 1, 400, 999, 2}
	errs := make([]error, len(sizes))
	var wg sync.WaitGroup
	for i, n := range sizes {
		wg.Go(func() {
			gs := make([]firewall.Grant, n)
			for j := range gs {
				gs[j] = firewall.Grant{Src: netip.AddrFrom4([4]byte{10, 97, byte(i), byte(j)}), Proto: 6, Port: uint16(j%60000 + 1), Timeout: time.Minute}
			}
			if i == 3 {
				gs[0].Src = fw.bad
			}
			errs[i] = b.grant(context.Background(), gs)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Errorf("request %d of %d grants: %v", i, sizes[i], err)
		}
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for _, n := range fw.batches {
		if n > maxBatch && n != 1500 {
			t.Errorf("a batch of %d grants", n)
		}
	}
	want := 0
	for i, n := range sizes {
		if i != 3 {
			want += n
		}
	}
	if got := len(fw.list()); got != want {
		t.Errorf("%d grants made, want %d (batches %v)", got, want, fw.batches)
	}
}

// panicMany panics in its first GrantMany and grants afterwards.
type panicMany struct {
	fakeFirewall
	calls atomic.Int32
}

func (f *panicMany) GrantMany(ctx context.Context, gs []firewall.Grant) error {
	if f.calls.Add(1) == 1 {
		panic("firewall exploded")
	}
	return nil
}

func newReq(gs []firewall.Grant) *grantReq {
	return &grantReq{gs: gs, done: make(chan struct{}), promote: make(chan struct{})}
}

// TestBatcherPanic: when the firewall panics in a commit, the leading caller sees the panic,
// the other requests of that batch fail with an error (their callers return it), the lead is
// handed on, and later grants still work.
func TestBatcherPanic(t *testing.T) {
	b := newBatcher(&panicMany{})
	g := []firewall.Grant{{Src: netip.MustParseAddr("10.97.0.1"), Proto: 6, Port: 22, Timeout: time.Minute}}
	// Two requests queued by workers that wait, then the leading worker's.
	queued := []*grantReq{newReq(g), newReq(g)}
	b.queue = append(b.queue, queued...)
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the leading caller did not see the panic")
			}
		}()
		b.grant(context.Background(), g)
	}()
	for i, q := range queued {
		if !q.settled() || q.err == nil {
			t.Fatalf("queued request %d after the panic: settled %v, err %v", i, q.settled(), q.err)
		}
	}
	if b.leading || len(b.queue) != 0 {
		t.Fatalf("after the panic: leading %v, %d queued", b.leading, len(b.queue))
	}
	if err := b.grant(context.Background(), g); err != nil {
		t.Fatalf("grant after the panic: %v", err)
	}

	// A worker whose own request is behind a batch that panics: the panic reaches it, its
	// request is withdrawn (not granted later by somebody else's commit), and the lead goes to
	// the next request.
	b = newBatcher(&panicMany{})
	big := make([]firewall.Grant, maxBatch)
	for i := range big {
		big[i] = firewall.Grant{Src: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), Proto: 6, Port: 22, Timeout: time.Minute}
	}
	older := newReq(big)
	b.queue = append(b.queue, older)
	b.leading = true // as if older's worker led; ours is promoted to lead below
	var own error
	go func() {
		b.mu.Lock()
		for len(b.queue) < 2 {
			b.mu.Unlock()
			time.Sleep(time.Millisecond)
			b.mu.Lock()
		}
		close(b.queue[1].promote) // promote the second request (ours) as a leader would
		b.mu.Unlock()
	}()
	func() {
		defer func() { recover() }()
		own = b.grant(context.Background(), g)
	}()
	if !older.settled() || older.err == nil || len(b.queue) != 0 || b.leading {
		t.Fatalf("after the panic: older settled %v err %v; %d queued, leading %v (own %v)", older.settled(), older.err, len(b.queue), b.leading, own)
	}
}

// chunkOpener is fakeOpener that records whether a wire it decodes lies in chunk.
type chunkOpener struct {
	fakeOpener
	chunk   []byte
	aliased *atomic.Bool
}

func (o chunkOpener) Decode(wire []byte) (*spa.Message, error) {
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(o.chunk)))
	if p := uintptr(unsafe.Pointer(unsafe.SliceData(wire))); p >= lo && p < lo+uintptr(len(o.chunk)) {
		o.aliased.Store(true)
	}
	return o.fakeOpener.Decode(wire)
}

// TestRunQueuedPayloadOwnCopy: a packet the reader hands to a worker carries a copy of its
// payload, not a slice of the source's buffer, so a queue of packets cannot keep the source's
// shared chunks (capture's arena) alive.
func TestRunQueuedPayloadOwnCopy(t *testing.T) {
	codec := newFakeCodec()
	w := codec.add(baseMessage(), keysA)
	chunk := make([]byte, 4096)
	wire := chunk[100 : 100+len(w) : 100+len(w)]
	copy(wire, w)
	var aliased atomic.Bool
	open := func(k spa.Keys) (Opener, error) {
		return chunkOpener{fakeOpener{codec, k}, chunk, &aliased}, nil
	}
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: &fakeFirewall{}, Cache: newFakeCache(),
		NewOpener: open, Workers: 2, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	src := newChanSource()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), src) }()
	src.ch <- pkt("10.99.0.2", wire)
	close(src.ch)
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v", err)
	}
	if st := s.Stats(); st.ByReason[Granted] != 1 {
		t.Fatalf("stats %+v, want the packet granted", st)
	}
	if aliased.Load() {
		t.Fatal("the worker decoded the source's buffer, not a copy")
	}
}

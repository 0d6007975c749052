package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// panicOpener panics on every packet.
type panicOpener struct{}

func (panicOpener) VerifyCheckedHMAC([]byte) ([]byte, error) { panic("opener exploded") }
func (panicOpener) Decode([]byte) (*spa.Message, error)      { panic("opener exploded") }
func newPanicOpener(spa.Keys) (Opener, error)                { return panicOpener{}, nil }
func countingOpener(n *atomic.Int32, c *fakeCodec) func(spa.Keys) (Opener, error) {
	return func(k spa.Keys) (Opener, error) { n.Add(1); return c.opener(k) }
}

// A panic is recovered, counted as InternalError, and logged once with its stack.
func TestHandlePanicLogsStack(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: e.fw, Cache: e.cache, NewOpener: newPanicOpener,
		Logger: e.log.logger(), Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	w := e.codec.add(baseMessage(), keysA)
	if res := s.Handle(context.Background(), pkt("10.99.0.2", w)); res.Reason != InternalError {
		t.Fatalf("reason %v, want InternalError", res.Reason)
	}
	logs := e.log.String()
	if strings.Count(logs, "\n") != 1 || !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, `panic="opener exploded"`) ||
		!strings.Contains(logs, "src=10.99.0.2") || !strings.Contains(logs, "pipeline_test.go") {
		t.Errorf("want one ERROR line with the panic, the source and a stack naming the panicking file:\n%s", logs)
	}
	// Run's reader recovers too and leaves the packet to Handle, which counts it once.
	src := newChanSource()
	s2, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: e.fw, NewOpener: newPanicOpener, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s2.Run(context.Background(), src) }()
	src.ch <- pkt("10.99.0.2", w)
	close(src.ch)
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v", err)
	}
	if st := s2.Stats(); st.Handled != 1 || st.ByReason[InternalError] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// blockingCache never answers before its context is done.
type blockingCache struct{ fakeCache }

func (*blockingCache) CheckAndAdd(ctx context.Context, _ string, _ time.Time, _ time.Duration) (bool, error) {
	<-ctx.Done()
	return false, ctx.Err()
}

// Every replay cache call has a deadline; a cache that misses it rejects the packet.
func TestReplayDeadlineFailsClosed(t *testing.T) {
	codec, fw := newFakeCodec(), &fakeFirewall{}
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: fw, Cache: &blockingCache{}, NewOpener: codec.opener,
		ReplayTimeout: time.Millisecond, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	res := s.Handle(context.Background(), pkt("10.99.0.2", codec.add(baseMessage(), keysA)))
	if res.Reason != InternalError || !errors.Is(res.Err, context.DeadlineExceeded) || len(fw.list()) != 0 {
		t.Errorf("result %+v, grants %v; want InternalError from the deadline and no grant", res, fw.list())
	}
}

// In test mode (-t) a replay is refused but nothing is recorded.
func TestTestModeRecordsNoDigest(t *testing.T) {
	p := basePolicy(baseStanza())
	p.TestMode = true
	e := newEnv(t, p)
	w := e.codec.add(baseMessage(), keysA)
	for i := range 2 {
		if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != Granted {
			t.Fatalf("try %d: %v", i, r.Reason)
		}
	}
	if e.cache.Len() != 0 {
		t.Errorf("test mode recorded %d digests", e.cache.Len())
	}
	e.cache.CheckAndAdd(withDeadline(t), spa.ReplayDigest(w), testNow, 0)
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != Replay {
		t.Errorf("cached packet in test mode: %v, want Replay", r.Reason)
	}
}

func withDeadline(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Reload builds each stanza's Opener once; packets reuse them. Keys spa refuses fail the
// reload and keep the old policy.
func TestReloadCompilesOpeners(t *testing.T) {
	var n atomic.Int32
	codec := newFakeCodec()
	s2 := baseStanza()
	s2.Num, s2.Keys = 2, keysB
	s, err := New(Config{Policy: basePolicy(baseStanza(), s2), Firewall: &fakeFirewall{}, NewOpener: countingOpener(&n, codec),
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		m := baseMessage()
		m.Message = fmt.Sprintf("10.99.0.%d,tcp/22", i+1)
		if r := s.Handle(context.Background(), pkt("10.99.0.2", codec.add(m, keysB))); r.Reason != Granted || r.Stanza != 2 {
			t.Fatalf("packet %d: %v stanza %d", i, r.Reason, r.Stanza)
		}
	}
	if n.Load() != 2 {
		t.Errorf("%d openers built for 2 stanzas and 20 packets", n.Load())
	}
	real, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: &fakeFirewall{}, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	bad := baseStanza()
	bad.Keys.Key = []byte(strings.Repeat("k", 33)) // Rijndael keys are 1..32 bytes
	if err := real.Reload(basePolicy(bad)); !errors.Is(err, spa.ErrBadKey) || !strings.Contains(err.Error(), "stanza #1") {
		t.Errorf("Reload with a 33-byte key: %v", err)
	}
	m := baseMessage()
	m.Random = ""
	if r := real.Handle(context.Background(), pkt("10.99.0.2", encodeSPA(t, m, keysA))); r.Reason != Granted {
		t.Errorf("old policy lost after a failed reload: %v", r.Reason)
	}
}

// The reader's precheck rejects a forged packet without allocating (once the log limiter has
// silenced the source), with the real spa decoder: the cost BenchmarkHandleBadHMAC measures.
func TestPrecheckForgedAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	st2 := baseStanza()
	st2.Num, st2.Keys = 2, keysB
	s, _, _ := newSPAEnv(t, basePolicy(baseStanza(), st2), func() time.Time { return testNow })
	p := forgedPacket(t)
	for range defaultLogBurst + 1 { // past the log lines the limiter allows
		s.precheck(context.Background(), p)
	}
	if n := testing.AllocsPerRun(200, func() {
		if !s.precheck(context.Background(), p) {
			t.Fatal("forged packet not settled by the precheck")
		}
	}); n != 0 {
		t.Errorf("precheck allocates %.1f times per forged packet, want 0", n)
	}
	if st := s.Stats(); st.ByReason[BadHMAC] != st.Handled || st.Handled < 200 {
		t.Errorf("stats %+v", st)
	}
}

func forgedPacket(tb testing.TB) capture.Packet {
	m := baseMessage()
	m.Random = ""
	return pkt("10.99.0.2", encodeSPA(tb, m, spa.Keys{Key: keysA.Key, HMACKey: []byte("forged")}))
}

// loopSource serves one packet n times, then ends Run as a shutdown does.
type loopSource struct {
	p      capture.Packet
	n      int
	cancel func()
}

func (s *loopSource) Read() (capture.Packet, error) {
	if s.n == 0 {
		s.cancel()
		return capture.Packet{}, errClosed
	}
	s.n--
	return s.p, nil
}

func (s *loopSource) Close() error { return nil }

// BenchmarkHandleBadHMAC is the cost of one forged packet from a known source (a flood) on
// the daemon's path: Run with workers, whose reader settles the packet after one HMAC per
// matching stanza (Server.precheck). ns/stanza is ns/op divided by the matching stanzas.
func BenchmarkHandleBadHMAC(b *testing.B) {
	for _, n := range []int{1, 4} {
		b.Run(fmt.Sprintf("stanzas=%d", n), func(b *testing.B) {
			var sts []fwconf.Stanza
			for i := range n {
				st := baseStanza()
				st.Num = i + 1
				st.Keys = spa.Keys{Key: []byte(fmt.Sprintf("key%d", i)), HMACKey: []byte(fmt.Sprintf("hmac%d", i))}
				sts = append(sts, st)
			}
			s, err := New(Config{Policy: basePolicy(sts...), Firewall: &fakeFirewall{}, Cache: newFakeCache(),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Workers: 64})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			src := &loopSource{p: forgedPacket(b), n: b.N, cancel: cancel}
			b.ReportAllocs()
			b.ResetTimer()
			if err := s.Run(ctx, src); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if st := s.Stats(); st.ByReason[BadHMAC] != uint64(b.N) || st.Handled != uint64(b.N) {
				b.Fatalf("stats %+v after %d packets", st, b.N)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/stanza")
		})
	}
}

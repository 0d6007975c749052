package replay

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Unix(1795432102, 0)

var ctx = context.Background()

const dA = "rVUlFOXmS4wIV/tlu/cYZbv1r9NiK8Vee/9XYQNEf58"
const dB = "AAAlFOXmS4wIV/tlu/cYZbv1r9NiK8Vee/9XYQNEf58"

func TestMemorySeenAdd(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	if seen, err := c.Seen(ctx, dA); seen || err != nil {
		t.Fatalf("empty cache: Seen = %v, %v", seen, err)
	}
	if _, err := c.CheckAndAdd(ctx, dA, clk.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckAndAdd(ctx, dB, clk.Now(), 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dA, dB} {
		if seen, _ := c.Seen(ctx, d); !seen {
			t.Errorf("Seen(%s) = false right after Add", d)
		}
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
	clk.Advance(9 * time.Second)
	if seen, _ := c.Seen(ctx, dA); !seen {
		t.Error("entry gone before its keep time")
	}
	clk.Advance(time.Second)
	if seen, _ := c.Seen(ctx, dA); seen {
		t.Error("entry still seen at its expiry")
	}
	if n := c.Sweep(clk.Now()); n != 1 || c.Len() != 1 {
		t.Errorf("Sweep removed %d, Len = %d; want 1, 1 (the forever entry stays)", n, c.Len())
	}
	clk.Advance(100 * 365 * 24 * time.Hour)
	if seen, _ := c.Seen(ctx, dB); !seen {
		t.Error("keep 0 entry expired")
	}
}

// TestMemoryCheckAndAdd: a digest is fresh once; a replay within keep changes nothing (its
// expiry is not extended); after keep it is fresh again.
func TestMemoryCheckAndAdd(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	check := func(when string, keep time.Duration, want bool) {
		t.Helper()
		fresh, err := c.CheckAndAdd(ctx, dA, clk.Now(), keep)
		if err != nil || fresh != want {
			t.Errorf("%s: CheckAndAdd = %v, %v; want %v", when, fresh, err, want)
		}
	}
	check("first", 10*time.Second, true)
	check("replay", 60*time.Second, false) // does not extend to 60 s
	clk.Advance(9 * time.Second)
	check("replay before expiry", 10*time.Second, false)
	clk.Advance(time.Second)
	check("at expiry", 10*time.Second, true)
	check("replay of the re-added digest", 0, false)
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	// A non-canonical digest (not 43 base64 characters) works the same way.
	for i, want := range []bool{true, false} {
		if fresh, err := c.CheckAndAdd(ctx, "odd-digest", clk.Now(), 0); err != nil || fresh != want {
			t.Errorf("odd digest #%d: %v, %v", i, fresh, err)
		}
	}
}

// TestCheckAndAddDeadline: a done context fails (the caller fails closed) and records nothing.
func TestCheckAndAddDeadline(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	done, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []Cache{NewMemory(nil), f} {
		if fresh, err := c.CheckAndAdd(done, dA, time.Now(), 0); fresh || !errors.Is(err, context.Canceled) {
			t.Errorf("%T: CheckAndAdd with a done context = %v, %v", c, fresh, err)
		}
		if _, err := c.Seen(done, dA); !errors.Is(err, context.Canceled) {
			t.Errorf("%T: Seen with a done context: %v", c, err)
		}
		if seen, _ := c.Seen(ctx, dA); seen || c.Len() != 0 {
			t.Errorf("%T: a failed CheckAndAdd recorded the digest", c)
		}
	}
}

func TestMemorySweepBounded(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	for i := 0; i < 1000; i++ {
		c.CheckAndAdd(ctx, digestN(i), clk.Now(), time.Second)
	}
	clk.Advance(2 * time.Second)
	for i := 0; i < 1000; i++ { // expired entries are invisible before they are swept
		if seen, _ := c.Seen(ctx, digestN(i)); seen {
			t.Fatalf("expired digest %d seen", i)
		}
	}
	if got := c.Len(); got == 1000 {
		t.Errorf("after 1000 Seen calls Len = %d: sweep did not run", got)
	}
	c2 := NewMemory(clk.Now)
	for i := 0; i < 1000; i++ {
		c2.CheckAndAdd(ctx, digestN(i), clk.Now().Add(-2*time.Second), time.Second)
	}
	c2.Seen(ctx, dA)
	if got := c2.Len(); got < 1000-sweepBudget || got >= 1000 {
		t.Errorf("after one Seen Len = %d, want in [%d, 1000) (bounded sweep)", got, 1000-sweepBudget)
	}
	for i := 0; i < 2*len(c2.t.slots)/sweepBudget; i++ {
		c2.Seen(ctx, dA)
	}
	if got := c2.Len(); got != 0 {
		t.Errorf("after a full sweep cycle Len = %d, want 0", got)
	}
}

func TestMemoryErrors(t *testing.T) {
	c := NewMemory(nil)
	for _, d := range []string{"", "a b", "x\n", string(make([]byte, MaxDigestLen+1))} {
		if fresh, err := c.CheckAndAdd(ctx, d, time.Now(), 0); fresh || !errors.Is(err, ErrBadDigest) {
			t.Errorf("CheckAndAdd(%q) = %v, %v; want ErrBadDigest", d, fresh, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if fresh, err := c.CheckAndAdd(ctx, dA, time.Now(), 0); fresh || !errors.Is(err, ErrClosed) {
		t.Errorf("CheckAndAdd after Close = %v, %v", fresh, err)
	}
	if _, err := c.Seen(ctx, dA); !errors.Is(err, ErrClosed) {
		t.Errorf("Seen after Close = %v", err)
	}
}

func digestN(i int) string {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := []byte(dA)
	for j := 0; j < 8; j++ {
		b[j] = alpha[i%64]
		i /= 64
	}
	return string(b)
}

func BenchmarkMemorySeen(b *testing.B) {
	c := NewMemory(nil)
	now := time.Now()
	for i := 0; i < 100000; i++ {
		c.CheckAndAdd(ctx, digestN(i), now, time.Hour)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Seen(ctx, digestN(i%200000))
	}
}

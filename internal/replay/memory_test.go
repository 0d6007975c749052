package replay

import (
	"errors"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

var t0 = time.Unix(1795432102, 0)

const dA = "rVUlFOXmS4wIV/tlu/cYZbv1r9NiK8Vee/9XYQNEf58"
const dB = "AAAlFOXmS4wIV/tlu/cYZbv1r9NiK8Vee/9XYQNEf58"

func TestMemorySeenAdd(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	if seen, err := c.Seen(dA); seen || err != nil {
		t.Fatalf("empty cache: Seen = %v, %v", seen, err)
	}
	if err := c.Add(dA, clk.Now(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(dB, clk.Now(), 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dA, dB} {
		if seen, _ := c.Seen(d); !seen {
			t.Errorf("Seen(%s) = false right after Add", d)
		}
	}
	if c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
	clk.Advance(9 * time.Second)
	if seen, _ := c.Seen(dA); !seen {
		t.Error("entry gone before its keep time")
	}
	clk.Advance(time.Second)
	if seen, _ := c.Seen(dA); seen {
		t.Error("entry still seen at its expiry")
	}
	if n := c.Sweep(clk.Now()); n != 1 || c.Len() != 1 {
		t.Errorf("Sweep removed %d, Len = %d; want 1, 1 (the forever entry stays)", n, c.Len())
	}
	clk.Advance(100 * 365 * 24 * time.Hour)
	if seen, _ := c.Seen(dB); !seen {
		t.Error("keep 0 entry expired")
	}
}

func TestMemoryExtend(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	c.Add(dA, clk.Now(), 10*time.Second)
	c.Add(dA, clk.Now(), 60*time.Second) // extends
	c.Add(dA, clk.Now(), 5*time.Second)  // does not shorten
	clk.Advance(30 * time.Second)
	if n := c.Sweep(clk.Now()); n != 0 {
		t.Errorf("Sweep removed %d entries, want 0 (stale heap entries must not delete)", n)
	}
	if seen, _ := c.Seen(dA); !seen {
		t.Error("extended entry expired early")
	}
	clk.Advance(30 * time.Second)
	if n := c.Sweep(clk.Now()); n != 1 {
		t.Errorf("Sweep removed %d, want 1", n)
	}
}

func TestMemorySweepBounded(t *testing.T) {
	clk := &fakeClock{t0}
	c := NewMemory(clk.Now)
	for i := 0; i < 1000; i++ {
		c.Add(digestN(i), clk.Now(), time.Second)
	}
	clk.Advance(2 * time.Second)
	for i := 0; i < 1000; i++ { // expired entries are invisible before they are swept
		if seen, _ := c.Seen(digestN(i)); seen {
			t.Fatalf("expired digest %d seen", i)
		}
	}
	if got := c.Len(); got == 1000 {
		t.Errorf("after 1000 Seen calls Len = %d: sweep did not run", got)
	}
	c2 := NewMemory(clk.Now)
	for i := 0; i < 1000; i++ {
		c2.Add(digestN(i), clk.Now().Add(-2*time.Second), time.Second)
	}
	c2.Seen(dA)
	if got := c2.Len(); got < 1000-sweepBudget || got >= 1000 {
		t.Errorf("after one Seen Len = %d, want in [%d, 1000) (bounded sweep)", got, 1000-sweepBudget)
	}
	for i := 0; i < 2*len(c2.t.slots)/sweepBudget; i++ {
		c2.Seen(dA)
	}
	if got := c2.Len(); got != 0 {
		t.Errorf("after a full sweep cycle Len = %d, want 0", got)
	}
}

func TestMemoryErrors(t *testing.T) {
	c := NewMemory(nil)
	for _, d := range []string{"", "a b", "x\n", string(make([]byte, MaxDigestLen+1))} {
		if err := c.Add(d, time.Now(), 0); !errors.Is(err, ErrBadDigest) {
			t.Errorf("Add(%q) = %v, want ErrBadDigest", d, err)
		}
	}
	c.Close()
	if err := c.Add(dA, time.Now(), 0); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close = %v", err)
	}
	if _, err := c.Seen(dA); !errors.Is(err, ErrClosed) {
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
		c.Add(digestN(i), now, time.Hour)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.Seen(digestN(i % 200000))
	}
}

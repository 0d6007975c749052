package server

import (
	"net/netip"
	"testing"
	"time"
)

// TestLimiterWindowSkew: a time a little before a window's start (a batch's read time after a
// worker's clock reading) stays in the window; one more than an interval before it (a clock set
// back) starts a new one.
func TestLimiterWindowSkew(t *testing.T) {
	l := newLogLimiter(2, 10*time.Second)
	src := netip.MustParseAddr("10.99.0.2")
	for i := range 2 {
		if ok, _ := l.allow(src, testNow); !ok {
			t.Fatalf("line %d suppressed within the burst", i+1)
		}
	}
	if ok, _ := l.allow(src, testNow.Add(-time.Millisecond)); ok {
		t.Fatal("a slightly earlier time reset the window")
	}
	if ok, n := l.allow(src, testNow.Add(-time.Minute)); !ok || n != 1 {
		t.Fatalf("a clock set back a minute: allowed %v, suppressed %d; want a new window and 1", ok, n)
	}
}

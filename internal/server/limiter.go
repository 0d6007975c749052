package server

import (
	"net/netip"
	"sync"
	"time"
)

// logLimiter allows at most burst log lines per interval per source address, and at most
// 50*burst lines per interval in total, so a flood cannot turn into a logging storm. It counts
// what it suppressed and hands the count to the next allowed line of the same address.
type logLimiter struct {
	mu       sync.Mutex
	burst    int
	interval time.Duration
	bySrc    map[netip.Addr]*window
	total    window
}

type window struct {
	start      time.Time
	n          int
	suppressed int
}

func newLogLimiter(burst int, interval time.Duration) *logLimiter {
	return &logLimiter{burst: burst, interval: interval, bySrc: map[netip.Addr]*window{}}
}

// expired reports whether the window that started at start is over at now: an interval has
// passed, or now is more than an interval before it (a clock set back). A time a little before
// the start, such as a batch's read time (capture.Packet.Time), is still in the window.
func (l *logLimiter) expired(start, now time.Time) bool {
	d := now.Sub(start)
	return d >= l.interval || d < -l.interval
}

// allow reports whether a line for src may be logged at now, and how many lines for src were
// suppressed since the last one allowed.
func (l *logLimiter) allow(src netip.Addr, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.bySrc[src]
	if w == nil {
		if len(l.bySrc) >= maxLogLimiterEntries {
			clear(l.bySrc)
		}
		w = &window{start: now}
		l.bySrc[src] = w
	}
	if l.expired(w.start, now) {
		w.start, w.n = now, 0
	}
	if l.expired(l.total.start, now) {
		l.total.start, l.total.n = now, 0
	}
	if w.n >= l.burst || l.total.n >= 50*l.burst {
		w.suppressed++
		return false, 0
	}
	w.n++
	l.total.n++
	n := w.suppressed
	w.suppressed = 0
	return true, n
}

package server

import (
	"net/netip"
	"sync"
	"time"
)

// Budget bounds the private-key decryptions the server spends on GnuPG packets for stanzas
// without an HMAC key (with one, a forged packet costs one HMAC and is never decrypted). Two
// token buckets decide: one per source address and one for all sources together; a packet
// that would need a decryption when either is empty is refused (Throttled) without one.
// Zero fields take the defaults.
type Budget struct {
	Rate        float64 // decryptions per second, all sources together (default 20)
	Burst       int     // tokens the total bucket holds (default 40)
	SourceRate  float64 // decryptions per second per source address (default 1)
	SourceBurst int     // tokens a source's bucket holds (default 5)
}

// Budget defaults: opening a signed RSA-2048 packet costs about 1 ms here (RSA-3072 about
// 3 ms, Curve25519 0.13 ms), so the total default holds GnuPG decryptions to a few percent of
// a core.
const (
	defaultBudgetRate        = 20
	defaultBudgetBurst       = 40
	defaultBudgetSourceRate  = 1
	defaultBudgetSourceBurst = 5
	maxBudgetSources         = 4096
)

func (b Budget) withDefaults() Budget {
	if b.Rate <= 0 {
		b.Rate = defaultBudgetRate
	}
	if b.Burst <= 0 {
		b.Burst = defaultBudgetBurst
	}
	if b.SourceRate <= 0 {
		b.SourceRate = defaultBudgetSourceRate
	}
	if b.SourceBurst <= 0 {
		b.SourceBurst = defaultBudgetSourceBurst
	}
	return b
}

// bucket is a token bucket: tokens at time at.
type bucket struct {
	tokens float64
	at     time.Time
}

// level returns the bucket's tokens at now (refilled at rate, capped at burst).
func (b *bucket) level(now time.Time, rate float64, burst int) float64 {
	if d := now.Sub(b.at); d > 0 {
		return min(float64(burst), b.tokens+d.Seconds()*rate)
	}
	return b.tokens
}

// budget is the decryption budget of a Server, with an injected clock (the caller's now).
type budget struct {
	mu    sync.Mutex
	cfg   Budget
	total bucket
	bySrc map[netip.Addr]*bucket
}

func newBudget(cfg Budget, now time.Time) *budget {
	cfg = cfg.withDefaults()
	return &budget{cfg: cfg, total: bucket{tokens: float64(cfg.Burst), at: now}, bySrc: map[netip.Addr]*bucket{}}
}

// allow reports whether src may have one decryption at now; with take it also spends the
// tokens (one from src's bucket and one from the total).
func (b *budget) allow(src netip.Addr, now time.Time, take bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.cfg
	tl := b.total.level(now, c.Rate, c.Burst)
	sb := b.bySrc[src]
	sl := float64(c.SourceBurst)
	if sb != nil {
		sl = sb.level(now, c.SourceRate, c.SourceBurst)
	}
	if tl < 1 || sl < 1 {
		return false
	}
	if !take {
		return true
	}
	b.total = bucket{tokens: tl - 1, at: now}
	if sb == nil {
		if len(b.bySrc) >= maxBudgetSources {
			b.sweep(now)
		}
		if len(b.bySrc) >= maxBudgetSources {
			return true // the total bucket still bounds the work
		}
		sb = &bucket{}
		b.bySrc[src] = sb
	}
	*sb = bucket{tokens: sl - 1, at: now}
	return true
}

// sweep forgets sources whose buckets are full again (the same as having no entry).
func (b *budget) sweep(now time.Time) {
	for a, sb := range b.bySrc {
		if sb.level(now, b.cfg.SourceRate, b.cfg.SourceBurst) >= float64(b.cfg.SourceBurst) {
			delete(b.bySrc, a)
		}
	}
}

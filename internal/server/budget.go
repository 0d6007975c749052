package server

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
)

// Budget bounds the private-key decryptions the server spends on GnuPG packets for stanzas
// without an HMAC key (with one, a forged packet costs one HMAC and is never decrypted). Two
// token buckets decide: one per source address and one for all sources together; a packet
// that would need a decryption when either is empty is refused (Throttled) without one.
//
// The total bucket is shared fairly: when more packets pass their source's bucket than Rate
// per second (many sources, or spoofed ones), each is admitted with probability Rate / demand
// (demand measured over about a second), so the tokens are spread over all candidates instead
// of going to whichever packets arrive first after a refill, and a valid knock keeps that share
// of chances during a flood. Zero fields take the defaults.
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

	// demand is the rate (per second) of packets that passed their source's bucket, decayed
	// exponentially with a time constant of demandTau, as of demandAt.
	demand   float64
	demandAt time.Time
	rnd      func() float64 // uniform in [0, 1); tests inject a seeded one
}

// demandTau is the time constant of the demand estimate.
const demandTau = time.Second

func newBudget(cfg Budget, now time.Time) *budget {
	cfg = cfg.withDefaults()
	return &budget{cfg: cfg, total: bucket{tokens: float64(cfg.Burst), at: now}, bySrc: map[netip.Addr]*bucket{},
		demandAt: now, rnd: rand.Float64}
}

// allow reports whether src may have one decryption at now. Without take it only looks (both
// buckets have a token). With take it decides: a packet that passes its source's bucket spends
// a token there, and is admitted, spending a token of the total, with probability Rate/demand.
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
	if sl < 1 {
		return false
	}
	if !take {
		return tl >= 1
	}
	// A candidate for the total bucket: admitted with probability Rate / demand (demand as
	// measured before it, so a trickle of packets is always admitted while tokens last).
	if d := now.Sub(b.demandAt); d > 0 {
		b.demand *= math.Exp(-d.Seconds() / demandTau.Seconds())
		b.demandAt = now
	}
	p := 1.0
	if b.demand > c.Rate {
		p = c.Rate / b.demand
	}
	b.demand += 1 / demandTau.Seconds()
	// The source's token is spent on every candidate, admitted or not: each source then offers
	// at most SourceRate candidates a second, and the draw is fair between sources.
	admit := tl >= 1 && (p >= 1 || b.rnd() < p)
	if admit {
		b.total = bucket{tokens: tl - 1, at: now}
	}
	if sb == nil {
		if len(b.bySrc) >= maxBudgetSources {
			b.sweep(now)
		}
		if len(b.bySrc) >= maxBudgetSources {
			return admit // the total bucket still bounds the work
		}
		sb = &bucket{}
		b.bySrc[src] = sb
	}
	*sb = bucket{tokens: sl - 1, at: now}
	return admit
}

// sweep forgets sources whose buckets are full again (the same as having no entry).
func (b *budget) sweep(now time.Time) {
	for a, sb := range b.bySrc {
		if sb.level(now, b.cfg.SourceRate, b.cfg.SourceBurst) >= float64(b.cfg.SourceBurst) {
			delete(b.bySrc, a)
		}
	}
}

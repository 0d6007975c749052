package fleet

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/replay"
)

// reportPercentiles reports the p50 and p99 of ds in microseconds.
func reportPercentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	at := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkReplayCheck is the replay check added per knock: Redis on loopback (one SET NX PX,
// plus the write-through to the local cache) against the local memory cache alone.
func BenchmarkReplayCheck(b *testing.B) {
	needRedis(b)
	run := func(b *testing.B, c Checker) {
		ctx := context.Background()
		ds := make([]time.Duration, 0, b.N)
		now := time.Now()
		for i := 0; b.Loop(); i++ {
			d := fmt.Sprintf("bench-%d-%d", now.UnixNano(), i)
			start := time.Now()
			fresh, err := c.CheckAndAdd(ctx, d, now, time.Minute)
			ds = append(ds, time.Since(start))
			if err != nil || !fresh {
				b.Fatal(fresh, err)
			}
		}
		reportPercentiles(b, ds)
	}
	b.Run("redis", func(b *testing.B) {
		g := newGateway(b, shared(b).URL(), groupName(b), func(c *Config) { c.Local = replay.NewMemory(time.Now) })
		run(b, g)
	})
	b.Run("memory", func(b *testing.B) { run(b, replay.NewMemory(time.Now)) })
}

// BenchmarkFanout is the time from Publish on A to Apply on B, one grant at a time.
func BenchmarkFanout(b *testing.B) {
	needRedis(b)
	group := groupName(b)
	a := newGateway(b, shared(b).URL(), group)
	g := newGateway(b, shared(b).URL(), group)
	rb := g.run(b)
	for g.catchUps.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	ds := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		e := []ledger.Entry{{Key: ledger.Key{Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Proto: 6, Port: 22},
			Expires: time.Now().Add(time.Minute)}}
		start := time.Now()
		if err := a.Publish(ctx, e); err != nil {
			b.Fatal(err)
		}
		ev := rb.next(b)
		ds = append(ds, ev.at.Sub(start))
	}
	reportPercentiles(b, ds)
}

// BenchmarkPublishThreeGateways is grants per second published by three gateways at once
// (each publish one atomic script: stream entry and live-hash merge).
func BenchmarkPublishThreeGateways(b *testing.B) {
	needRedis(b)
	group := groupName(b)
	gws := []*gateway{newGateway(b, shared(b).URL(), group), newGateway(b, shared(b).URL(), group), newGateway(b, shared(b).URL(), group)}
	ctx := context.Background()
	b.SetParallelism(1)
	var n int64
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			g := gws[i%3]
			e := []ledger.Entry{{Key: ledger.Key{Src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Proto: 6, Port: 22},
				Expires: time.Now().Add(time.Minute)}}
			if err := g.Publish(ctx, e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	n = int64(b.N)
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "grants/s")
}

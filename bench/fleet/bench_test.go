package fleet

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fleet"
	"github.com/sesame-spa/sesame/internal/fleettest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/redistest"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/spa"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BenchmarkReplayCheck is one replay check per iteration: the Fleet on redis-server on loopback
// (policy closed, local memory cache as its copy), the memory cache, and the digest file.
func BenchmarkReplayCheck(b *testing.B) {
	run := func(b *testing.B, c fleet.Checker) {
		ctx := context.Background()
		ds := make([]time.Duration, 0, b.N)
		now := time.Now()
		prefix := fmt.Sprintf("bench-%d-", now.UnixNano())
		for i := 0; b.Loop(); i++ {
			d := prefix + strconv.Itoa(i)
			start := time.Now()
			fresh, err := c.CheckAndAdd(ctx, d, now, 5*time.Minute)
			ds = append(ds, time.Since(start))
			if err != nil || !fresh {
				b.Fatal(fresh, err)
			}
		}
		b.ReportMetric(us(pct(ds, 0.50)), "p50-µs")
		b.ReportMetric(us(pct(ds, 0.99)), "p99-µs")
	}
	b.Run("redis", func(b *testing.B) {
		r := redistest.Start(b, redistest.Options{})
		key := make([]byte, 32)
		rand.Read(key)
		f, err := fleet.New(fleet.Config{URL: r.URL(), Key: key, Group: "bench", Local: replay.NewMemory(time.Now)})
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		run(b, f)
	})
	b.Run("memory", func(b *testing.B) { run(b, replay.NewMemory(time.Now)) })
	b.Run("file", func(b *testing.B) {
		c, err := replay.OpenFile(filepath.Join(b.TempDir(), "digest.cache"), replay.FileOptions{})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		run(b, c)
	})
}

// BenchmarkFleet measures knock to open (fan-out to C, and local on A) and grants per second
// across three gateways, in one rig. Run it once (-benchtime 1x); BENCH_FLEET_KNOCKS (50),
// BENCH_FLEET_GRANTS (6000) and BENCH_FLEET_RATE (6000 packets/s offered) size it.
func BenchmarkFleet(b *testing.B) {
	nstest.Require(b, "fwknop", "nft", "redis-server")
	r := fleettest.New(b, fleettest.Options{AccessTimeout: 600})
	a, c := r.Gateways[0], r.Gateways[2]
	for b.Loop() {
		knocks := envInt("BENCH_FLEET_KNOCKS", 50)
		ips := r.AddClientIPs(b, 2*knocks)
		var fan, local []time.Duration
		for i := range knocks {
			d, err := r.KnockToOpen(b, a, c, packet(b, ips[2*i]), ips[2*i], 5*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			fan = append(fan, d)
			if d, err = r.KnockToOpen(b, a, a, packet(b, ips[2*i+1]), ips[2*i+1], 5*time.Second); err != nil {
				b.Fatal(err)
			}
			local = append(local, d)
		}
		b.ReportMetric(ms(pct(fan, 0.50)), "fanout-p50-ms")
		b.ReportMetric(ms(pct(fan, 0.90)), "fanout-p90-ms")
		b.ReportMetric(ms(pct(local, 0.50)), "local-p50-ms")
		b.ReportMetric(ms(pct(local, 0.90)), "local-p90-ms")

		n := envInt("BENCH_FLEET_GRANTS", 6000)
		rate := envInt("BENCH_FLEET_RATE", 6000)
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = packet(b, fmt.Sprintf("10.200.%d.%d", i/250, i%250+1))
		}
		before := make([]int, len(r.Gateways))
		for i, g := range r.Gateways {
			before[i] = applied(g)
		}
		start := time.Now()
		sent := blast(b, r, pkts, rate)
		last, held := start, n
		for i, g := range r.Gateways {
			got, at := waitCount(func() int { return applied(g) - before[i] }, n, 2*time.Second, 60*time.Second)
			held = min(held, got)
			if at.After(last) {
				last = at
			}
		}
		refused := 0
		for _, g := range r.Gateways {
			refused += stat(b, g, "rejected")
		}
		el := last.Sub(start)
		b.Logf("%d knocks sent in %v (%.0f/s offered); every gateway holds %d of them %v after the first send; %d refused (rejected: under overload, replay checks past SESAME_FLEET_TIMEOUT fail closed)",
			n, sent, float64(n)/sent.Seconds(), held, el, refused)
		b.ReportMetric(float64(held)/el.Seconds(), "grants/s")
		b.ReportMetric(float64(n-held), "missing")
	}
}

// applied is how many grants g made or applied: its own "access granted" lines and those it
// applied for the other gateways.
func applied(g *fleettest.Gateway) int {
	return fleettest.LogCount(g, `msg="access granted"`) + fleettest.LogCount(g, `msg="fleet: access granted for another gateway"`)
}

// waitCount polls count until it reaches want or stops growing for quiet (limit at most), and
// returns the final count and when it last grew.
func waitCount(count func() int, want int, quiet, limit time.Duration) (int, time.Time) {
	last, lastT := count(), time.Now()
	deadline := time.Now().Add(limit)
	for last < want && time.Now().Before(deadline) && time.Since(lastT) < quiet {
		time.Sleep(20 * time.Millisecond)
		if n := count(); n != last {
			last, lastT = n, time.Now()
		}
	}
	return last, lastT
}

// packet builds a valid knock for tcp/22 for allow with the rig's keys (sesame's encoder: the
// wire format of Debian's fwknop, byte for byte, without a process per packet).
func packet(t testing.TB, allow string) []byte {
	m := spa.Message{Username: "root", Timestamp: time.Now().Unix(), Type: spa.AccessMsg, Message: allow + ",tcp/22"}
	w, err := spa.Encode(&m, spa.Keys{Key: []byte(fleettest.Key), HMACKey: []byte(fleettest.HMACKey)}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(w)
}

// blast sends pkts from the client to A, B and C in turn, paced at rate packets/s, and returns
// how long sending took.
func blast(t testing.TB, r *fleettest.Rig, pkts [][]byte, rate int) time.Duration {
	var el time.Duration
	err := r.Client.Do(t, func() error {
		var conns []net.Conn
		for _, g := range r.Gateways {
			c, err := net.Dial("udp", g.SPAAddr())
			if err != nil {
				return err
			}
			defer c.Close()
			conns = append(conns, c)
		}
		start := time.Now()
		for i, p := range pkts {
			conns[i%len(conns)].Write(p)
			if i%20 == 19 {
				if w := time.Until(start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))); w > 0 {
					time.Sleep(w)
				}
			}
		}
		el = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return el
}

// stat asks g for its counters (SIGUSR1) and returns the one named key in its stats line.
func stat(t testing.TB, g *fleettest.Gateway, key string) int {
	t.Helper()
	n := fleettest.LogCount(g, "msg=stats")
	if err := syscall.Kill(g.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	lines := g.WaitLog(t, n+1, 5*time.Second, "msg=stats")
	m := regexp.MustCompile(` ` + key + `=(\d+)`).FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

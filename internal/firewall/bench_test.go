package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// synthGrants returns n distinct IPv4 grants outside the test subnets (from 100.64.0.0/10,
// then 44.0.0.0/8 as needed), for tcp/port, each for an hour.
func synthGrants(n int, port uint16) []Grant {
	gs := make([]Grant, n)
	for i := range gs {
		v := uint32(100)<<24 | uint32(64)<<16 + uint32(i)
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		gs[i] = Grant{Src: a, Proto: ProtoTCP, Port: port, Timeout: time.Hour}
	}
	return gs
}

// BenchmarkGrant: one Grant call (one netlink transaction) per op, each for a new address.
func BenchmarkGrant(b *testing.B) {
	nstest.Require(b)
	ns := nstest.New(b)
	fw := newBenchBackend(b, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}}})
	gs := synthGrants(b.N, 22)
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := fw.Grant(ctx, gs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

// BenchmarkGrantMany: grants sent through GrantMany (grantsPerBatch per transaction).
func BenchmarkGrantMany(b *testing.B) {
	nstest.Require(b)
	ns := nstest.New(b)
	fw := newBenchBackend(b, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}}})
	gs := synthGrants(b.N, 22)
	b.ResetTimer()
	if err := fw.GrantMany(context.Background(), gs); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
}

func newBenchBackend(b *testing.B, ns *nstest.NS, cfg Config) *Nftables {
	cfg.NetNSFd = int(ns.Handle(b))
	fw, err := NewNftables(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fw.Close() })
	if err := fw.Init(context.Background()); err != nil {
		b.Fatal(err)
	}
	return fw
}

func connectOnce(d net.Dialer, addr string) error {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c.(*net.TCPConn).SetLinger(0) // RST: no TIME_WAIT to run out of ports
	return c.Close()
}

// BenchmarkConnectInterleaved compares connect latency to three servers reached over their own
// veths from one client, in interleaved order so that load from other processes hits all three
// alike: one without any firewall, one guarded by sesame with only the client's grant, and one
// guarded by sesame holding N live grants (the client's among them). It reports the median and
// 90th percentile of each, and the ratio of the medians (N grants / no firewall).
func BenchmarkConnectInterleaved(b *testing.B) {
	for _, n := range []int{10, 10_000, 1_000_000} {
		b.Run("grants="+strconv.Itoa(n), func(b *testing.B) { benchInterleaved(b, n) })
	}
}

func benchInterleaved(b *testing.B, n int) {
	nstest.Require(b)
	const port = 2222
	cli := nstest.New(b)
	var addrs []string
	var srvs []*nstest.NS
	for i := range 3 {
		srv := nstest.New(b)
		s, c := fmt.Sprintf("10.97.%d.1", i), fmt.Sprintf("10.97.%d.2", i)
		nstest.Connect(b, srv, cli, []string{s + "/24"}, []string{c + "/24"})
		sesametest.Listen(b, srv, ":"+strconv.Itoa(int(port)), sesametest.Hangup)
		waitLink(b, cli, s, port)
		srvs, addrs = append(srvs, srv), append(addrs, net.JoinHostPort(s, strconv.Itoa(port)))
	}
	guard := Config{GuardPorts: []Port{{ProtoTCP, port}}}
	ctx := context.Background()
	small := newBenchBackend(b, srvs[1], guard)
	if err := small.Grant(ctx, Grant{Src: mustAddr("10.97.1.2"), Proto: ProtoTCP, Port: port, Timeout: time.Hour}); err != nil {
		b.Fatal(err)
	}
	big := newBenchBackend(b, srvs[2], guard)
	gs := append(synthGrants(n-1, port), Grant{Src: mustAddr("10.97.2.2"), Proto: ProtoTCP, Port: port, Timeout: time.Hour})
	start := time.Now()
	if err := big.GrantMany(ctx, gs); err != nil {
		b.Fatal(err)
	}
	load := time.Since(start)

	lat := make([][]time.Duration, 3)
	err := cli.Do(b, func() error {
		d := net.Dialer{Timeout: time.Second}
		for range 100 {
			for _, a := range addrs {
				if err := connectOnce(d, a); err != nil {
					return fmt.Errorf("warm-up %s: %w", a, err)
				}
			}
		}
		b.ResetTimer()
		for range b.N {
			for i, a := range addrs {
				t0 := time.Now()
				if err := connectOnce(d, a); err != nil {
					return err
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	med := make([]float64, 3)
	for i, name := range []string{"none", "1grant", "Ngrants"} {
		slices.Sort(lat[i])
		med[i] = float64(lat[i][len(lat[i])/2].Microseconds())
		b.ReportMetric(med[i], name+"-p50-us")
		b.ReportMetric(float64(lat[i][len(lat[i])*9/10].Microseconds()), name+"-p90-us")
	}
	b.ReportMetric(med[2]/med[0], "Ngrants/none")
	b.Logf("loaded %d grants in %v (%.0f/s)", n, load, float64(n)/load.Seconds())
}

// BenchmarkList: one List (a netlink dump of both grant sets) with 10,000 and 100,000 live
// grants. The kernel's set dump restarts its walk from the first element for every message it
// fills, so List grows quadratically: about 5 s at 100,000 grants, minutes at 1,000,000.
func BenchmarkList(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run("grants="+strconv.Itoa(n), func(b *testing.B) {
			nstest.Require(b)
			fw := newBenchBackend(b, nstest.New(b), Config{})
			if err := fw.GrantMany(context.Background(), synthGrants(n, 22)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				es, err := fw.List(context.Background())
				if err != nil || len(es) != n {
					b.Fatalf("List = %d entries, %v; want %d", len(es), err, n)
				}
			}
		})
	}
}

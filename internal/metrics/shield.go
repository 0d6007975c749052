package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// ShieldSources are the TCP-MD5 shield's numbers, read at every scrape. A nil function
// leaves its metrics out; the functions must be safe for concurrent use.
type ShieldSources struct {
	// Conns returns the shield's connection counters (shield.Server.Stats).
	Conns func() ConnStats
	// MaxConns is --max-conns (0: no cap, and no metric).
	MaxConns int
	// MD5 returns the kernel's TCP-MD5 drop counters (shield.ReadCounters). They count for
	// the whole network namespace, not one listener. An error fails this metric for the
	// scrape, logged by the HTTP server; the rest are served.
	MD5 func() (MD5Counters, error)
}

// ConnStats mirror shield.ConnStats and shield.Tally.
type ConnStats struct {
	Active, Peak      int64  // handlers running now, and most at once
	Accepted, Refused uint64 // connections accepted (refused ones included), and reset at MaxConns
	Relayed, Failed   uint64 // passed on to the upstream or a program, and reset because it was not reached
}

// MD5Counters mirror shield.Counters: the TcpExt counters TCPMD5NotFound, TCPMD5Failure and
// TCPMD5Unexpected of /proc/net/netstat.
type MD5Counters struct {
	NotFound, Failure, Unexpected uint64
}

// NewShield returns the shield's registry, reading src at every scrape.
func NewShield(src ShieldSources) *prometheus.Registry {
	reg := newRegistry()
	reg.MustRegister(shieldCollector(src))
	return reg
}

func shieldCollector(src ShieldSources) funcCollector {
	var c funcCollector
	if f := src.Conns; f != nil {
		c = append(c,
			gauge("shield_connections_active", "Signed connections being served now.", nil,
				func() float64 { return float64(f().Active) }),
			gauge("shield_connections_peak", "Most signed connections served at once since the shield started.", nil,
				func() float64 { return float64(f().Peak) }),
			counter("shield_connections_accepted_total", "Signed connections accepted, refused ones included.", nil,
				func() uint64 { return f().Accepted }),
			counter("shield_connections_refused_total", "Connections reset on arrival because --max-conns were being served.", nil,
				func() uint64 { return f().Refused }),
			counter("shield_connections_relayed_total", "Signed connections passed on: the upstream accepted the dial, or the --exec program started.", nil,
				func() uint64 { return f().Relayed }),
			counter("shield_connections_failed_total", "Signed connections reset because the upstream could not be reached or the --exec program not started.", nil,
				func() uint64 { return f().Failed }))
	}
	if n := src.MaxConns; n > 0 {
		c = append(c, gauge("shield_connections_max", "The cap on connections served at once (--max-conns).", nil,
			func() float64 { return float64(n) }))
	}
	if f := src.MD5; f != nil {
		c = append(c, metric{desc("tcpmd5_dropped_segments_total",
			"TCP segments the kernel dropped for their TCP-MD5 signature, in the whole network namespace, by reason: "+
				"no_signature (TcpExt TCPMD5NotFound), wrong_signature (TCPMD5Failure), unexpected_signature (TCPMD5Unexpected).",
			[]string{"reason"}, nil),
			func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
				v, err := f()
				if err != nil {
					ch <- prometheus.NewInvalidMetric(d, err)
					return
				}
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.NotFound), "no_signature")
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Failure), "wrong_signature")
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v.Unexpected), "unexpected_signature")
			}})
	}
	return c
}

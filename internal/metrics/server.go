package metrics

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerSources are the SPA server's numbers, read at every scrape. A nil function leaves
// its metrics out. The functions are called from the HTTP server's goroutines, concurrently
// with the daemon, so they must be safe for that.
type ServerSources struct {
	// Transport is how packets arrive, the transport label of the packet and capture
	// metrics: "udp" (ENABLE_UDP_SERVER) or "sniff" (AF_PACKET).
	Transport string
	// Packets returns the packets settled so far by outcome, keyed by server.Reason.Key()
	// ("granted", "bad_hmac", ...). Give every reason, zeros included, so that each series
	// exists from the start: range over server.Reasons() on server.Stats().ByReason.
	Packets func() map[string]uint64
	// GrantsMade returns the firewall grants made so far (one per address, protocol and
	// port) by family; a FamilyCounter the OnGrant hook feeds is one.
	GrantsMade func() Families
	// LiveGrants returns the grants live now by family (the ledger's entries).
	LiveGrants func() Families
	// ReplayEntries returns the number of digests in the replay cache (replay.Cache.Len).
	ReplayEntries func() int
	// Capture returns the capture source's kernel counters (capture.Statser.Stats). An error
	// fails these three metrics for the scrape, logged by the HTTP server; the rest are
	// served.
	Capture func() (CaptureStats, error)
	// Heals returns how many times the ruleset was healed and how long the last heal took,
	// in milliseconds (keeper.Keeper.Heals).
	Heals func() (count int, lastMs float64)
	// Fleet returns the fleet link's status (fleet.Fleet.Status); nil without a fleet.
	Fleet func() FleetStatus
}

// CaptureStats mirror capture.SourceStats: packets the kernel had for the source (Dropped
// included), those it dropped for want of buffer room, and those Read skipped.
type CaptureStats struct {
	Received, Dropped, Rejected uint64
}

// FleetStatus mirrors the counters of fleet.Status.
type FleetStatus struct {
	Connected                                   bool // the last Redis call succeeded
	Published, Applied, Refused, LocalFallbacks uint64
}

// HandlingBuckets are the upper bounds, in seconds, of the packet handling histogram: from
// a forged packet's HMAC check (tens of microseconds) to a grant's firewall commit.
var HandlingBuckets = []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1}

// Server holds the SPA server's registry and the handling histogram it feeds.
type Server struct {
	// Registry holds every metric; serve it with Start.
	Registry *prometheus.Registry
	handling *prometheus.HistogramVec
}

// NewServer returns the SPA server's metrics, reading src at every scrape.
func NewServer(src ServerSources) *Server {
	reg := newRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "spa_packet_handling_seconds",
		Help:      "Time from taking up an SPA packet to its final outcome (granted, with the firewall commit, or rejected).",
		Buckets:   HandlingBuckets,
	}, []string{"verdict"})
	h.WithLabelValues("granted")
	h.WithLabelValues("rejected")
	reg.MustRegister(h)
	reg.MustRegister(serverCollector(src))
	return &Server{Registry: reg, handling: h}
}

// ObserveHandling records how long one packet took from being taken up to its outcome. It is
// safe for concurrent use, and does nothing on a nil *Server.
func (s *Server) ObserveHandling(granted bool, d time.Duration) {
	if s == nil {
		return
	}
	s.handling.WithLabelValues(verdict(granted)).Observe(d.Seconds())
}

func verdict(granted bool) string {
	if granted {
		return "granted"
	}
	return "rejected"
}

func serverCollector(src ServerSources) funcCollector {
	tl := prometheus.Labels{"transport": src.Transport}
	var c funcCollector
	if f := src.Packets; f != nil {
		c = append(c, metric{desc("spa_packets_total",
			"SPA packets settled, by verdict and reason (granted, or why the packet was rejected).",
			[]string{"verdict", "reason"}, tl),
			func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
				for reason, n := range f() {
					ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(n), verdict(reason == "granted"), reason)
				}
			}})
	}
	if f := src.GrantsMade; f != nil {
		c = append(c, byFamily("grants_total", "Firewall grants made: one per source address, protocol and port.", prometheus.CounterValue, f))
	}
	if f := src.LiveGrants; f != nil {
		c = append(c, byFamily("grants_live", "Grants live now (not yet expired or revoked).", prometheus.GaugeValue, f))
	}
	if f := src.ReplayEntries; f != nil {
		c = append(c, gauge("replay_cache_entries", "Packet digests held by the replay cache.", nil,
			func() float64 { return float64(f()) }))
	}
	if f := src.Capture; f != nil {
		for _, m := range []struct {
			name, help string
			get        func(CaptureStats) uint64
		}{
			{"capture_packets_received_total", "Packets the kernel queued for the capture source, dropped ones included.", func(s CaptureStats) uint64 { return s.Received }},
			{"capture_packets_dropped_total", "Packets the kernel dropped because the capture source's buffer was full.", func(s CaptureStats) uint64 { return s.Dropped }},
			{"capture_packets_rejected_total", "Received packets the capture source skipped (truncated, malformed or failing the filter).", func(s CaptureStats) uint64 { return s.Rejected }},
		} {
			c = append(c, metric{desc(m.name, m.help, nil, tl), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
				s, err := f()
				if err != nil {
					ch <- prometheus.NewInvalidMetric(d, err)
					return
				}
				ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(m.get(s)))
			}})
		}
	}
	if f := src.Heals; f != nil {
		c = append(c,
			counter("ruleset_heals_total", "Times the firewall ruleset was found damaged (flushed table, removed hook) and restored.", nil,
				func() uint64 { n, _ := f(); return uint64(n) }),
			gauge("ruleset_last_heal_duration_seconds", "How long the last ruleset heal took (0 before the first).", nil,
				func() float64 { _, ms := f(); return ms / 1e3 }))
	}
	if f := src.Fleet; f != nil {
		c = append(c,
			gauge("fleet_connected", "1 if the fleet's last Redis call succeeded, else 0.", nil,
				func() float64 {
					if f().Connected {
						return 1
					}
					return 0
				}),
			counter("fleet_messages_published_total", "Grant messages this gateway wrote to the fleet stream.", nil,
				func() uint64 { return f().Published }),
			counter("fleet_messages_applied_total", "Grant messages from other gateways applied here.", nil,
				func() uint64 { return f().Applied }),
			counter("fleet_messages_refused_total", "Fleet messages refused: forged, malformed, replayed, stale, revoked or expired.", nil,
				func() uint64 { return f().Refused }),
			counter("fleet_replay_local_fallbacks_total", "Replay checks answered by the local cache because Redis failed.", nil,
				func() uint64 { return f().LocalFallbacks }))
	}
	return c
}

// FamilyCounter counts grants by address family. The zero value is ready; it is safe for
// concurrent use. Its Load is a ServerSources.GrantsMade.
type FamilyCounter struct {
	v4, v6 atomic.Uint64
}

// Add counts n grants for addr's family (an IPv4-mapped IPv6 address counts as IPv4).
func (c *FamilyCounter) Add(addr netip.Addr, n int) {
	if addr.Unmap().Is4() {
		c.v4.Add(uint64(n))
	} else {
		c.v6.Add(uint64(n))
	}
}

// Load returns the counts.
func (c *FamilyCounter) Load() Families {
	return Families{IPv4: c.v4.Load(), IPv6: c.v6.Load()}
}

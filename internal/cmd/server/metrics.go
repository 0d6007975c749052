package server

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/keeper"
	"github.com/sesame-spa/sesame/internal/metrics"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/internal/server"
)

// metricsEndpoint serves Prometheus metrics when SESAME_METRICS_LISTEN is set. listen takes the
// port before the firewall is touched (a taken port refuses the start); start serves once the
// pipeline exists. A nil *metricsEndpoint stands for "no metrics".
type metricsEndpoint struct {
	ln   net.Listener
	made metrics.FamilyCounter
	m    *metrics.Server
}

func listenMetrics(ctx context.Context, s *settings) (*metricsEndpoint, error) {
	if s.metricsListen == "" {
		return nil, nil
	}
	ln, err := metrics.Listen(ctx, s.metricsListen)
	if err != nil {
		return nil, fmt.Errorf("SESAME_METRICS_LISTEN %s: %w", s.metricsListen, err)
	}
	return &metricsEndpoint{ln: ln}, nil
}

// onGrant counts the grants made by family, then calls next.
func (e *metricsEndpoint) onGrant(next func(*fwconf.Stanza, []firewall.Grant) error) func(*fwconf.Stanza, []firewall.Grant) error {
	if e == nil {
		return next
	}
	return func(st *fwconf.Stanza, gs []firewall.Grant) error {
		for _, g := range gs {
			e.made.Add(g.Src, 1)
		}
		return next(st, gs)
	}
}

// observe is the pipeline's handling-time hook (nil without metrics).
func (e *metricsEndpoint) observe() func(bool, time.Duration) {
	if e == nil {
		return nil
	}
	return func(granted bool, d time.Duration) { e.m.ObserveHandling(granted, d) }
}

// prepare builds the registry (before server.New, which takes observe).
func (e *metricsEndpoint) prepare(s *settings, src capture.Source, cache replay.Cache, fwall server.Firewall, fl *fleetLink, stats func() server.Stats) {
	if e == nil {
		return
	}
	transport := "sniff"
	if s.udpServer {
		transport = "udp"
	}
	ss := metrics.ServerSources{
		Transport: transport,
		Packets: func() map[string]uint64 {
			st := stats()
			out := make(map[string]uint64, len(server.Reasons()))
			for _, r := range server.Reasons() {
				out[r.Key()] = st.ByReason[r]
			}
			return out
		},
		GrantsMade: e.made.Load,
	}
	if cache != nil {
		ss.ReplayEntries = cache.Len
	}
	if st, ok := src.(capture.Statser); ok {
		ss.Capture = func() (metrics.CaptureStats, error) {
			cs, err := st.Stats()
			return metrics.CaptureStats{Received: cs.Received, Dropped: cs.Dropped, Rejected: cs.Rejected}, err
		}
	}
	if k, ok := fwall.(*keeper.Keeper); ok {
		ss.Heals = k.Heals
		ss.LiveGrants = func() metrics.Families {
			var f metrics.Families
			for _, e := range k.Live() {
				if e.Src.Unmap().Is4() {
					f.IPv4++
				} else {
					f.IPv6++
				}
			}
			return f
		}
	}
	if fl != nil {
		ss.Fleet = func() metrics.FleetStatus {
			st := fl.f.Status()
			return metrics.FleetStatus{Connected: st.Connected, Published: st.Published, Applied: st.Applied,
				Refused: st.Refused, LocalFallbacks: st.LocalFallbacks}
		}
	}
	e.m = metrics.NewServer(ss)
}

// start serves the registry until ctx ends.
func (e *metricsEndpoint) start(ctx context.Context, log *slog.Logger) {
	if e == nil {
		return
	}
	ep := metrics.StartListener(ctx, e.ln, e.m.Registry, log)
	log.Info("metrics served", "addr", ep.Addr().String(), "path", "/metrics")
}

package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fleet"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/keeper"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/replay"
)

// The fleet (SESAME_FLEET_REDIS, package fleet): replay digests are checked in Redis, the
// grants this gateway makes are published to the group, and the grants and revocations of the
// other gateways are applied through the keeper. Without SESAME_FLEET_REDIS none of this runs.

// loadFleet builds the fleet's configuration from fwknopd.conf: it reads the key file and the
// TLS files and checks the URL. Every error names file, line and variable; all are returned
// together. It returns nil, nil when SESAME_FLEET_REDIS is not set.
func loadFleet(sc *fwconf.Server) (*fleet.Config, error) {
	if sc.FleetRedis == "" {
		return nil, nil
	}
	var errs []error
	fail := func(name string, err error, fix string) {
		o := sc.Where[name]
		if o.File == "" {
			o.File = sc.File
		}
		errs = append(errs, &fwconf.Error{File: o.File, Line: o.Line, Var: name, Msg: err.Error(), Fix: fix, Err: fwconf.ErrValue})
	}
	cfg := &fleet.Config{URL: sc.FleetRedis, Group: sc.FleetGroup, Timeout: sc.FleetTimeout, MaxSkew: sc.FleetMaxSkew,
		WaitReplicas: sc.FleetWaitReplicas, Gateway: sc.FleetName}
	if sc.FleetOnError == "local" {
		cfg.OnError = fleet.Local
	}
	key, err := fleet.ParseKeyFile(sc.FleetKeyFile)
	if err != nil {
		fail("SESAME_FLEET_KEY_FILE", err, "the file holds one line of base64, the same on every gateway of the group: head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE")
	}
	cfg.Key = key
	if sc.FleetTLSCA != "" || sc.FleetTLSCert != "" {
		var ca, pair error
		if sc.FleetTLSCA != "" {
			_, ca = fleet.LoadTLS(sc.FleetTLSCA, "", "")
		}
		if sc.FleetTLSCert != "" {
			_, pair = fleet.LoadTLS("", sc.FleetTLSCert, sc.FleetTLSKey)
		}
		switch {
		case ca != nil:
			fail("SESAME_FLEET_TLS_CA", ca, "a PEM file with the CA certificate(s) that signed Redis's certificate")
		case pair != nil:
			name := "SESAME_FLEET_TLS_CERT"
			if strings.Contains(pair.Error(), "key file") {
				name = "SESAME_FLEET_TLS_KEY"
			}
			fail(name, pair, "SESAME_FLEET_TLS_CERT and SESAME_FLEET_TLS_KEY are the PEM client certificate and its key (mode 600)")
		default:
			cfg.TLS, _ = fleet.LoadTLS(sc.FleetTLSCA, sc.FleetTLSCert, sc.FleetTLSKey)
		}
	}
	if len(errs) == 0 {
		// New checks the URL (and the names) without contacting Redis.
		check := *cfg
		check.OnError, check.Local = fleet.Closed, nil
		f, err := fleet.New(check)
		if err != nil {
			fail("SESAME_FLEET_REDIS", err, "")
		} else {
			f.Close()
		}
	}
	return cfg, errors.Join(errs...)
}

// fleetLink is the daemon's link to the fleet. A nil *fleetLink stands for "no fleet": its
// methods do nothing.
type fleetLink struct {
	f   *fleet.Fleet
	cfg fleet.Config
	url string // redacted, for logs
	log *slog.Logger

	queue   chan []ledger.Entry // local grants waiting to be published
	dropped atomic.Uint64       // grants not published because the queue was full
	stop    context.CancelFunc  // stops Run and the publisher
	wg      sync.WaitGroup
}

// publishQueue bounds the batches of local grants waiting to be published: a Redis that hangs
// (each publish waits SESAME_FLEET_TIMEOUT at most) makes the publisher fall behind, never the
// packet path.
const publishQueue = 4096

// openFleet joins the fleet when s has one: the Fleet checks replay digests in Redis with
// local as its local cache (the policy's fallback, and a copy of every digest). A Redis that
// does not answer is a WARN, never a refusal to start: the policy decides per knock.
func openFleet(ctx context.Context, s *settings, local replay.Cache, log *slog.Logger) (*fleetLink, error) {
	if s.fleet == nil {
		return nil, nil
	}
	cfg := *s.fleet
	cfg.Local, cfg.Log = local, log
	f, err := fleet.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	l := &fleetLink{f: f, cfg: cfg, url: fwconf.RedactURL(cfg.URL), log: log}
	group := cmp.Or(cfg.Group, "default")
	log.Info("fleet: joined", "redis", l.url, "group", group, "gateway", f.Gateway(), "on_error", cfg.OnError.String())
	if err := f.Ping(ctx); err != nil {
		log.Warn("fleet: redis does not answer at start; knocks follow SESAME_FLEET_ON_ERROR until it does",
			"redis", l.url, "on_error", cfg.OnError.String(), "err", err)
	}
	return l, nil
}

// cache is the replay cache the pipeline uses: the Fleet, or local without a fleet.
func (l *fleetLink) cache(local replay.Cache) replay.Cache {
	if l == nil {
		return local
	}
	return l.f
}

// replayTimeout is the pipeline's deadline for one replay check: room for a Redis call that
// times out and the local fallback after it (0: the pipeline's default).
func (l *fleetLink) replayTimeout() time.Duration {
	if l == nil {
		return 0
	}
	t := l.cfg.Timeout
	if t <= 0 {
		t = 200 * time.Millisecond
	}
	return max(time.Second, 2*t+500*time.Millisecond)
}

// start applies the other gateways' grants and revocations through k (fleet.Run) and starts
// publishing this gateway's grants, until stopRun.
func (l *fleetLink) start(ctx context.Context, k *keeper.Keeper) {
	if l == nil {
		return
	}
	ctx, l.stop = context.WithCancel(ctx)
	l.queue = make(chan []ledger.Entry, publishQueue)
	a := &fleetApplier{ctx: ctx, k: k, log: l.log, now: time.Now}
	l.wg.Go(func() {
		if err := l.f.Run(ctx, a); err != nil {
			l.log.Error("fleet: stopped applying the other gateways' grants", "err", err)
		}
	})
	l.wg.Go(func() { l.publisher(ctx) })
}

// stopRun stops Run and the publisher (which first tries to publish what is queued) and
// waits for them.
func (l *fleetLink) stopRun() {
	if l == nil || l.stop == nil {
		return
	}
	l.stop()
	l.wg.Wait()
}

// close closes the Redis connections (not the local cache).
func (l *fleetLink) close() {
	if l == nil {
		return
	}
	l.stopRun()
	l.f.Close()
}

// OnGrant queues the access grants of gs, just made for stanza st, for publishing (the
// pipeline's grant hook). NAT grants (Forward, LocalNAT) and grants with a destination
// (ENABLE_DESTINATION_RULE) stay on the gateway that got the knock: the fleet's wire format is
// source, protocol and port only, and a NAT target or a destination is this gateway's. It never blocks: when the queue is full the grants are dropped (counted, logged).
func (l *fleetLink) OnGrant(st *fwconf.Stanza, gs []firewall.Grant) error {
	gs = accessOnly(gs)
	if l == nil || l.queue == nil || len(gs) == 0 {
		return nil
	}
	now := time.Now()
	es := make([]ledger.Entry, len(gs))
	for i, g := range gs {
		es[i] = ledger.Entry{Key: ledger.Key{Src: g.Src, Proto: g.Proto, Port: g.Port}, Expires: now.Add(g.Timeout), Stanza: g.Stanza}
	}
	select {
	case l.queue <- es:
		return nil
	default:
	}
	n := uint64(len(es))
	if total := l.dropped.Add(n); total == n || total/1000 != (total-n)/1000 { // the first, then every 1000th
		l.log.Error("fleet: publish queue full (redis too slow); grants not sent to the other gateways",
			"dropped_total", total)
	}
	return nil
}

// maxBatch bounds the grants published in one call.
const maxBatch = 512

// publisher publishes queued grants, coalescing what is queued into one call. When ctx ends it
// publishes what is left within one Redis timeout.
func (l *fleetLink) publisher(ctx context.Context) {
	for {
		select {
		case es := <-l.queue:
			l.publish(ctx, l.drain(es))
		case <-ctx.Done():
			var es []ledger.Entry
			for more := true; more; {
				select {
				case q := <-l.queue:
					es = append(es, q...)
				default:
					more = false
				}
			}
			if len(es) > 0 {
				fctx, cancel := context.WithTimeout(context.Background(), l.replayTimeout())
				l.publish(fctx, es)
				cancel()
			}
			return
		}
	}
}

// drain appends what is queued to es, up to maxBatch grants.
func (l *fleetLink) drain(es []ledger.Entry) []ledger.Entry {
	for len(es) < maxBatch {
		select {
		case more := <-l.queue:
			es = append(es, more...)
		default:
			return es
		}
	}
	return es
}

func (l *fleetLink) publish(ctx context.Context, es []ledger.Entry) {
	// A failure is kept by the Fleet and retried (fleet.Publish); the outage is logged there.
	if err := l.f.Publish(ctx, es); err != nil {
		l.log.Debug("fleet: publish failed; kept for retry", "grants", len(es), "err", err)
	}
}

// revokeAll sends the revocation of every grant to the other gateways (--fw-flush). On
// failure the Fleet keeps it and sends it when Redis answers again.
func (l *fleetLink) revokeAll(ctx context.Context) error {
	if l == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.replayTimeout())
	defer cancel()
	return l.f.RevokeAll(ctx)
}

// stats are the fleet's counters for the stats log line.
func (l *fleetLink) stats() []any {
	if l == nil {
		return nil
	}
	st := l.f.Status()
	attrs := []any{"fleet_connected", st.Connected, "fleet_published", st.Published, "fleet_applied", st.Applied,
		"fleet_refused", st.Refused, "fleet_local_fallbacks", st.LocalFallbacks, "fleet_publish_dropped", l.dropped.Load()}
	if st.LastError != "" {
		attrs = append(attrs, "fleet_last_error", st.LastError)
	}
	return attrs
}

// fleetApplier applies what the other gateways publish through the keeper. Grants made this
// way do not pass the pipeline's grant hook, so they are never published again.
type fleetApplier struct {
	ctx context.Context
	k   *keeper.Keeper
	log *slog.Logger
	now func() time.Time
}

// applyTimeout bounds one firewall change made for the fleet.
const applyTimeout = 10 * time.Second

// Apply grants es, each until its absolute expiry (the keeper merges: the later expiry wins).
// Grants with less than 1 ms left, or that the firewall cannot hold, are skipped.
func (a *fleetApplier) Apply(es []ledger.Entry) error {
	now := a.now()
	gs := make([]firewall.Grant, 0, len(es))
	for _, e := range es {
		left := e.Expires.Sub(now).Truncate(time.Millisecond)
		if left < time.Millisecond {
			continue
		}
		g := firewall.Grant{Src: e.Src, Proto: e.Proto, Port: e.Port, Timeout: min(left, firewall.MaxTimeout), Stanza: e.Stanza}
		if err := g.Validate(); err != nil {
			a.log.Warn("fleet: grant from another gateway not applied", "grant", g.String(), "err", err)
			continue
		}
		gs = append(gs, g)
	}
	if len(gs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(a.ctx, applyTimeout)
	defer cancel()
	if err := a.k.GrantMany(ctx, gs); err != nil {
		return err
	}
	for _, g := range gs {
		a.log.Info("fleet: access granted for another gateway", "src", g.Src.Unmap().String(), "grant", g.String(),
			"timeout", g.Timeout)
	}
	return nil
}

// Revoke revokes the grants for keys.
func (a *fleetApplier) Revoke(keys []ledger.Key) error {
	ctx, cancel := context.WithTimeout(a.ctx, applyTimeout)
	defer cancel()
	if err := a.k.Revoke(ctx, keys); err != nil {
		return err
	}
	a.log.Warn("fleet: grants revoked by another gateway", "grants", len(keys))
	return nil
}

// RevokeAll revokes every grant (another gateway's --fw-flush).
func (a *fleetApplier) RevokeAll() error {
	ctx, cancel := context.WithTimeout(a.ctx, applyTimeout)
	defer cancel()
	return a.k.RevokeAll(ctx)
}

// fleetList prints the fleet's live grants from Redis as comment lines (--fw-list).
func fleetList(ctx context.Context, s *settings, stdout io.Writer) {
	if s.fleet == nil {
		return
	}
	cfg := *s.fleet
	cfg.OnError, cfg.Local = fleet.Closed, nil
	url := fwconf.RedactURL(cfg.URL)
	f, err := fleet.New(cfg)
	var es []ledger.Entry
	if err == nil {
		defer f.Close()
		es, err = f.Live(ctx)
	}
	group := cmp.Or(cfg.Group, "default")
	if err != nil {
		fmt.Fprintf(stdout, "# WARNING: fleet group %s (%s): cannot read its live grants: %v\n", group, url, err)
		return
	}
	fmt.Fprintf(stdout, "# fleet group %s (%s): %d live grant(s)\n", group, url, len(es))
	now := time.Now()
	for _, e := range es {
		g := firewall.Grant{Src: e.Src, Proto: e.Proto, Port: e.Port}
		fmt.Fprintf(stdout, "# fleet: %s expires in %s (stanza %d)\n", g.String(), e.Expires.Sub(now).Round(time.Second), e.Stanza)
	}
}

// fleetRevokeAll sends the revocation of every grant to the fleet without a running server
// (--fw-flush while stopped).
func fleetRevokeAll(s *settings, stdout io.Writer) error {
	if s.fleet == nil {
		return nil
	}
	cfg := *s.fleet
	cfg.OnError, cfg.Local = fleet.Closed, nil
	f, err := fleet.New(cfg)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.RevokeAll(ctx); err != nil {
		return fmt.Errorf("flush: the other gateways of the fleet were not told: %w", err)
	}
	fmt.Fprintln(stdout, "sesame: the fleet's other gateways revoke theirs")
	return nil
}

// fleetChanged reports whether a reload changed the fleet's settings (they need a restart).
func fleetChanged(old, cur *fleet.Config) bool {
	if old == nil || cur == nil {
		return old != cur
	}
	return old.URL != cur.URL || old.Group != cur.Group || string(old.Key) != string(cur.Key) || old.OnError != cur.OnError ||
		old.Timeout != cur.Timeout || old.MaxSkew != cur.MaxSkew || old.WaitReplicas != cur.WaitReplicas ||
		old.Gateway != cur.Gateway || (old.TLS == nil) != (cur.TLS == nil)
}

// accessOnly returns the Access grants of gs without a destination, in order. A grant with Dst
// (ENABLE_DESTINATION_RULE) opens only this gateway's own address, which means nothing on the
// others.
func accessOnly(gs []firewall.Grant) []firewall.Grant {
	return slices.DeleteFunc(slices.Clone(gs), func(g firewall.Grant) bool { return g.Kind != firewall.Access || g.Dst.IsValid() })
}

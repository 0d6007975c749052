package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/spa"
)

// Server runs the pipeline. Handle and Run are safe for concurrent use; Reload may be called at
// any time (for SIGHUP) and takes effect for the next packet.
type Server struct {
	policy        atomic.Pointer[compiled]
	fw            Firewall
	cache         replay.Cache
	newOpener     func(spa.Keys) (Opener, error)
	newGnuPG      func(st *fwconf.Stanza) (GnuPGOpener, error)
	gnupgKeys     KeyLoader
	budget        *budget
	replayTimeout time.Duration
	onGrant       func(st *fwconf.Stanza, gs []firewall.Grant) error
	observe       func(granted bool, d time.Duration)
	// realClock: now is time.Now, so a packet's read time (capture.Packet.Time) may stand for it.
	realClock bool
	// inFlight counts the packets Run has queued to its workers that they have not finished.
	inFlight  atomic.Int64
	cmds      CommandRunner
	closes    CloseStore
	afterFunc func(d time.Duration, f func())
	resolve   Resolver
	log       *slog.Logger
	now       func() time.Time
	workers   int
	queue     int

	batch atomic.Pointer[batcher] // set while Run commits grants in batches

	stats   counters
	limiter *logLimiter
}

// compiled is a Policy with the work that does not depend on the packet done ahead: each
// stanza's Opener, and the replay keep time.
type compiled struct {
	Policy
	stanzas []stanza // one per Policy.Stanzas entry, in file order
	keep    time.Duration
}

// stanza is one access stanza ready for packets.
type stanza struct {
	*fwconf.Stanza
	open          Opener      // Rijndael packets; nil for a GnuPG-only stanza
	gpg           GnuPGOpener // GnuPG packets; nil unless GPG.Enabled
	expiredDetail string      // the detail= of a StanzaExpired rejection
	cmdUID        *uint32     // CMD_EXEC_USER and CMD_EXEC_GROUP resolved (prepareCommand)
	cmdGID        *uint32
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Firewall == nil && !cfg.Policy.TestMode {
		return nil, errors.New("server: no firewall")
	}
	s := &Server{fw: cfg.Firewall, cache: cfg.Cache, newOpener: cfg.NewOpener, replayTimeout: cfg.ReplayTimeout,
		log: cfg.Logger, now: cfg.Now, workers: cfg.Workers, queue: cfg.Queue, onGrant: cfg.OnGrant, observe: cfg.Observe,
		newGnuPG: cfg.GnuPG, gnupgKeys: cfg.GnuPGKeys, cmds: cfg.Commands, closes: cfg.Closes, afterFunc: cfg.AfterFunc}
	if s.afterFunc == nil {
		s.afterFunc = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	if s.resolve = cfg.ResolveNAT; s.resolve == nil {
		s.resolve = defaultResolver
	}
	if s.newOpener == nil {
		s.newOpener = NewSPAOpener
	}
	if s.replayTimeout <= 0 {
		s.replayTimeout = defaultReplayTimeout
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now, s.realClock = time.Now, true
	}
	if s.queue <= 0 {
		s.queue = defaultQueue
	}
	burst, interval := cfg.LogBurst, cfg.LogInterval
	if burst <= 0 {
		burst = defaultLogBurst
	}
	if interval <= 0 {
		interval = defaultLogInterval
	}
	s.limiter = newLogLimiter(burst, interval)
	s.budget = newBudget(cfg.GnuPGBudget, s.now())
	if err := s.Reload(cfg.Policy); err != nil {
		return nil, err
	}
	s.resumeCloses()
	return s, nil
}

// Reload replaces the policy (stanzas and settings). It builds every stanza's Openers first
// (for GnuPG stanzas that loads their keys, by default running gpg once per GnuPG home), so a
// stanza without KEY or GnuPG keys, without SOURCE, or with keys that cannot be used, is an
// error and the old policy stays. Grants already made are not touched.
func (s *Server) Reload(p Policy) error {
	p.Stanzas = append(p.Stanzas[:0:0], p.Stanzas...)
	c := &compiled{Policy: p, stanzas: make([]stanza, len(p.Stanzas)),
		keep: fwconf.ReplayKeep(p.PacketAging, p.maxAge(), p.ReplayMargin)}
	newGnuPG := s.newGnuPG
	if newGnuPG == nil {
		keys := newKeyCache(s.gnupgKeys)
		newGnuPG = func(st *fwconf.Stanza) (GnuPGOpener, error) { return NewGnuPGOpener(st, keys.get, s.now) }
	}
	for i := range p.Stanzas {
		st := &p.Stanzas[i]
		if len(st.Keys.Key) == 0 && !st.GPG.Enabled {
			return fmt.Errorf("server: stanza #%d (%s:%d) has no KEY and no GnuPG keys", st.Num, st.File, st.Line)
		}
		if !st.SourceAny && len(st.Source) == 0 {
			return fmt.Errorf("server: stanza #%d (%s:%d) has no SOURCE", st.Num, st.File, st.Line)
		}
		c.stanzas[i] = stanza{Stanza: st}
		if len(st.Keys.Key) > 0 {
			open, err := s.newOpener(st.Keys)
			if err != nil {
				return fmt.Errorf("server: stanza #%d (%s:%d): %w", st.Num, st.File, st.Line, err)
			}
			c.stanzas[i].open = open
		}
		if st.GPG.Enabled {
			g, err := newGnuPG(st)
			if err != nil {
				return fmt.Errorf("server: stanza #%d (%s:%d): %w", st.Num, st.File, st.Line, err)
			}
			c.stanzas[i].gpg = g
		}
		if err := s.prepareCommand(&c.stanzas[i], p.TestMode); err != nil {
			return fmt.Errorf("server: stanza #%d (%s:%d): %w", st.Num, st.File, st.Line, err)
		}
		if !st.AccessExpire.IsZero() {
			c.stanzas[i].expiredDetail = "expired " + st.AccessExpire.UTC().Format(time.DateTime)
		}
	}
	s.policy.Store(c)
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Run reads packets from src and handles them until ctx is done or src fails. It closes src
// when ctx is done. A closed source (net.ErrClosed) after ctx is done is a clean exit (nil).
// Every packet read before Run returns has been settled (Stats.Handled counts it).
func (s *Server) Run(ctx context.Context, src capture.Source) error {
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()

	handle := func(p capture.Packet) { s.Handle(ctx, p) }
	var wg sync.WaitGroup
	if s.workers > 1 {
		if mg, ok := s.fw.(ManyGranter); ok {
			s.batch.Store(newBatcher(mg))
			defer s.batch.Store(nil) // after the workers have stopped (deferred below, so run first)
		}
		ch := make(chan capture.Packet, s.queue)
		for range s.workers {
			wg.Go(func() {
				for p := range ch {
					s.Handle(ctx, p)
					s.inFlight.Add(-1)
				}
			})
		}
		defer wg.Wait()
		defer close(ch)
		// The reader rejects what fails the cheap checks (wire, source, HMAC) itself: inside
		// the source's Read, before any copy, when the source is a Screener. A lone Rijndael
		// packet that passes (no worker busy, and nothing waiting in a source that is a
		// Backlog) it handles itself too, sparing a knock the hand-off to another goroutine;
		// the rest go to the workers, so a burst of valid packets is granted in parallel and
		// in shared transactions, and a GnuPG packet (which may pass unauthenticated, to a
		// private-key decryption) never holds up the reader. A full queue blocks the reader,
		// so the backlog stays in the source's buffer. A queued payload gets its own copy: a
		// source may carve payloads out of shared chunks, and a queue of them would keep every
		// chunk alive.
		screen := func(p capture.Packet) bool { return s.precheck(ctx, p) }
		if sc, ok := src.(capture.Screener); ok {
			sc.Screen(screen)
			screen = nil
		}
		backlog, _ := src.(capture.Backlog)
		handle = func(p capture.Packet) {
			switch {
			case screen != nil && screen(p):
			case backlog != nil && len(p.Payload) < gnupgLen && s.inFlight.Load() == 0 && !backlog.Waiting():
				s.Handle(ctx, p)
			default:
				p.Payload = bytes.Clone(p.Payload)
				s.inFlight.Add(1)
				ch <- p
			}
		}
	}
	for {
		p, err := src.Read()
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("server: read packet: %w", err)
		}
		handle(p)
	}
}

// Handle runs one packet through the pipeline and returns its outcome: the grants made (nil
// unless granted), the reason, and the stanza number that decided it (0 if none did). A panic
// is recovered, logged with its stack (rate-limited per source, as rejections are) and
// counted as InternalError.
func (s *Server) Handle(ctx context.Context, pkt capture.Packet) (res Result) {
	s.stats.packets.Add(1)
	var start time.Time
	if s.observe != nil {
		start = time.Now()
	}
	defer func() {
		if r := recover(); r != nil {
			res = Result{Reason: InternalError, Err: fmt.Errorf("panic: %v", r)}
			s.logPanic(ctx, pkt, r, debug.Stack())
		}
		s.stats.settle(res.Reason)
		if s.observe != nil {
			s.observe(res.Reason.Accepted(), time.Since(start))
		}
	}()
	return s.handle(ctx, pkt)
}

// precheck runs the checks that cost at most an HMAC per matching stanza. It reports whether
// it settled the packet (rejected, counted and logged, exactly as Handle would have); if not,
// the packet must go through Handle. It allocates nothing for a forged packet once the log
// limiter suppresses its source's lines.
func (s *Server) precheck(ctx context.Context, pkt capture.Packet) (settled bool) {
	defer func() {
		if r := recover(); r != nil {
			settled = false // Handle runs it again, and logs and counts the panic
		}
	}()
	var start time.Time
	if s.observe != nil {
		start = time.Now()
	}
	res, ok := s.cheap(ctx, pkt)
	if ok {
		s.stats.packets.Add(1)
		s.stats.settle(res.Reason)
		if s.observe != nil {
			s.observe(false, time.Since(start))
		}
	}
	return ok
}

// logPanic logs a recovered panic with its stack, as a rejection line at ERROR level.
func (s *Server) logPanic(ctx context.Context, pkt capture.Packet, r any, stack []byte) {
	src := pkt.Src.Addr().Unmap()
	ok, suppressed := s.limiter.allow(src, s.now())
	if !ok {
		return
	}
	attrs := []slog.Attr{slog.String("src", src.String()), slog.String("reason", InternalError.String()),
		slog.String("panic", fmt.Sprint(r)), slog.String("stack", string(stack))}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	s.log.LogAttrs(ctx, slog.LevelError, "SPA packet rejected", attrs...)
}

// Result is what Handle did with a packet.
type Result struct {
	Reason Reason
	Stanza int              // deciding stanza number, 0 if none
	Grants []firewall.Grant // made when Reason is Granted (or would be made, in test mode)
	Err    error            // underlying error for BadHMAC, DecryptFailed, FirewallError, ...
}

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
)

// Server runs the pipeline. Handle and Run are safe for concurrent use; Reload may be called at
// any time (for SIGHUP) and takes effect for the next packet.
type Server struct {
	policy atomic.Pointer[Policy]
	fw     Firewall
	cache  interface {
		Seen(string) (bool, error)
		Add(string, time.Time, time.Duration) error
	}
	codec   Codec
	onGrant func(st *fwconf.Stanza, gs []firewall.Grant) error
	log     *slog.Logger
	now     func() time.Time
	workers int
	queue   int

	batch atomic.Pointer[batcher] // set while Run commits grants in batches

	replayMu sync.Mutex // makes Seen+Add atomic across workers
	stats    counters
	limiter  *logLimiter
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Firewall == nil && !cfg.Policy.TestMode {
		return nil, errors.New("server: no firewall")
	}
	s := &Server{fw: cfg.Firewall, codec: cfg.Codec, log: cfg.Logger, now: cfg.Now,
		workers: cfg.Workers, queue: cfg.Queue, onGrant: cfg.OnGrant}
	if cfg.Cache != nil {
		s.cache = cfg.Cache
	}
	if s.codec == nil {
		s.codec = defaultCodec
	}
	if s.codec == nil {
		return nil, errors.New("server: no codec")
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
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
	if err := s.Reload(cfg.Policy); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload replaces the policy (stanzas and settings). Grants already made are not touched.
func (s *Server) Reload(p Policy) error {
	for i := range p.Stanzas {
		st := &p.Stanzas[i]
		if len(st.Keys.Key) == 0 {
			return fmt.Errorf("server: stanza #%d (%s:%d) has no KEY", st.Num, st.File, st.Line)
		}
		if !st.SourceAny && len(st.Source) == 0 {
			return fmt.Errorf("server: stanza #%d (%s:%d) has no SOURCE", st.Num, st.File, st.Line)
		}
	}
	p.Stanzas = append(p.Stanzas[:0:0], p.Stanzas...)
	s.policy.Store(&p)
	return nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats { return s.stats.snapshot() }

// Run reads packets from src and handles them until ctx is done or src fails. It closes src
// when ctx is done. A closed source (net.ErrClosed) after ctx is done is a clean exit (nil).
func (s *Server) Run(ctx context.Context, src capture.Source) error {
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer stop()

	handle := func(p capture.Packet) { s.Handle(ctx, p) }
	var wg sync.WaitGroup
	if s.workers > 1 {
		if mg, ok := s.fw.(ManyGranter); ok {
			b := newBatcher(mg, s.workers)
			var bwg sync.WaitGroup
			bwg.Go(func() { b.run(ctx) })
			s.batch.Store(b)
			defer func() { // after the workers have stopped (deferred below, so run first)
				s.batch.Store(nil)
				close(b.reqs)
				bwg.Wait()
			}()
		}
		ch := make(chan capture.Packet, s.queue)
		for range s.workers {
			wg.Go(func() {
				for p := range ch {
					s.Handle(ctx, p)
				}
			})
		}
		defer wg.Wait()
		defer close(ch)
		// The reader rejects what fails the cheap checks (wire, source, HMAC) itself and
		// hands the rest to the workers. A full queue blocks the reader, so the backlog stays
		// in the source's buffer.
		handle = func(p capture.Packet) {
			if !s.precheck(ctx, p) {
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
// unless granted), the reason, and the stanza number that decided it (0 if none did).
func (s *Server) Handle(ctx context.Context, pkt capture.Packet) (res Result) {
	s.stats.packets.Add(1)
	defer func() {
		if r := recover(); r != nil {
			res = Result{Reason: InternalError}
			s.reject(pkt, res, fmt.Sprintf("panic: %v", r))
		}
		s.stats.byReason[res.Reason].Add(1)
	}()
	return s.handle(ctx, pkt)
}

// precheck runs the checks that cost at most an HMAC per matching stanza. It reports whether
// it settled the packet (rejected, counted and logged, exactly as Handle would have); if not,
// the packet must go through Handle.
func (s *Server) precheck(ctx context.Context, pkt capture.Packet) (settled bool) {
	defer func() {
		if r := recover(); r != nil {
			settled = false // let Handle deal with it (and count the panic)
		}
	}()
	res, ok := s.cheap(ctx, pkt)
	if ok {
		s.stats.packets.Add(1)
		s.stats.byReason[res.Reason].Add(1)
	}
	return ok
}

// Result is what Handle did with a packet.
type Result struct {
	Reason Reason
	Stanza int              // deciding stanza number, 0 if none
	Grants []firewall.Grant // made when Reason is Granted (or would be made, in test mode)
	Err    error            // underlying error for BadHMAC, DecryptFailed, FirewallError, ...
}

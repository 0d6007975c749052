package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// handle is Handle without the bookkeeping.
func (s *Server) handle(ctx context.Context, pkt capture.Packet) Result {
	wire := pkt.Payload
	if err := s.codec.CheckWire(wire); err != nil {
		res := Result{Reason: Malformed, Err: err}
		s.logReject(ctx, slog.LevelInfo, pkt, res, "")
		return res
	}

	p := s.policy.Load()
	src, dst := pkt.Src.Addr().Unmap(), pkt.Dst.Addr().Unmap()
	now := s.now()

	best := Result{Reason: UnknownSource}
	var bestDetail string
	consider := func(r Result, detail string) {
		// Reasons are ordered by pipeline stage: report the stanza that got furthest.
		if r.Reason > best.Reason {
			best, bestDetail = r, detail
		}
	}
	checkedReplay := false
	for i := range p.Stanzas {
		st := &p.Stanzas[i]
		if !matches(st, src, dst) {
			continue
		}
		if !st.AccessExpire.IsZero() && !now.Before(st.AccessExpire) {
			consider(Result{Reason: StanzaExpired, Stanza: st.Num}, "expired "+st.AccessExpire.UTC().Format(time.DateOnly))
			continue
		}
		m, err := s.codec.Decode(wire, st.Keys)
		if err != nil {
			consider(Result{Reason: decodeReason(err), Stanza: st.Num, Err: err}, "")
			continue
		}
		if !checkedReplay {
			checkedReplay = true
			if r, err := s.checkReplay(wire, now, p); r != Granted {
				res := Result{Reason: r, Stanza: st.Num, Err: err}
				s.reject(pkt, res, "")
				return res
			}
		}
		o := s.checkPolicy(p, st, m, src, now)
		if o.reason != Granted {
			consider(Result{Reason: o.reason, Stanza: st.Num}, o.detail)
			if o.terminal {
				break
			}
			continue
		}
		return s.grant(ctx, p, st, pkt, m, o)
	}
	s.reject(pkt, best, bestDetail)
	return best
}

// cheap settles a packet that no stanza could accept because it fails the wire checks, has no
// matching unexpired stanza, or fails every matching stanza's HMAC; it logs and returns the
// rejection as handle would. ok is false when some stanza's HMAC passes (or a stanza has no
// HMAC key): then only handle can decide.
func (s *Server) cheap(ctx context.Context, pkt capture.Packet) (Result, bool) {
	wire := pkt.Payload
	if err := s.codec.CheckWire(wire); err != nil {
		res := Result{Reason: Malformed, Err: err}
		s.logReject(ctx, slog.LevelInfo, pkt, res, "")
		return res, true
	}
	if len(wire) >= gnupgLen {
		return Result{}, false // Decode's GnuPG rule decides these
	}
	p := s.policy.Load()
	src, dst := pkt.Src.Addr().Unmap(), pkt.Dst.Addr().Unmap()
	now := s.now()
	best := Result{Reason: UnknownSource}
	var bestDetail string
	for i := range p.Stanzas {
		st := &p.Stanzas[i]
		if !matches(st, src, dst) {
			continue
		}
		if !st.AccessExpire.IsZero() && !now.Before(st.AccessExpire) {
			if best.Reason < StanzaExpired {
				best, bestDetail = Result{Reason: StanzaExpired, Stanza: st.Num}, "expired "+st.AccessExpire.UTC().Format(time.DateOnly)
			}
			continue
		}
		err := s.codec.VerifyHMAC(wire, st.Keys)
		if err == nil {
			return Result{}, false
		}
		if r := decodeReason(err); r != BadHMAC {
			return Result{}, false // let Decode classify it
		}
		if best.Reason < BadHMAC {
			best, bestDetail = Result{Reason: BadHMAC, Stanza: st.Num, Err: err}, ""
		}
	}
	s.reject(pkt, best, bestDetail)
	return best, true
}

// gnupgLen is the wire length from which fwknop treats a packet as GnuPG, not Rijndael.
const gnupgLen = 400

// grant opens the firewall for an accepted packet (unless in test mode) and logs it.
func (s *Server) grant(ctx context.Context, p *Policy, st *fwconf.Stanza, pkt capture.Packet, m *spa.Message, o outcome) Result {
	res := Result{Reason: Granted, Stanza: st.Num, Grants: grantsFor(o)}
	if !p.TestMode {
		if err := s.commit(ctx, res.Grants); err != nil {
			res := Result{Reason: FirewallError, Stanza: st.Num, Err: err}
			s.reject(pkt, res, "")
			return res
		}
		s.stats.grants.Add(uint64(len(res.Grants)))
		if s.onGrant != nil {
			if err := s.onGrant(st, res.Grants); err != nil {
				s.log.LogAttrs(ctx, slog.LevelError, "grant hook failed",
					slog.String("src", o.allow.String()), slog.Int("stanza", st.Num), slog.String("err", err.Error()))
			}
		}
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "access granted",
		slog.String("src", pkt.Src.Addr().Unmap().String()),
		slog.Int("stanza", st.Num),
		slog.String("allow", o.allow.String()),
		slog.String("ports", portsString(o.ports)),
		slog.Duration("timeout", o.timeout),
		slog.String("user", m.Username),
		slog.Bool("test", p.TestMode))
	return res
}

// commit makes the grants: through the batcher while Run has one, else one by one.
func (s *Server) commit(ctx context.Context, gs []firewall.Grant) error {
	if b := s.batch.Load(); b != nil {
		if err := b.grant(ctx, gs); err != nil {
			return fmt.Errorf("grant %v: %w", gs, err)
		}
		return nil
	}
	for _, g := range gs {
		if err := s.fw.Grant(ctx, g); err != nil {
			return fmt.Errorf("grant %v %d/%d: %w", g.Src, g.Proto, g.Port, err)
		}
	}
	return nil
}

// checkReplay refuses a packet whose digest is cached and records it otherwise. It returns
// Granted when the packet is fresh. Cache failures fail closed (InternalError).
func (s *Server) checkReplay(wire []byte, now time.Time, p *Policy) (Reason, error) {
	if s.cache == nil {
		return Granted, nil
	}
	d := s.codec.ReplayDigest(wire)
	s.replayMu.Lock()
	defer s.replayMu.Unlock()
	seen, err := s.cache.Seen(d)
	if err != nil {
		return InternalError, fmt.Errorf("replay cache lookup: %w", err)
	}
	if seen {
		return Replay, nil
	}
	if p.TestMode { // fwknopd -t does not record digests
		return Granted, nil
	}
	if err := s.cache.Add(d, now, p.replayKeep()); err != nil {
		return InternalError, fmt.Errorf("replay cache add: %w", err)
	}
	return Granted, nil
}

// decodeReason maps a Decode error to a Reason.
func decodeReason(err error) Reason {
	switch {
	case errors.Is(err, spa.ErrHMACMismatch), errors.Is(err, spa.ErrHMACMissing):
		return BadHMAC
	case errors.Is(err, spa.ErrDecrypt), errors.Is(err, spa.ErrBadKey):
		return DecryptFailed
	case errors.Is(err, spa.ErrTooShort), errors.Is(err, spa.ErrTooLong), errors.Is(err, spa.ErrPrefixPresent),
		errors.Is(err, spa.ErrNotBase64), errors.Is(err, spa.ErrGnuPG):
		return Malformed
	}
	return BadPlaintext
}

func portsString(ps []spa.ProtoPort) string {
	b := make([]byte, 0, 16*len(ps))
	for i, pp := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%s/%d", pp.Proto, pp.Port)
	}
	return string(b)
}

// reject logs a rejection at warning level (rate-limited per source).
func (s *Server) reject(pkt capture.Packet, res Result, detail string) {
	s.logReject(context.Background(), slog.LevelWarn, pkt, res, detail)
}

func (s *Server) logReject(ctx context.Context, level slog.Level, pkt capture.Packet, res Result, detail string) {
	src := pkt.Src.Addr().Unmap()
	ok, suppressed := s.limiter.allow(src, s.now())
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("src", src.String()), slog.String("reason", res.Reason.String()),
		slog.Int("stanza", res.Stanza))
	if detail != "" {
		attrs = append(attrs, slog.String("detail", detail))
	}
	if res.Err != nil {
		attrs = append(attrs, slog.String("err", res.Err.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	s.log.LogAttrs(ctx, level, "SPA packet rejected", attrs...)
}

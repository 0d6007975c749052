package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/internal/spahttp"
	"github.com/sesame-spa/sesame/spa"
)

// handle is Handle without the bookkeeping.
func (s *Server) handle(ctx context.Context, pkt capture.Packet) Result {
	if len(pkt.Payload) == 0 {
		// A TCP segment without data (the handshake of `fwknop -P tcp/http`): counted, not logged.
		return Result{Reason: Malformed, Err: spa.ErrTooShort}
	}
	now := s.now()
	p := s.policy.Load()
	if err := unwrapHTTP(p, &pkt); err != nil {
		res := Result{Reason: Malformed, Err: err}
		s.logReject(ctx, slog.LevelInfo, nil, pkt, now, res, "")
		return res
	}
	wire := pkt.Payload
	if err := spa.CheckWire(wire); err != nil {
		res := Result{Reason: Malformed, Err: err}
		s.logReject(ctx, slog.LevelInfo, nil, pkt, now, res, "")
		return res
	}

	src, dst := pkt.Src.Addr().Unmap(), pkt.Dst.Addr().Unmap()

	best := Result{Reason: UnknownSource}
	var bestDetail string
	consider := func(r Result, detail string) {
		// Reasons are ordered by pipeline stage: report the stanza that got furthest.
		if r.Reason > best.Reason {
			best, bestDetail = r, detail
		}
	}
	checkedReplay := false
	for i := range p.stanzas {
		st := &p.stanzas[i]
		if !st.Matches(src, dst) {
			continue // a DESTINATION that failed is named by logReject
		}
		if st.Expired(now) {
			consider(Result{Reason: StanzaExpired, Stanza: st.Num}, st.expiredDetail)
			continue
		}
		m, r, err := s.decode(st, wire, src, now)
		if r != Granted {
			detail := ""
			if r == WrongMode && err == nil {
				detail = modeDetail(len(wire) >= gnupgLen)
			}
			consider(Result{Reason: r, Stanza: st.Num, Err: err}, detail)
			continue
		}
		if !checkedReplay {
			checkedReplay = true
			if r, err := s.checkReplay(ctx, pkt, now, p); r != Granted {
				res := Result{Reason: r, Stanza: st.Num, Err: err}
				s.reject(p, pkt, now, res, "")
				return res
			}
		}
		o := checkPolicy(p, st, m, src, now)
		if o.reason == Granted {
			o = s.natPolicy(ctx, p, st, m, dst, o)
		}
		if o.reason != Granted {
			consider(Result{Reason: o.reason, Stanza: st.Num}, o.detail)
			if o.terminal {
				break
			}
			continue
		}
		return s.grant(ctx, p, st, pkt, now, m, o)
	}
	s.reject(p, pkt, now, best, bestDetail)
	return best
}

// cheap settles a packet that no stanza could accept because it fails the wire checks, has no
// matching unexpired stanza, or fails every matching stanza's HMAC; it logs and returns the
// rejection as handle would. ok is false when some stanza's HMAC passes (or a stanza has no
// HMAC key): then only handle can decide. Its cost is one HMAC per matching stanza, with the
// stanza's prepared Opener.
func (s *Server) cheap(ctx context.Context, pkt capture.Packet) (Result, bool) {
	if len(pkt.Payload) == 0 {
		return Result{Reason: Malformed, Err: spa.ErrTooShort}, true // as handle: not logged
	}
	now := s.arrival(pkt)
	p := s.policy.Load()
	if p.SPAOverHTTP && spahttp.IsRequest(pkt.Payload) {
		return Result{}, false // rare: handle unwraps it
	}
	wire := pkt.Payload
	if err := spa.CheckWire(wire); err != nil {
		res := Result{Reason: Malformed, Err: err}
		s.logReject(ctx, slog.LevelInfo, nil, pkt, now, res, "")
		return res, true
	}
	long := len(wire) >= gnupgLen
	src, dst := pkt.Src.Addr().Unmap(), pkt.Dst.Addr().Unmap()
	best := Result{Reason: UnknownSource}
	var bestDetail string
	for i := range p.stanzas {
		st := &p.stanzas[i]
		if !st.Matches(src, dst) {
			continue
		}
		if st.Expired(now) {
			if best.Reason < StanzaExpired {
				best, bestDetail = Result{Reason: StanzaExpired, Stanza: st.Num}, st.expiredDetail
			}
			continue
		}
		var o Opener = st.open
		if long {
			o = st.gpg
		}
		switch {
		case o == nil:
			if best.Reason < WrongMode {
				best, bestDetail = Result{Reason: WrongMode, Stanza: st.Num}, modeDetail(long)
			}
			continue
		case long && !st.gpg.HasHMAC():
			if s.budget.allow(src, now, false) {
				return Result{}, false // a decryption within the budget: for the workers
			}
			if best.Reason < Throttled {
				best, bestDetail = Result{Reason: Throttled, Stanza: st.Num}, ""
			}
			continue
		}
		_, err := o.VerifyCheckedHMAC(wire)
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
	s.reject(p, pkt, now, best, bestDetail)
	return best, true
}

// arrival is the time the cheap checks take as now: the time the source read the packet (one
// clock reading per batch, see capture.Packet.Time) when the server runs on the real clock, so
// a flood does not pay a clock reading per packet; else the server's clock.
func (s *Server) arrival(pkt capture.Packet) time.Time {
	if s.realClock && !pkt.Time.IsZero() {
		return pkt.Time
	}
	return s.now()
}

// gnupgLen is the wire length from which fwknop treats a packet as GnuPG, not Rijndael.
const gnupgLen = 400

// decode runs one stanza's Opener on wire: the GnuPG one for 400 characters or more (within
// the decryption budget when the stanza has no HMAC key), else the Rijndael one. It returns
// the message, or the reason and error of the failure (WrongMode without an error when the
// stanza has no Opener for the packet's length: modeDetail says why).
func (s *Server) decode(st *stanza, wire []byte, src netip.Addr, now time.Time) (*spa.Message, Reason, error) {
	long := len(wire) >= gnupgLen
	var o Opener = st.open
	if long {
		if st.gpg == nil {
			return nil, WrongMode, nil // the detail is modeDetail(true)
		}
		if !st.gpg.HasHMAC() && !s.budget.allow(src, now, true) {
			return nil, Throttled, errors.New("GnuPG stanza without HMAC key: decryption budget exhausted")
		}
		o = st.gpg
	} else if o == nil {
		return nil, WrongMode, nil // the detail is modeDetail(false)
	}
	m, err := o.Decode(wire)
	if err != nil {
		return nil, decodeReason(err), err
	}
	return m, Granted, nil
}

// modeDetail explains a WrongMode rejection (fwknopd: "No stanza encryption mode match for
// encryption type").
func modeDetail(long bool) string {
	if long {
		return "a packet of 400 characters or more is GnuPG and no matching stanza tried has GnuPG keys"
	}
	return "a packet under 400 characters is Rijndael and no matching stanza tried has a KEY"
}

// grant opens the firewall for an accepted packet (unless in test mode) and logs it.
func (s *Server) grant(ctx context.Context, p *compiled, st *stanza, pkt capture.Packet, now time.Time, m *spa.Message, o outcome) Result {
	if runsCommand(st, o) {
		return s.command(ctx, p, st, pkt, now, m, o)
	}
	dst := grantDst(p.DestinationRule, o.allow, pkt.Dst.Addr())
	res := Result{Reason: Granted, Stanza: st.Num, Grants: grantsFor(o, st.Num, dst)}
	if !p.TestMode {
		if err := s.commit(ctx, res.Grants); err != nil {
			res := Result{Reason: FirewallError, Stanza: st.Num, Err: err}
			s.reject(p, pkt, now, res, "")
			return res
		}
		s.stats.grants.Add(uint64(len(res.Grants)))
		if s.onGrant != nil {
			if err := s.onGrant(st.Stanza, res.Grants); err != nil {
				s.log.LogAttrs(ctx, slog.LevelError, "grant hook failed",
					slog.String("src", o.allow.String()), slog.Int("stanza", st.Num), slog.String("err", err.Error()))
			}
		}
	}
	attrs := []slog.Attr{
		slog.String("src", pkt.Src.Addr().Unmap().String()),
		slog.Int("stanza", st.Num),
		slog.String("allow", o.allow.String()),
		slog.String("ports", portsString(o.ports)),
	}
	if o.nat != nil {
		attrs = append(attrs, slog.String("nat", natString(o)))
	} else if p.DestinationRule {
		d := "any"
		if dst.IsValid() {
			d = dst.String()
		}
		attrs = append(attrs, slog.String("dst", d))
	}
	attrs = append(attrs, slog.Duration("timeout", o.timeout), slog.String("user", m.Username), slog.Bool("test", p.TestMode))
	s.log.LogAttrs(ctx, slog.LevelInfo, "access granted", attrs...)
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

// checkReplay records the packet's digest, with its protocol and addresses for the digest
// file (replay.WithPacket), in one atomic step (in test mode it only looks) and returns
// Granted when the packet is fresh, Replay when it is not. The call has a deadline
// (Config.ReplayTimeout); any cache failure fails closed (InternalError).
func (s *Server) checkReplay(ctx context.Context, pkt capture.Packet, now time.Time, p *compiled) (Reason, error) {
	if s.cache == nil {
		return Granted, nil
	}
	d := spa.ReplayDigest(pkt.Payload)
	ctx = replay.WithPacket(ctx, replay.Packet{Proto: pkt.Proto, Src: pkt.Src, Dst: pkt.Dst})
	ctx, cancel := context.WithTimeout(ctx, s.replayTimeout)
	defer cancel()
	var fresh bool
	var err error
	if p.TestMode { // fwknopd -t does not record digests
		var seen bool
		seen, err = s.cache.Seen(ctx, d)
		fresh = !seen
	} else {
		fresh, err = s.cache.CheckAndAdd(ctx, d, now, p.keep)
	}
	switch {
	case err != nil:
		return InternalError, fmt.Errorf("replay cache: %w", err)
	case !fresh:
		return Replay, nil
	}
	return Granted, nil
}

// decodeReason maps a Decode error to a Reason.
func decodeReason(err error) Reason {
	switch {
	case errors.Is(err, spa.ErrHMACMismatch), errors.Is(err, spa.ErrHMACMissing):
		return BadHMAC
	case errors.Is(err, spa.ErrNotSigned):
		return NotSigned
	case errors.Is(err, spa.ErrBadSignature):
		return BadSignature
	case errors.Is(err, spa.ErrSignerNotValid):
		return SignerNotValid
	case errors.Is(err, spa.ErrSignerNotAllowed):
		return SignerNotAllowed
	case errors.Is(err, spa.ErrGnuPG), errors.Is(err, spa.ErrNotGnuPG):
		return WrongMode
	case errors.Is(err, spa.ErrDecrypt), errors.Is(err, spa.ErrBadKey):
		return DecryptFailed
	case errors.Is(err, spa.ErrTooShort), errors.Is(err, spa.ErrTooLong), errors.Is(err, spa.ErrPrefixPresent),
		errors.Is(err, spa.ErrNotBase64):
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
		b = append(b, pp.String()...)
	}
	return string(b)
}

// reject logs a rejection at warning level (rate-limited per source).
func (s *Server) reject(p *compiled, pkt capture.Packet, now time.Time, res Result, detail string) {
	s.logReject(context.Background(), slog.LevelWarn, p, pkt, now, res, detail)
}

// logReject logs one rejection line with src=, reason=, stanza= (and detail=, stanzas=, err=,
// suppressed= when set), unless the per-source limiter (at now) suppresses it: then it
// allocates nothing. p is the policy that decided (nil before any stanza was looked at). When
// no matching stanza could open the packet, stanzas= lists every stanza whose SOURCE and
// DESTINATION matched (each was tried, or was expired). When no stanza matched but some
// stanza's SOURCE did, detail= names those stanzas' DESTINATION rules (fwknopd logs only "No
// access data found for source IP").
func (s *Server) logReject(ctx context.Context, level slog.Level, p *compiled, pkt capture.Packet, now time.Time, res Result, detail string) {
	src := pkt.Src.Addr().Unmap()
	ok, suppressed := s.limiter.allow(src, now)
	if !ok {
		return
	}
	var tried string
	if p != nil {
		switch {
		case res.Reason == UnknownSource && detail == "":
			detail = destinationDetail(p, src, pkt.Dst.Addr().Unmap())
		case res.Reason >= StanzaExpired && res.Reason <= BadPlaintext:
			tried = triedStanzas(p, src, pkt.Dst.Addr().Unmap())
		}
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("src", src.String()), slog.String("reason", res.Reason.String()),
		slog.Int("stanza", res.Stanza))
	if tried != "" {
		attrs = append(attrs, slog.String("stanzas", tried))
	}
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

// triedStanzas lists, comma-separated, the numbers of the stanzas whose SOURCE and
// DESTINATION match src and dst.
func triedStanzas(p *compiled, src, dst netip.Addr) string {
	var b []byte
	for i := range p.stanzas {
		if st := &p.stanzas[i]; st.Matches(src, dst) {
			if len(b) > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(st.Num), 10)
		}
	}
	return string(b)
}

// destinationDetail names the DESTINATION of every stanza whose SOURCE matches src but whose
// DESTINATION does not hold dst (an invalid dst, in UDP-server mode, is shown as 0.0.0.0); ""
// when there is none.
func destinationDetail(p *compiled, src, dst netip.Addr) string {
	if !dst.IsValid() {
		dst = netip.IPv4Unspecified()
	}
	var b strings.Builder
	n := 0
	for i := range p.stanzas {
		st := &p.stanzas[i]
		if !st.MatchesSource(src) || st.MatchesDestination(dst) {
			continue
		}
		if n == 0 {
			fmt.Fprintf(&b, "SOURCE matches, but destination %s is not in", dst)
		} else {
			b.WriteByte(';')
		}
		n++
		rule := st.Raw["DESTINATION"]
		if rule == "" {
			rule = prefixesString(st.Destination)
		}
		fmt.Fprintf(&b, " DESTINATION %s of stanza #%d (%s:%d)", rule, st.Num, st.File, st.Line)
	}
	return b.String()
}

func prefixesString(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// unwrapHTTP replaces an HTTP request's payload with the SPA packet it carries (fwknopd's
// ENABLE_SPA_OVER_HTTP; see package spahttp), and its source with the X-Forwarded-For address
// when that is enabled and present. Other payloads are left as they are.
func unwrapHTTP(p *compiled, pkt *capture.Packet) error {
	if !p.SPAOverHTTP || !spahttp.IsRequest(pkt.Payload) {
		return nil
	}
	wire, fwd, err := spahttp.Extract(pkt.Payload, p.HTTP)
	if err != nil {
		return err
	}
	pkt.Payload = wire
	if fwd.IsValid() {
		pkt.Src = netip.AddrPortFrom(fwd, pkt.Src.Port())
	}
	return nil
}

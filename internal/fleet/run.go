package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
)

const (
	readBlock   = time.Second // XREAD BLOCK: how long one read waits for messages
	readCount   = 256         // messages per read
	backoffMin  = 50 * time.Millisecond
	backoffMax  = 2 * time.Second
	seenSweepAt = 4096
)

// seenRec is what Run remembers of a message id.
type seenRec struct {
	until    int64 // Unix ms after which the id is forgotten
	inStream bool  // read from the stream (not only from the live hash)
}

// follower is Run's state.
type follower struct {
	f       *Fleet
	a       Applier
	seen    map[string]seenRec
	sweepAt int
	batch   []ledger.Entry // grants read, not yet applied
}

// Run applies what the other gateways of the group publish until ctx ends, and returns nil
// then. It catches up first: every live grant in the live hash is verified and applied (its
// own too: a restarted gateway gets its grants back). Then it reads the stream from where the
// catch-up left it (XREAD BLOCK), verifies each message and applies it in stream order,
// skipping this gateway's own. When Redis fails it retries with backoff, and catches up again
// before reading on. A message that is forged, malformed, replayed, stale (written to the
// stream more than MaxSkew from its sent time, or sent more than MaxSkew in the future),
// expired, for a key revoked after it was sent, or longer than 24 h is refused: counted, and
// logged (expired ones at DEBUG). An Applier error is logged; Run goes on.
func (f *Fleet) Run(ctx context.Context, a Applier) error {
	if a == nil {
		return errors.New("fleet: Run needs an Applier")
	}
	rd := f.newClient() // XREAD BLOCK holds a connection: not the replay checks' pool
	defer rd.Close()
	stop := context.AfterFunc(ctx, func() { rd.Close() }) // unblocks a pending read
	defer stop()
	w := &follower{f: f, a: a, seen: map[string]seenRec{}, sweepAt: seenSweepAt}
	backoff := backoffMin
	for {
		cursor, err := w.catchUp(ctx, rd)
		if err == nil {
			backoff = backoffMin
			if perr := f.flushPending(ctx); perr != nil && ctx.Err() == nil {
				f.cfg.Log.Warn("fleet: publishing grants kept during the outage failed", "err", perr)
			}
			err = w.follow(ctx, rd, cursor)
		}
		if ctx.Err() != nil {
			return nil
		}
		f.cfg.Log.Debug("fleet: stream reader will reconnect", "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// catchUp notes the stream's last id, then applies the live hash's grants, and returns the
// id to read the stream from: messages added meanwhile are read twice and applied once.
func (w *follower) catchUp(ctx context.Context, rd *redis.Client) (string, error) {
	f := w.f
	cctx, cancel := context.WithTimeout(ctx, 2*f.cfg.Timeout)
	defer cancel()
	cursor := "0-0"
	last, err := rd.XRevRangeN(cctx, f.stream, "+", "-", 1).Result()
	if err == nil && len(last) == 1 {
		cursor = last[0].ID
	}
	var all map[string]string
	if err == nil {
		all, err = rd.HGetAll(cctx, f.live).Result()
	}
	if err != nil && ctx.Err() != nil { // stopping, not an outage
		return "", ctx.Err()
	}
	if err = f.result(err); err != nil {
		return "", fmt.Errorf("catch up: %w", err)
	}
	nowMs := f.cfg.Now().UnixMilli()
	var prune []any
	for field, text := range all {
		m, err := f.codec.open(text)
		if err == nil && (m.Kind != kindGrant || keyString(m.Grant.Key) != field) {
			err = fmt.Errorf("%w: not the grant for field %q", errMalformed, field)
		}
		if err != nil {
			w.refuse("live hash", field, err)
			continue
		}
		if m.Grant.Expires.UnixMilli() <= nowMs {
			prune = append(prune, field, text)
			continue
		}
		if err := w.check(m, nowMs); err != nil {
			w.refuse("live hash", field, err)
			continue
		}
		if _, dup := w.seen[m.ID]; dup {
			continue
		}
		w.remember(m, nowMs, false)
		w.batch = append(w.batch, m.Grant)
	}
	w.flush()
	f.catchUps.Add(1)
	if len(prune) > 0 {
		if err := pruneScript.Run(cctx, rd, []string{f.live}, prune...).Err(); err != nil {
			f.cfg.Log.Debug("fleet: pruning expired grants", "err", err)
		}
	}
	return cursor, nil
}

// follow reads the stream from cursor until a read fails.
func (w *follower) follow(ctx context.Context, rd *redis.Client, cursor string) error {
	f := w.f
	for {
		cctx, cancel := context.WithTimeout(ctx, readBlock+f.cfg.Timeout)
		res, err := rd.XRead(cctx, &redis.XReadArgs{Streams: []string{f.stream, cursor}, Count: readCount, Block: readBlock}).Result()
		cancel()
		if err != nil && ctx.Err() != nil { // stopping, not an outage
			return ctx.Err()
		}
		if errors.Is(err, redis.Nil) { // nothing new within readBlock
			f.result(nil)
			continue
		}
		if err = f.result(err); err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		for _, s := range res {
			for _, x := range s.Messages {
				cursor = x.ID
				w.handle(x)
			}
		}
		w.flush()
	}
}

// handle verifies one stream entry and applies it (grants are batched until flush).
func (w *follower) handle(x redis.XMessage) {
	f := w.f
	text, _ := x.Values["m"].(string)
	m, err := f.codec.open(text)
	if err != nil {
		w.refuse("stream", x.ID, err)
		return
	}
	nowMs := f.cfg.Now().UnixMilli()
	if m.Origin == f.cfg.Gateway {
		w.remember(m, nowMs, true)
		return
	}
	if s, dup := w.seen[m.ID]; dup {
		if s.inStream {
			w.refuse("stream", x.ID, fmt.Errorf("replayed: message %s was read before", m.ID))
			return
		}
		w.remember(m, nowMs, true) // applied by the catch-up
		return
	}
	if at, ok := streamMillis(x.ID); !ok || absDur(at-m.Sent) > f.cfg.MaxSkew {
		w.refuse("stream", x.ID, fmt.Errorf("stale: written to the stream %v after it was signed (max skew %v)",
			time.Duration(at-m.Sent)*time.Millisecond, f.cfg.MaxSkew))
		return
	}
	if m.Kind == kindGrant && m.Grant.Expires.UnixMilli() <= nowMs {
		w.remember(m, nowMs, true)
		w.refuseAt(slog.LevelDebug, "stream", x.ID, fmt.Errorf("expired %v ago", time.Duration(nowMs-m.Grant.Expires.UnixMilli())*time.Millisecond))
		return
	}
	if err := w.check(m, nowMs); err != nil {
		w.refuse("stream", x.ID, err)
		return
	}
	w.remember(m, nowMs, true)
	switch m.Kind {
	case kindGrant:
		w.batch = append(w.batch, m.Grant)
		return
	case kindRevoke:
		w.flush()
		f.tombMu.Lock()
		for _, k := range m.Keys {
			f.tombs[k] = max(f.tombs[k], m.Sent)
		}
		f.sweepTombsLocked(nowMs)
		f.tombMu.Unlock()
		if err := w.a.Revoke(m.Keys); err != nil {
			f.cfg.Log.Error("fleet: applying a revocation failed", "origin", m.Origin, "keys", len(m.Keys), "err", err)
			return
		}
	case kindRevokeAll:
		w.flush()
		f.tombMu.Lock()
		f.tombAll = max(f.tombAll, m.Sent)
		f.tombMu.Unlock()
		if err := w.a.RevokeAll(); err != nil {
			f.cfg.Log.Error("fleet: applying a revoke-all failed", "origin", m.Origin, "err", err)
			return
		}
		f.cfg.Log.Warn("fleet: every grant revoked by another gateway", "origin", m.Origin)
	}
	f.applied.Add(1)
}

// check applies the rules every message must pass besides its MAC, at nowMs: not sent in the
// future, a grant no longer than 24 h and not revoked after it was sent.
func (w *follower) check(m message, nowMs int64) error {
	f := w.f
	skew := f.cfg.MaxSkew.Milliseconds()
	if m.Sent > nowMs+skew {
		return fmt.Errorf("stale: sent %v in the future (max skew %v)", time.Duration(m.Sent-nowMs)*time.Millisecond, f.cfg.MaxSkew)
	}
	if m.Kind != kindGrant {
		return nil
	}
	if m.Grant.Expires.UnixMilli() > m.Sent+(maxGrant+f.cfg.MaxSkew).Milliseconds() {
		return errors.New("grant longer than 24 h")
	}
	if f.revoked(m) {
		return errors.New("revoked: the grant was revoked after it was sent")
	}
	return nil
}

// flush applies the batched grants.
func (w *follower) flush() {
	if len(w.batch) == 0 {
		return
	}
	es := w.batch
	w.batch = nil
	if err := w.a.Apply(es); err != nil {
		w.f.cfg.Log.Error("fleet: applying grants from other gateways failed", "grants", len(es), "err", err)
		return
	}
	w.f.applied.Add(uint64(len(es)))
}

// refuse counts a refused message and logs it at WARN.
func (w *follower) refuse(where, id string, err error) { w.refuseAt(slog.LevelWarn, where, id, err) }

// refuseAt counts a refused message and logs it at level (expired grants at DEBUG: a reader
// catching up on the stream meets many).
func (w *follower) refuseAt(level slog.Level, where, id string, err error) {
	w.f.refused.Add(1)
	w.f.cfg.Log.Log(context.Background(), level, "fleet: message refused", "from", where, "entry", id, "reason", err)
}

// remember records m's id until it cannot matter: until the grant expires, and at least until
// a copy of it would be stale.
func (w *follower) remember(m message, nowMs int64, inStream bool) {
	until := nowMs + 2*w.f.cfg.MaxSkew.Milliseconds() + 1000
	if m.Kind == kindGrant {
		until = max(until, m.Grant.Expires.UnixMilli())
	}
	w.seen[m.ID] = seenRec{until: until, inStream: inStream}
	if len(w.seen) >= w.sweepAt {
		for id, s := range w.seen {
			if s.until <= nowMs {
				delete(w.seen, id)
			}
		}
		w.sweepAt = 2*len(w.seen) + seenSweepAt
	}
}

// streamMillis returns the milliseconds part of a stream entry id ("ms-seq").
func streamMillis(id string) (int64, bool) {
	ms, _, ok := strings.Cut(id, "-")
	v, err := strconv.ParseInt(ms, 10, 64)
	return v, ok && err == nil
}

func absDur(ms int64) time.Duration {
	if ms < 0 {
		ms = -ms
	}
	return time.Duration(ms) * time.Millisecond
}

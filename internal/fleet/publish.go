package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
)

// grantScript appends grant messages to the stream and merges them into the live hash: a
// field keeps the message with the later expiry (the new one on a tie, or when the old one
// has expired or does not parse). The hash expires with its longest grant.
// KEYS: stream, live hash. ARGV: stream length, now (Unix ms), then field, expiry, message
// for each grant.
var grantScript = redis.NewScript(`
local maxexp = 0
local now = tonumber(ARGV[2])
for i = 3, #ARGV, 3 do
  local exp = tonumber(ARGV[i+1])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[i+2])
  local old = redis.call('HGET', KEYS[2], ARGV[i])
  local oexp = old and tonumber(string.match(old, '^S1 g %d+ %S+ %S+ (%d+) '))
  if not oexp or oexp <= now or oexp <= exp then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+2])
    if exp > maxexp then maxexp = exp end
  end
end
if maxexp > 0 and redis.call('PEXPIRETIME', KEYS[2]) < maxexp then
  redis.call('PEXPIREAT', KEYS[2], maxexp)
end
return 1`)

// revokeScript appends a revoke message and deletes its keys' fields.
// KEYS: stream, live hash. ARGV: stream length, message, fields.
var revokeScript = redis.NewScript(`
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
for i = 3, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
return 1`)

// revokeAllScript appends a revoke-all message and deletes the live hash.
// KEYS: stream, live hash. ARGV: stream length, message.
var revokeAllScript = redis.NewScript(`
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'm', ARGV[2])
redis.call('DEL', KEYS[2])
return 1`)

// pruneScript deletes fields of the live hash that still hold the given (expired) messages.
// KEYS: live hash. ARGV: field, message pairs.
var pruneScript = redis.NewScript(`
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i+1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1`)

// maxPending bounds the publishes kept for retry while Redis is down.
const maxPending = 10000

// pendingOp is a publish not yet written to Redis.
type pendingOp struct {
	kind   byte
	grants []ledger.Entry
	keys   []ledger.Key
}

// Publish sends grants es to the other gateways of the group: each becomes a grant message
// (absolute expiry, address, protocol, port, stanza, this gateway's name, a random id),
// appended to the stream and merged into the live hash (the later expiry wins), in one atomic
// script. Entries with an invalid key or an expiry that is past or more than 24 h away are
// skipped. On failure (the error wraps ErrUnavailable) the grants are kept and sent, re-signed,
// before the next publish or when Run reconnects, unless they have expired by then.
func (f *Fleet) Publish(ctx context.Context, es []ledger.Entry) error {
	now := f.cfg.Now()
	gs := make([]ledger.Entry, 0, len(es))
	for _, e := range es {
		e.Src = e.Src.Unmap().WithZone("")
		if !e.Src.IsValid() || e.Proto == 0 || e.Port == 0 || e.Stanza < 0 || e.Stanza > 1<<31-1 || !e.Expires.After(now) ||
			e.Expires.Sub(now) > maxGrant {
			f.cfg.Log.Warn("fleet: not publishing an invalid grant", "src", e.Src, "proto", e.Proto,
				"port", e.Port, "expires", e.Expires)
			continue
		}
		gs = append(gs, e)
	}
	if len(gs) == 0 {
		return nil
	}
	return f.publish(ctx, pendingOp{kind: kindGrant, grants: gs})
}

// Revoke sends the revocation of keys' grants to the other gateways (a stanza removed by a
// reload) and deletes them from the live hash; this gateway refuses grant messages for those
// keys sent before now from then on. Failures are kept for retry as Publish's are.
func (f *Fleet) Revoke(ctx context.Context, keys []ledger.Key) error {
	if len(keys) == 0 {
		return nil
	}
	nowMs := f.cfg.Now().UnixMilli()
	ks := make([]ledger.Key, 0, len(keys))
	f.tombMu.Lock()
	for _, k := range keys {
		k.Src = k.Src.Unmap().WithZone("")
		if !k.Src.IsValid() || k.Proto == 0 || k.Port == 0 {
			continue
		}
		f.tombs[k] = max(f.tombs[k], nowMs)
		ks = append(ks, k)
	}
	f.sweepTombsLocked(nowMs)
	f.tombMu.Unlock()
	var errs []error
	for len(ks) > 0 {
		n := min(len(ks), maxKeys)
		errs = append(errs, f.publish(ctx, pendingOp{kind: kindRevoke, keys: ks[:n]}))
		ks = ks[n:]
	}
	return errors.Join(errs...)
}

// RevokeAll sends the revocation of every grant to the other gateways (--fw-flush) and
// deletes the live hash; this gateway refuses grant messages sent before now from then on.
func (f *Fleet) RevokeAll(ctx context.Context) error {
	f.tombMu.Lock()
	f.tombAll = max(f.tombAll, f.cfg.Now().UnixMilli())
	f.tombMu.Unlock()
	return f.publish(ctx, pendingOp{kind: kindRevokeAll})
}

// flushPending retries the publishes that failed.
func (f *Fleet) flushPending(ctx context.Context) error { return f.publish(ctx, pendingOp{}) }

// publish sends the pending publishes, then op (kind 0: none), in order, stopping at the first
// failure and keeping the rest for retry.
func (f *Fleet) publish(ctx context.Context, op pendingOp) error {
	f.pubMu.Lock()
	defer f.pubMu.Unlock()
	ops := f.pending
	if op.kind != 0 {
		ops = append(ops, op)
	}
	f.pending = nil
	for i, o := range ops {
		if err := f.send(ctx, o); err != nil {
			rest := ops[i:]
			if drop := len(rest) - maxPending; drop > 0 {
				f.cfg.Log.Error("fleet: too many publishes waiting for redis; dropping the oldest", "dropped", drop)
				rest = rest[drop:]
			}
			f.pending = rest
			return fmt.Errorf("fleet: publish: %w", err)
		}
	}
	return nil
}

// send writes one operation's messages, signed now.
func (f *Fleet) send(ctx context.Context, o pendingOp) error {
	now := f.cfg.Now()
	nowMs := now.UnixMilli()
	m := message{Kind: o.kind, Sent: nowMs, Origin: f.cfg.Gateway}
	keys := []string{f.stream, f.live}
	var args []any
	var script *redis.Script
	n := 1
	switch o.kind {
	case kindGrant:
		script, n = grantScript, 0
		args = []any{f.cfg.StreamLen, nowMs}
		for _, g := range o.grants {
			if !g.Expires.After(now) { // expired while waiting for redis
				continue
			}
			m.ID, m.Grant = randomHex(idLen/2), g
			args = append(args, keyString(g.Key), g.Expires.UnixMilli(), f.codec.seal(&m))
			n++
		}
		if n == 0 {
			return nil
		}
	case kindRevoke:
		script = revokeScript
		m.ID, m.Keys = randomHex(idLen/2), o.keys
		args = []any{f.cfg.StreamLen, f.codec.seal(&m)}
		for _, k := range o.keys {
			args = append(args, keyString(k))
		}
	case kindRevokeAll:
		script = revokeAllScript
		m.ID = randomHex(idLen / 2)
		args = []any{f.cfg.StreamLen, f.codec.seal(&m)}
	}
	cctx, cancel := context.WithTimeout(ctx, f.writeTimeout())
	defer cancel()
	if err := f.result(f.eval(cctx, script, keys, args...)); err != nil {
		return err
	}
	f.published.Add(uint64(n))
	return nil
}

// eval runs script (EVALSHA, loading it when Redis does not have it), followed by WAIT when
// WaitReplicas is set.
func (f *Fleet) eval(ctx context.Context, s *redis.Script, keys []string, args ...any) error {
	if f.cfg.WaitReplicas == 0 {
		return s.Run(ctx, f.rdb, keys, args...).Err()
	}
	for try := 0; ; try++ {
		var wait *redis.Cmd
		_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			s.EvalSha(ctx, p, keys, args...)
			wait = p.Do(ctx, "wait", f.cfg.WaitReplicas, f.waitTimeout().Milliseconds())
			return nil
		})
		if err != nil && try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err = s.Load(ctx, f.rdb).Err(); err == nil {
				continue
			}
		}
		if err != nil {
			return err
		}
		return f.checkWait(wait)
	}
}

// revoked reports whether grant message m was sent before a revocation of its key (or of
// everything) that this gateway made or received.
func (f *Fleet) revoked(m message) bool {
	f.tombMu.Lock()
	defer f.tombMu.Unlock()
	return m.Sent < f.tombAll || m.Sent < f.tombs[m.Grant.Key]
}

// sweepTombsLocked forgets revocations older than any grant they could refuse.
func (f *Fleet) sweepTombsLocked(nowMs int64) {
	if len(f.tombs) < f.tombSweepAt {
		return
	}
	old := nowMs - (maxGrant + 2*f.cfg.MaxSkew).Milliseconds()
	for k, t := range f.tombs {
		if t < old {
			delete(f.tombs, k)
		}
	}
	f.tombSweepAt = 2*len(f.tombs) + 1024
}

package fleet

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// errBadDigest is returned for a digest that is empty, longer than 64 bytes, or holds
// whitespace or control characters (replay.ErrBadDigest's rule).
var errBadDigest = errors.New("fleet: invalid replay digest")

// maxBacklog bounds the digests remembered during an outage for writing to Redis later.
const maxBacklog = 100000

type digestRec struct {
	key string
	exp int64 // Unix ms; 0: kept forever
}

// replayName is the Redis key of digest: the group's prefix and the hex HMAC-SHA256 of the
// digest under a key derived from the fleet key, so the key reveals nothing of the packet.
func (f *Fleet) replayName(digest string) string {
	h := hmac.New(sha256.New, f.replayKey)
	h.Write([]byte(digest))
	return f.replayPrefix + hex.EncodeToString(h.Sum(nil))
}

// CheckAndAdd records digest fleet-wide and reports whether it was fresh: one SET key 1 NX PX
// keep (no PX when keep is 0: kept forever), so of all gateways' calls with one digest at most
// one is fresh, also after any gateway restarts. now is used by the local cache only (Redis
// expires the key on its own clock). With WaitReplicas, the answer also waits for that many
// replicas; fewer is a failure.
//
// When Redis fails or misses Timeout: with policy Closed it returns an error wrapping
// ErrUnavailable (refuse the knock); with Local it returns Config.Local's answer, counts a
// fallback and remembers a fresh digest, to write it to Redis when Redis answers again. Every
// digest Redis answers for is also recorded in Config.Local (when set). A ctx that ends, or an
// invalid digest, is an error under either policy.
func (f *Fleet) CheckAndAdd(ctx context.Context, digest string, now time.Time, keep time.Duration) (bool, error) {
	if !validDigest(digest) {
		return false, errBadDigest
	}
	if keep < 0 {
		keep = 0
	}
	key := f.replayName(digest)
	cctx, cancel := context.WithTimeout(ctx, f.writeTimeout())
	fresh, err := f.setNX(cctx, key, keep)
	cancel()
	if err = f.result(err); err == nil {
		if f.cfg.Local != nil {
			if _, lerr := f.cfg.Local.CheckAndAdd(ctx, digest, now, keep); lerr != nil {
				f.cfg.Log.Warn("fleet: local replay cache", "err", lerr)
			}
		}
		return fresh, nil
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("fleet: replay check: %w", ctx.Err())
	}
	if f.cfg.OnError == Closed {
		return false, fmt.Errorf("fleet: replay check (policy closed): %w", err)
	}
	f.fallbacks.Add(1)
	fresh, lerr := f.cfg.Local.CheckAndAdd(ctx, digest, now, keep)
	if lerr != nil {
		return false, fmt.Errorf("fleet: replay check: redis: %w; local cache: %w", err, lerr)
	}
	f.mu.Lock()
	f.downFalls++
	first := f.downFalls == 1
	if fresh && len(f.backlog) < maxBacklog {
		var exp int64
		if keep > 0 {
			exp = now.Add(keep).UnixMilli() + 1
		}
		f.backlog = append(f.backlog, digestRec{key, exp})
	}
	f.mu.Unlock()
	if first {
		f.cfg.Log.Warn("fleet: replay checks fall back to the local cache (policy local): a packet accepted by another gateway can be replayed here until redis returns", "err", err)
	}
	return fresh, nil
}

// setNX is SET key 1 NX [PX keep], followed by WAIT when WaitReplicas is set.
func (f *Fleet) setNX(ctx context.Context, key string, keep time.Duration) (bool, error) {
	n := f.cfg.WaitReplicas
	if n == 0 {
		return f.rdb.SetNX(ctx, key, "1", keep).Result()
	}
	var set *redis.BoolCmd
	var wait *redis.Cmd
	_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		set = p.SetNX(ctx, key, "1", keep)
		wait = p.Do(ctx, "wait", n, f.waitTimeout().Milliseconds())
		return nil
	})
	if err != nil {
		return false, err
	}
	return set.Val(), f.checkWait(wait)
}

// waitSlack is added to the deadline of writes followed by WAIT: Redis checks WAIT's timeout
// at its hz (10 times a second by default), so WAIT may answer up to 100 ms late.
const waitSlack = 150 * time.Millisecond

// waitTimeout is WAIT's timeout argument.
func (f *Fleet) waitTimeout() time.Duration { return max(f.cfg.Timeout, time.Millisecond) }

// writeTimeout is the deadline of a write: Timeout, plus waitSlack with WaitReplicas.
func (f *Fleet) writeTimeout() time.Duration {
	if f.cfg.WaitReplicas > 0 {
		return f.cfg.Timeout + waitSlack
	}
	return f.cfg.Timeout
}

func (f *Fleet) checkWait(wait *redis.Cmd) error {
	got, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("WAIT: %w", err)
	}
	if got < int64(f.cfg.WaitReplicas) {
		return fmt.Errorf("WAIT: %d of %d replicas acknowledged the write", got, f.cfg.WaitReplicas)
	}
	return nil
}

// flushBacklog writes the digests accepted locally during an outage to Redis (SET NX PXAT),
// so other gateways refuse their replays too. It runs in the background, one at a time.
func (f *Fleet) flushBacklog() {
	if !f.flushing.CompareAndSwap(false, true) {
		return
	}
	f.mu.Lock()
	recs := f.backlog
	f.backlog = nil
	f.mu.Unlock()
	go func() {
		defer f.flushing.Store(false)
		nowMs := f.cfg.Now().UnixMilli()
		for len(recs) > 0 {
			chunk := recs[:min(len(recs), 1000)]
			ctx, cancel := context.WithTimeout(context.Background(), 4*f.cfg.Timeout)
			_, err := f.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, r := range chunk {
					switch {
					case r.exp == 0:
						p.SetNX(ctx, r.key, "1", 0)
					case r.exp > nowMs:
						p.Do(ctx, "set", r.key, "1", "nx", "pxat", r.exp)
					}
				}
				return nil
			})
			cancel()
			if err != nil {
				f.mu.Lock()
				f.backlog = append(recs, f.backlog...)[:min(len(recs)+len(f.backlog), maxBacklog)]
				f.mu.Unlock()
				f.cfg.Log.Warn("fleet: writing locally accepted digests to redis failed; will retry", "left", len(recs), "err", err)
				return
			}
			recs = recs[len(chunk):]
		}
	}()
}

// Seen reports whether digest is recorded fleet-wide, recording nothing (fwknopd -t). When
// Redis fails: with Local and a Config.Local that has Seen, its answer; else an error.
func (f *Fleet) Seen(ctx context.Context, digest string) (bool, error) {
	if !validDigest(digest) {
		return false, errBadDigest
	}
	cctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	n, err := f.rdb.Exists(cctx, f.replayName(digest)).Result()
	cancel()
	if err = f.result(err); err == nil {
		return n > 0, nil
	}
	if s, ok := f.cfg.Local.(interface {
		Seen(context.Context, string) (bool, error)
	}); ok && f.cfg.OnError == Local && ctx.Err() == nil {
		f.fallbacks.Add(1)
		return s.Seen(ctx, digest)
	}
	return false, fmt.Errorf("fleet: replay lookup: %w", err)
}

// Len returns Config.Local's Len when it has one (the fleet-wide count is not kept), else 0.
func (f *Fleet) Len() int {
	if l, ok := f.cfg.Local.(interface{ Len() int }); ok {
		return l.Len()
	}
	return 0
}

func validDigest(d string) bool {
	if len(d) == 0 || len(d) > 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

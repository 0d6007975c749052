package fleet

import (
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
)

// ErrUnavailable is wrapped by the errors of calls that Redis did not answer in time, or
// answered with an error.
var ErrUnavailable = errors.New("fleet: redis unavailable")

// Fleet is one gateway's link to the fleet. It is safe for concurrent use; Run runs once.
type Fleet struct {
	cfg       Config
	codec     codec
	replayKey []byte // derived key that names replay digests
	rdb       *redis.Client
	newClient func() *redis.Client

	stream, live, replayPrefix string // Redis keys

	published, applied, refused, fallbacks atomic.Uint64
	catchUps                               atomic.Uint64 // Run's completed catch-ups

	mu          sync.Mutex
	connected   bool
	lastErr     string
	downFalls   uint64      // fallbacks since the outage began (logged at recovery)
	backlog     []digestRec // digests accepted locally while Redis was down
	flushing    atomic.Bool // a backlog flush is under way
	pubMu       sync.Mutex  // serialises publishing, so messages keep their order
	pending     []pendingOp // publishes that failed, retried in order (pubMu)
	tombMu      sync.Mutex  // guards tombs and tombAll
	tombs       map[ledger.Key]int64
	tombAll     int64 // Sent of the latest revoke-all seen or made (Unix ms)
	tombSweepAt int
}

// Status is a snapshot of the link's health and counters.
type Status struct {
	Connected      bool   // the last Redis call succeeded
	LastError      string // the last Redis error ("" if none yet)
	Published      uint64 // messages written to the stream
	Applied        uint64 // messages from other gateways applied
	Refused        uint64 // messages refused: forged, malformed, replayed, stale, revoked or expired
	LocalFallbacks uint64 // replay checks answered by the local cache because Redis failed
}

// New returns a Fleet for cfg. It does not contact Redis: a Redis that is down at start is a
// failure of each call (the policy applies) until it answers. Errors: an invalid Config.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	mk, err1 := hkdf.Key(sha256.New, cfg.Key, nil, "sesame fleet message key v1", 32)
	rk, err2 := hkdf.Key(sha256.New, cfg.Key, nil, "sesame fleet replay key v1", 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("fleet: derive keys: %w", err)
	}
	newClient, err := newClientFunc(&cfg)
	if err != nil {
		return nil, err
	}
	routeRedisLog(cfg.Log)
	p := "sesame:{" + cfg.Group + "}:"
	return &Fleet{
		cfg: cfg, codec: codec{key: mk, group: cfg.Group}, replayKey: rk,
		rdb: newClient(), newClient: newClient,
		stream: p + "grants", live: p + "live", replayPrefix: p + "replay:",
		connected: true, tombs: map[ledger.Key]int64{}, tombSweepAt: 1024,
	}, nil
}

// Gateway returns this gateway's name in messages.
func (f *Fleet) Gateway() string { return f.cfg.Gateway }

// Close closes the Redis connections (not Config.Local). Calls after Close fail.
func (f *Fleet) Close() error { return f.rdb.Close() }

// Ping checks that Redis answers within Timeout.
func (f *Fleet) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	return f.result(f.rdb.Ping(ctx).Err())
}

// Status returns the link's health and counters.
func (f *Fleet) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Status{Connected: f.connected, LastError: f.lastErr, Published: f.published.Load(),
		Applied: f.applied.Load(), Refused: f.refused.Load(), LocalFallbacks: f.fallbacks.Load()}
}

// result records the outcome of a Redis call and returns err wrapped in ErrUnavailable.
// The first failure after a success is logged at ERROR, the first success after a failure at
// INFO; a recovery starts flushing what piled up locally.
func (f *Fleet) result(err error) error {
	f.mu.Lock()
	was := f.connected
	if err == nil {
		f.connected = true
		falls := f.downFalls
		f.downFalls = 0
		backlog := len(f.backlog) > 0
		f.mu.Unlock()
		if !was {
			f.cfg.Log.Info("fleet: redis reachable again", "local_fallbacks", falls)
		}
		if backlog {
			f.flushBacklog()
		}
		return nil
	}
	f.connected = false
	f.lastErr = err.Error()
	f.mu.Unlock()
	if was {
		f.cfg.Log.Error("fleet: redis unreachable", "policy", f.cfg.OnError.String(), "err", err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Live returns the fleet's live grants from Redis (for --fw-list): each authenticated,
// unexpired and not revoked by a revocation this gateway has seen, by expiry then key.
func (f *Fleet) Live(ctx context.Context) ([]ledger.Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	all, err := f.rdb.HGetAll(ctx, f.live).Result()
	if err = f.result(err); err != nil {
		return nil, fmt.Errorf("fleet: read live grants: %w", err)
	}
	nowMs := f.cfg.Now().UnixMilli()
	var out []ledger.Entry
	for field, text := range all {
		m, err := f.codec.open(text)
		if err != nil || m.Kind != kindGrant || keyString(m.Grant.Key) != field ||
			m.Grant.Expires.UnixMilli() <= nowMs || f.revoked(m) {
			continue
		}
		out = append(out, m.Grant)
	}
	slices.SortFunc(out, func(a, b ledger.Entry) int {
		return cmp.Or(a.Expires.Compare(b.Expires), a.Src.Compare(b.Src), cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.Port, b.Port))
	})
	return out, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func unixMilli(ms int64) time.Time { return time.UnixMilli(ms) }

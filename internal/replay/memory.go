package replay

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math"
	"sync"
	"time"
)

// never is the expiry of entries kept forever.
const never = math.MaxInt64

// sweepBudget is the number of table slots each call sweeps, so no single call stalls.
const sweepBudget = 64

// Memory is an in-memory replay cache: O(1) lookups in a hash table whose slots carry their
// expiry. Lookups ignore expired entries at once; their slots are reclaimed by a sweep that
// looks at a few slots (sweepBudget) on every call, cycling through the table, and by Sweep.
// Every call holds one mutex for O(1) work, so ctx is only checked before it starts. The zero
// value is not usable; call NewMemory.
//
// Digests are held as 32-byte keys (the decoded SHA-256 of a canonical 43-character digest,
// or the SHA-256 of any other string, whose text is then kept aside) in a flat open-addressing
// table that holds no pointers, so a million entries load fast and cost the
// garbage collector nothing. Memory: 40 bytes per table slot (load factor up to 3/4).
type Memory struct {
	mu     sync.Mutex
	now    func() time.Time
	t      table // expiry (Unix ns), never for forever
	odd    map[key]string
	cursor int // next table slot the incremental sweep looks at
	closed bool
}

// key is the map key of a digest.
type key [32]byte

var b64 = base64.RawStdEncoding.Strict()

// keyOf returns the key of digest d and whether d is canonical (recoverable from the key).
func keyOf(d []byte) (k key, canonical bool) {
	if len(d) == 43 {
		if n, err := b64.Decode(k[:], d); err == nil && n == 32 {
			return k, true
		}
	}
	return sha256.Sum256(d), false
}

// text returns the digest string of k.
func (c *Memory) text(k key) string {
	if s, ok := c.odd[k]; ok {
		return s
	}
	return b64.EncodeToString(k[:])
}

var _ Cache = (*Memory)(nil)

// NewMemory returns an empty cache. now is the cache's clock, used by Seen to decide expiry
// (nil: time.Now); CheckAndAdd uses the time it is given.
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, odd: make(map[key]string)}
}

// Seen implements Cache.
func (c *Memory) Seen(ctx context.Context, digest string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("replay: seen: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, ErrClosed
	}
	now := c.now().UnixNano()
	c.sweepLocked(now, sweepBudget)
	k, _ := keyOf([]byte(digest))
	exp, ok := c.t.get(k)
	return ok && exp > now, nil
}

// CheckAndAdd implements Cache.
func (c *Memory) CheckAndAdd(ctx context.Context, digest string, now time.Time, keep time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("replay: check %q: %w", digest, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, ErrClosed
	}
	if !validDigest(digest) {
		return false, fmt.Errorf("replay: check %q: %w", digest, ErrBadDigest)
	}
	nowNs := now.UnixNano()
	c.sweepLocked(nowNs, sweepBudget)
	k, canonical := keyOf([]byte(digest))
	if exp, ok := c.t.get(k); ok && exp > nowNs {
		return false, nil
	}
	c.t.put(k, expiry(now, keep))
	if !canonical {
		c.odd[k] = digest
	}
	return true, nil
}

// Len implements Cache.
func (c *Memory) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t.len()
}

// Close implements Cache. It drops every entry.
func (c *Memory) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.t = table{}
	c.odd = nil
	return nil
}

// Sweep removes every entry expired at now and returns how many it removed.
func (c *Memory) Sweep(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	nowNs := now.UnixNano()
	var expired []key
	c.t.each(func(k key, exp int64) {
		if exp <= nowNs {
			expired = append(expired, k)
		}
	})
	for _, k := range expired {
		c.t.del(k)
		delete(c.odd, k)
	}
	return len(expired)
}

// expiry converts now+keep to the stored form (keep <= 0: never).
func expiry(now time.Time, keep time.Duration) int64 {
	if keep <= 0 {
		return never
	}
	return max(now.Add(keep).UnixNano(), 1) // 0 marks an empty table slot
}

// sweepLocked looks at up to budget table slots from the cursor on, deleting expired entries.
func (c *Memory) sweepLocked(now int64, budget int) int {
	n := 0
	for seen := 0; seen < budget && c.t.n > 0; seen++ {
		i := c.cursor & (len(c.t.slots) - 1)
		s := &c.t.slots[i]
		if s.exp != 0 && s.exp <= now {
			k := s.k
			c.t.del(k)
			delete(c.odd, k)
			n++
			continue // deletion may shift a later entry into slot i: look again
		}
		c.cursor = i + 1
	}
	return n
}

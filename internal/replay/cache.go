// Package replay remembers the digests of accepted SPA packets so that none is accepted twice.
package replay

import "time"

// Cache is a replay cache. Implementations are safe for concurrent use.
type Cache interface {
	// Seen reports whether digest (spa.ReplayDigest of a wire packet) is in the cache.
	Seen(digest string) (bool, error)
	// Add records digest at now, kept for keep (0: forever).
	Add(digest string, now time.Time, keep time.Duration) error
	// Len is the number of digests held.
	Len() int
	// Close flushes persistent state and releases resources.
	Close() error
}

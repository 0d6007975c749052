// Package replay remembers the digests of accepted SPA packets so that none is accepted twice.
//
// Two implementations are provided: Memory (a map with expiry) and File (Memory plus an
// append-only DIGEST_FILE that survives restarts). A fleet-wide store (Redis SET NX PX) fits
// the same interface: Seen is EXISTS, Add is SET with a PX of keep.
//
// Semantics. fwknopd keeps every digest forever and searches them linearly. sesame keeps a
// digest only for as long as the caller asks (keep): with packet aging on, a packet older than
// MAX_SPA_PACKET_AGE is refused by the age check anyway, so the server passes
// keep = 2*MAX_SPA_PACKET_AGE + SESAME_REPLAY_MARGIN (a timestamp may lie in the future by up
// to MAX_SPA_PACKET_AGE too); with aging off it passes keep = 0, forever.
package replay

import (
	"errors"
	"time"
)

// Cache is a replay cache. Implementations are safe for concurrent use.
type Cache interface {
	// Seen reports whether digest (spa.ReplayDigest of a wire packet) is in the cache and not
	// yet expired.
	Seen(digest string) (bool, error)
	// Add records digest at now, kept for keep (0: forever). Adding a digest that is already
	// present extends its lifetime to the later of the two expiries. When Add returns, the
	// entry is visible to Seen; for persistent caches it has also been handed to the kernel, so
	// it survives the process being killed (see File for the fsync policy).
	Add(digest string, now time.Time, keep time.Duration) error
	// Len is the number of digests held (expired digests not yet swept may be counted).
	Len() int
	// Close flushes persistent state and releases resources.
	Close() error
}

// ErrClosed is returned by a cache used after Close.
var ErrClosed = errors.New("replay cache closed")

// ErrBadDigest is returned (wrapped) by Add for a digest that cannot be stored: empty, longer
// than MaxDigestLen, or containing whitespace or control characters.
var ErrBadDigest = errors.New("invalid replay digest")

// MaxDigestLen is the longest digest accepted (fwknopd reads at most 64 characters; a SHA-256
// digest in unpadded base64 is 43).
const MaxDigestLen = 64

// validDigest reports whether d can be stored in a cache line.
func validDigest(d string) bool { return validDigestBytes([]byte(d)) }

func validDigestBytes(d []byte) bool {
	if len(d) == 0 || len(d) > MaxDigestLen {
		return false
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

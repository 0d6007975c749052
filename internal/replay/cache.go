// Package replay remembers the digests of accepted SPA packets so that none is accepted twice.
//
// Two implementations are provided: Memory (a hash table with expiry) and File (Memory plus an
// append-only DIGEST_FILE that survives restarts). The check and the record are one atomic
// operation, CheckAndAdd, so two copies of a packet handled at once cannot both be fresh. A
// fleet-wide store fits the same interface only if it keeps that atomicity: in Redis,
// CheckAndAdd is one SET key value NX PX keep (fresh when it answers OK); an EXISTS followed by
// a SET would let two gateways both accept the same packet.
//
// Semantics. fwknopd keeps every digest forever and searches them linearly. sesame keeps a
// digest only for as long as the caller asks (keep): with packet aging on, a packet older than
// MAX_SPA_PACKET_AGE is refused by the age check anyway, so the server passes
// keep = fwconf.ReplayKeep (2*MAX_SPA_PACKET_AGE + SESAME_REPLAY_MARGIN: a timestamp may lie in
// the future by up to MAX_SPA_PACKET_AGE too); with aging off it passes keep = 0, forever.
package replay

import (
	"context"
	"errors"
	"time"
)

// Cache is a replay cache. Implementations are safe for concurrent use.
type Cache interface {
	// CheckAndAdd records digest (spa.ReplayDigest of a wire packet) and reports whether it
	// was fresh, as one atomic operation: if the cache holds digest unexpired at now, it
	// returns false and changes nothing; otherwise it stores digest at now, kept for keep (0:
	// forever), and returns true. Of several concurrent calls with one digest at most one is
	// fresh. When it returns true the entry is visible to every later call; for persistent
	// caches it has also been handed to the kernel, so it survives the process being killed
	// (see File for the fsync policy), with the packet's addresses ctx carries (WithPacket).
	// An error (ctx done, a closed cache, a bad digest, a failed write) means the caller must
	// treat the packet as not fresh: fail closed.
	CheckAndAdd(ctx context.Context, digest string, now time.Time, keep time.Duration) (fresh bool, err error)
	// Seen reports whether digest is held and unexpired by the cache's clock, without
	// recording anything (fwknopd -t checks for replays but records nothing).
	Seen(ctx context.Context, digest string) (bool, error)
	// Len is the number of digests held (expired digests not yet swept may be counted).
	Len() int
	// Close flushes persistent state and releases resources. Its error matters: for File it
	// reports the digest file's last fsync.
	Close() error
}

// ErrClosed is returned by a cache used after Close.
var ErrClosed = errors.New("replay cache closed")

// ErrBadDigest is returned (wrapped) by CheckAndAdd for a digest that cannot be stored: empty, longer
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

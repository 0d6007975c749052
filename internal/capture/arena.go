package capture

import "bytes"

// arena copies packet payloads for a source: one allocation per arenaSize bytes instead of one
// per packet, so a flood of forged packets costs the garbage collector little. Each copy is
// capped at its own length (a full slice expression): a caller that appends to its payload
// gets a new array instead of writing over the next packet's bytes. A payload keeps its chunk
// alive until the caller drops it. An arena is used by one goroutine.
type arena struct{ buf []byte }

// arenaSize is a chunk: about 40 full-size (1,500-byte) payloads, 300 SPA packets.
const arenaSize = 64 << 10

// arenaOwn is the payload size from which a copy gets an array of its own: a large datagram
// would waste the rest of a chunk, and pin a whole one.
const arenaOwn = arenaSize / 8

// copy returns a copy of b that the caller owns.
func (a *arena) copy(b []byte) []byte {
	if len(b) >= arenaOwn {
		return bytes.Clone(b)
	}
	if cap(a.buf)-len(a.buf) < len(b) {
		a.buf = make([]byte, 0, max(arenaSize, len(b)))
	}
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

package capture

import (
	"bytes"
	"testing"
)

// TestArena: copies are equal to their sources, independent of them and of each other (an
// append to one does not touch the next), also across chunks and for a payload larger than a
// chunk.
func TestArena(t *testing.T) {
	var a arena
	var srcs, copies [][]byte
	for i := range 400 {
		n := 1 + i*37%1500
		if i == 200 {
			n = arenaSize + 1
		}
		b := bytes.Repeat([]byte{byte(i)}, n)
		srcs = append(srcs, b)
		copies = append(copies, a.copy(b))
		b[0] ^= 0xff // the source changes after the copy (the ring frame is handed back)
	}
	for i, c := range copies {
		_ = append(c, 'x', 'y', 'z') // may not write into the next copy
		srcs[i][0] ^= 0xff
		if !bytes.Equal(c, srcs[i]) {
			t.Fatalf("copy %d of %d bytes differs from its source", i, len(srcs[i]))
		}
	}
}

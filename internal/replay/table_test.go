package replay

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// keyWithHome returns a key whose home slot in a table of minTableSize slots is h, with the
// rest of the key from r (to make keys distinct).
func keyWithHome(h int, r uint64) key {
	const c = 0x9E3779B97F4A7C15
	inv := uint64(c) // Newton's iteration for the inverse of c modulo 2^64
	for i := 0; i < 6; i++ {
		inv *= 2 - c*inv
	}
	var t table
	t.init(minTableSize)
	var k key
	binary.LittleEndian.PutUint64(k[:8], (uint64(h)<<t.shift|r&(1<<t.shift-1))*inv)
	binary.LittleEndian.PutUint64(k[8:16], r)
	if t.home(&k) != h {
		panic("keyWithHome")
	}
	return k
}

// TestTableAgainstMap runs random puts and deletes against a Go map, with keys crowded into a
// few home slots at the table's end so probe runs wrap around.
func TestTableAgainstMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var tab table
	ref := map[key]int64{}
	var keys []key
	for i := 0; i < 200; i++ {
		keys = append(keys, keyWithHome(minTableSize-1-r.IntN(4), r.Uint64()))
	}
	for i := 0; i < 500; i++ { // spread keys to force growth later
		var k key
		binary.LittleEndian.PutUint64(k[:8], r.Uint64())
		keys = append(keys, k)
	}
	for step := 0; step < 20000; step++ {
		k := keys[r.IntN(len(keys))]
		switch r.IntN(4) {
		case 0:
			exp := int64(r.IntN(1000) + 1)
			tab.put(k, exp)
			ref[k] = exp
		case 1:
			exp := int64(r.IntN(1000) + 1)
			old, ok := ref[k]
			if changed := tab.putMax(k, exp); changed != (!ok || exp > old) {
				t.Fatalf("step %d: putMax changed=%v with old %d,%v new %d", step, changed, old, ok, exp)
			}
			if !ok || exp > old {
				ref[k] = exp
			}
		case 2:
			_, want := ref[k]
			if got := tab.del(k); got != want {
				t.Fatalf("step %d: del = %v, want %v", step, got, want)
			}
			delete(ref, k)
		}
		if tab.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, tab.len(), len(ref))
		}
		if step%97 == 0 {
			for _, k := range keys {
				got, ok := tab.get(k)
				want, wok := ref[k]
				if ok != wok || got != want {
					t.Fatalf("step %d: get = %d,%v want %d,%v", step, got, ok, want, wok)
				}
			}
		}
	}
	n := 0
	tab.each(func(k key, exp int64) {
		if ref[k] != exp {
			t.Fatalf("each: %d != %d", exp, ref[k])
		}
		n++
	})
	if n != len(ref) {
		t.Fatalf("each visited %d, want %d", n, len(ref))
	}
}

package replay

import "encoding/binary"

// table is an open-addressing hash table from 32-byte keys to expiries, with linear probing
// and backward-shift deletion. Keys are SHA-256 outputs (or decoded SHA-256 digests), so their
// first 8 bytes, mixed by a multiplication, index the table directly. It holds no pointers, so
// the garbage collector never scans it, and loading a million entries costs about one cache
// miss each. A slot with exp 0 is empty; stored expiries are always > 0.
type table struct {
	slots []slot
	n     int
	shift uint  // 64 - log2(len(slots))
	sink  int64 // keeps putBatch's touching loads from being optimised away
}

type slot struct {
	k   key
	exp int64
}

const minTableSize = 1024

// newTable returns a table that holds n entries without growing.
func newTable(n int) table {
	size := minTableSize
	for size*3/4 < n {
		size *= 2
	}
	var t table
	t.init(size)
	return t
}

func (t *table) init(size int) {
	t.slots = make([]slot, size)
	t.n = 0
	t.shift = 64
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
}

func (t *table) home(k *key) int {
	return int((binary.LittleEndian.Uint64(k[:8]) * 0x9E3779B97F4A7C15) >> t.shift)
}

// find returns the slot index of k, or -1.
func (t *table) find(k *key) int {
	if len(t.slots) == 0 {
		return -1
	}
	mask := len(t.slots) - 1
	for i := t.home(k); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.exp == 0 {
			return -1
		}
		if s.k == *k {
			return i
		}
	}
}

func (t *table) get(k key) (int64, bool) {
	if i := t.find(&k); i >= 0 {
		return t.slots[i].exp, true
	}
	return 0, false
}

// put sets k's expiry (exp > 0), inserting it if absent.
func (t *table) put(k key, exp int64) {
	if len(t.slots) == 0 {
		t.init(minTableSize)
	}
	if i := t.find(&k); i >= 0 {
		t.slots[i].exp = exp
		return
	}
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	t.insert(k, exp)
}

// insert adds a key known to be absent.
func (t *table) insert(k key, exp int64) {
	mask := len(t.slots) - 1
	i := t.home(&k)
	for t.slots[i].exp != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot{k: k, exp: exp}
	t.n++
}

// putMax sets k's expiry to exp (> 0) unless it already holds a later one, in one probe.
// It reports whether the table changed.
func (t *table) putMax(k key, exp int64) bool {
	if len(t.slots) == 0 || (t.n+1)*4 > len(t.slots)*3 {
		if len(t.slots) == 0 {
			t.init(minTableSize)
		} else {
			t.grow()
		}
	}
	mask := len(t.slots) - 1
	i := t.home(&k)
	for {
		s := &t.slots[i]
		if s.exp == 0 {
			*s = slot{k: k, exp: exp}
			t.n++
			return true
		}
		if s.k == k {
			if s.exp >= exp {
				return false
			}
			s.exp = exp
			return true
		}
		i = (i + 1) & mask
	}
}

// putBatch applies putMax to each entry. It first touches every entry's home slot, so the
// cache misses of the batch overlap instead of being paid one after another.
func (t *table) putBatch(b []slot) {
	if len(t.slots) == 0 || (t.n+len(b))*4 > len(t.slots)*3 {
		for i := range b {
			t.putMax(b[i].k, b[i].exp)
		}
		return
	}
	var sink int64
	for i := range b {
		sink += t.slots[t.home(&b[i].k)].exp
	}
	t.sink = sink
	for i := range b {
		t.putMax(b[i].k, b[i].exp)
	}
}

func (t *table) grow() {
	old := t.slots
	t.init(2 * len(old))
	for i := range old {
		if old[i].exp != 0 {
			t.insert(old[i].k, old[i].exp)
		}
	}
}

// del removes k, shifting later entries of its probe run back so lookups stay correct.
func (t *table) del(k key) bool {
	i := t.find(&k)
	if i < 0 {
		return false
	}
	mask := len(t.slots) - 1
	for j := i; ; {
		j = (j + 1) & mask
		if t.slots[j].exp == 0 {
			break
		}
		h := t.home(&t.slots[j].k)
		// The entry at j may move to the hole at i unless its home lies cyclically in (i, j].
		if i <= j {
			if i < h && h <= j {
				continue
			}
		} else if i < h || h <= j {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = slot{}
	t.n--
	return true
}

func (t *table) len() int { return t.n }

func (t *table) each(fn func(k key, exp int64)) {
	for i := range t.slots {
		if t.slots[i].exp != 0 {
			fn(t.slots[i].k, t.slots[i].exp)
		}
	}
}

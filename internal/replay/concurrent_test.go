package replay

import (
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestConcurrent adds and looks up from many goroutines (run with -race), across a
// compaction.
func TestConcurrent(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), FileOptions{CompactMin: 50})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []Cache{NewMemory(nil), f} {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					d := digestN(g*1000 + i)
					keep := time.Duration(i%2) * time.Millisecond // half expire at once
					if err := c.Add(d, time.Now(), keep); err != nil {
						t.Error(err)
						return
					}
					if seen, err := c.Seen(d); err != nil || (keep == 0 && !seen) {
						t.Errorf("Seen(%s) = %v, %v", d, seen, err)
						return
					}
				}
			}(g)
		}
		wg.Wait()
		if n := c.Len(); n < 600 {
			t.Errorf("%T: Len = %d, want >= 600 forever entries", c, n)
		}
	}
}

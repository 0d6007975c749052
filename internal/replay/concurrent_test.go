package replay

import (
	"path/filepath"
	"sync"
	"sync/atomic"
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
	defer closeT(t, f)
	for _, c := range []Cache{NewMemory(nil), f} {
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 300; i++ {
					d := digestN(g*1000 + i)
					keep := time.Duration(i%2) * time.Millisecond // half expire at once
					if fresh, err := c.CheckAndAdd(ctx, d, time.Now(), keep); err != nil || !fresh {
						t.Errorf("CheckAndAdd(%s) = %v, %v", d, fresh, err)
						return
					}
					if seen, err := c.Seen(ctx, d); err != nil || (keep == 0 && !seen) {
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

// TestCheckAndAddAtomic: of many goroutines offering the same digests at once, exactly one
// finds each fresh (what the server relies on instead of a lock of its own).
func TestCheckAndAddAtomic(t *testing.T) {
	f, err := OpenFile(filepath.Join(t.TempDir(), "digest.cache"), FileOptions{CompactMin: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}()
	for _, c := range []Cache{NewMemory(nil), f} {
		const digests, workers = 200, 8
		var fresh [digests]atomic.Int32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				<-start
				for i := range digests {
					ok, err := c.CheckAndAdd(ctx, digestN(i), time.Now(), time.Duration(i%2)*time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						fresh[i].Add(1)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for i := range fresh {
			if n := fresh[i].Load(); n != 1 {
				t.Errorf("%T: digest %d fresh %d times, want once", c, i, n)
			}
		}
	}
}

package shield

import (
	"syscall"
	"testing"
	"time"
)

// testPool is a pipePool with fake pipes, a settable clock and timers the test fires.
type testPool struct {
	*pipePool
	now     time.Time
	opened  int
	closed  int
	failing bool
	timers  []func()
}

func newTestPool(max, maxIdle int) *testPool {
	tp := &testPool{now: time.Unix(1_000_000, 0)}
	pp := newPipePool(max, maxIdle, 5*time.Second)
	pp.now = func() time.Time { return tp.now }
	pp.open = func() (*pipe, error) {
		if tp.failing {
			return nil, syscall.EMFILE
		}
		tp.opened++
		return &pipe{r: tp.opened}, nil
	}
	pp.close = func(*pipe) { tp.closed++ }
	pp.afterFunc = func(_ time.Duration, f func()) { tp.timers = append(tp.timers, f) }
	tp.pipePool = pp
	return tp
}

// fire runs the timers scheduled so far.
func (tp *testPool) fire() {
	ts := tp.timers
	tp.timers = nil
	for _, f := range ts {
		f()
	}
}

func TestPipePoolBounds(t *testing.T) {
	tp := newTestPool(4, 2)
	var got []*pipe
	for range 4 {
		p := tp.get()
		if p == nil {
			t.Fatal("no pipe below the cap")
		}
		got = append(got, p)
	}
	if p := tp.get(); p != nil || tp.stats().Fallbacks != 1 {
		t.Fatalf("fifth pipe: %v, fallbacks %d; want none and one fallback", p, tp.stats().Fallbacks)
	}
	for _, p := range got {
		tp.put(p)
	}
	// Two stay for reuse, two are closed at once.
	if s := tp.stats(); s.Open != 2 || s.Idle != 2 || tp.closed != 2 {
		t.Fatalf("after returning 4 with room for 2 idle: %+v, %d closed", s, tp.closed)
	}
	// Reuse takes an idle pipe, no new one.
	p := tp.get()
	if tp.opened != 4 {
		t.Errorf("opened a new pipe although one was idle")
	}
	// A pipe returned with bytes in it is closed, never reused.
	p.n = 10
	tp.put(p)
	if s := tp.stats(); s.Open != 1 || tp.closed != 3 {
		t.Errorf("dirty pipe: %+v, %d closed", s, tp.closed)
	}
	// When the kernel refuses a pipe (EMFILE), the copy falls back, and the count of
	// open pipes is not raised.
	tp.get() // the idle one
	tp.failing = true
	if p := tp.get(); p != nil || tp.stats().Open != 1 || tp.stats().Fallbacks != 2 {
		t.Errorf("at EMFILE: %v, %+v", p, tp.stats())
	}
}

func TestPipePoolClosesIdle(t *testing.T) {
	tp := newTestPool(8, 8)
	a, b := tp.get(), tp.get()
	tp.put(a)
	tp.now = tp.now.Add(3 * time.Second)
	tp.put(b)
	if len(tp.timers) != 1 {
		t.Fatalf("%d trims scheduled, want 1", len(tp.timers))
	}
	tp.now = tp.now.Add(2 * time.Second) // a idle 5 s, b 2 s
	tp.fire()
	if s := tp.stats(); s.Open != 1 || s.Idle != 1 || tp.closed != 1 {
		t.Fatalf("after 5 s: %+v, %d closed; want only the older pipe closed", s, tp.closed)
	}
	if len(tp.timers) != 1 {
		t.Fatalf("no trim scheduled for the pipe left")
	}
	tp.now = tp.now.Add(3 * time.Second)
	tp.fire()
	if s := tp.stats(); s.Open != 0 || s.Idle != 0 || tp.closed != 2 || len(tp.timers) != 0 {
		t.Errorf("after 8 s: %+v, %d closed, %d timers; want all closed and no timer", s, tp.closed, len(tp.timers))
	}
	// A pipe returned later arms a new trim.
	tp.put(tp.get())
	if len(tp.timers) != 1 {
		t.Error("no trim scheduled after the pool emptied and filled again")
	}
}

func TestParseStat(t *testing.T) {
	for in, want := range map[string]proc{
		"42 (sh) S 7 42 42 0 -1":           {pid: 42, ppid: 7},
		"43 (a) b (c)) Z 1 43 43 0":        {pid: 43, ppid: 1, zombie: true},
		"44 (sleep 1000) R 43 1 1 0 -1 42": {pid: 44, ppid: 43},
	} {
		var pid int
		for _, c := range in {
			if c == ' ' {
				break
			}
			pid = pid*10 + int(c-'0')
		}
		got, ok := parseStat(pid, []byte(in))
		if !ok || got != want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v", in, got, ok, want)
		}
	}
	if _, ok := parseStat(1, []byte("1 (no end")); ok {
		t.Error("stat without ')' accepted")
	}
	procs := []proc{{1, 0, false}, {10, 1, false}, {11, 10, false}, {12, 11, true}, {13, 12, false}, {20, 1, false}}
	if got := descendants(procs, 10); len(got) != 2 || got[0] != 11 || got[1] != 13 {
		t.Errorf("descendants of 10: %v, want [11 13] (12 is a zombie)", got)
	}
}

func FuzzParseStat(f *testing.F) {
	for _, s := range []string{"42 (sh) S 7 42 42 0 -1", "43 (a) b (c)) Z 1 43", "1 (x", "2 () R -5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseStat(7, []byte(s))
		if ok && p.pid != 7 {
			t.Fatalf("%q: pid %d", s, p.pid)
		}
	})
}

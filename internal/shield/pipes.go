package shield

import (
	"sync"
	"time"
)

// Splice pipes. Go's own io.Copy between two TCP connections splices through a pipe it
// takes for the whole life of the copy and keeps, after the copy, in a pool that only the
// garbage collector empties: a held connection costs two pipes (four descriptors) even
// while idle, and after a burst thousands of pipe descriptors stay open for minutes.
// The relay here takes a pipe only while bytes are moving, from a pool that holds at
// most MaxPipes pipes and closes idle ones after PipeIdle; when no pipe can be had it
// copies through memory instead.

// Pipe pool limits of the relay.
const (
	MaxPipes  = 128             // pipes open at once (two descriptors each)
	IdlePipes = 16              // pipes kept for reuse
	PipeIdle  = 5 * time.Second // an unused pipe is closed after this
)

// PipeStats describe the relay's splice pipes.
type PipeStats struct {
	Open      int    // pipes open (two descriptors each), in use or idle
	Idle      int    // pipes waiting in the pool
	Fallbacks uint64 // copies made through memory because no pipe could be had
}

// pipe is a splice pipe: bytes go in at w and come out at r. n is how many bytes sit in
// it; a pipe returned with n != 0 is closed, not reused.
type pipe struct {
	r, w int
	n    int
	last time.Time // when it went back to the pool
}

// pipePool hands out pipes, up to max open at once, keeping at most maxIdle for reuse
// and closing those unused for idle.
type pipePool struct {
	max, maxIdle int
	idle         time.Duration
	now          func() time.Time
	open         func() (*pipe, error)       // makes a pipe (newPipe)
	close        func(*pipe)                 // closes one (closePipe)
	afterFunc    func(time.Duration, func()) // schedules a trim (time.AfterFunc)

	mu        sync.Mutex
	free      []*pipe // oldest first
	nOpen     int
	fallbacks uint64
	trimArmed bool
}

func newPipePool(max, maxIdle int, idle time.Duration) *pipePool {
	return &pipePool{max: max, maxIdle: maxIdle, idle: idle, now: time.Now, open: newPipe, close: closePipe,
		afterFunc: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// pipes is the pool every relay in the process shares.
var pipes = newPipePool(MaxPipes, IdlePipes, PipeIdle)

// Pipes reports the state of the process's splice pipes.
func Pipes() PipeStats { return pipes.stats() }

// get returns a pipe, or nil (and counts a fallback) when max pipes are open or the
// kernel refuses a new one (for instance at RLIMIT_NOFILE).
func (pp *pipePool) get() *pipe {
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free = pp.free[:n-1]
		pp.mu.Unlock()
		return p
	}
	if pp.nOpen >= pp.max {
		pp.fallbacks++
		pp.mu.Unlock()
		return nil
	}
	pp.nOpen++
	pp.mu.Unlock()
	p, err := pp.open()
	if err != nil {
		pp.mu.Lock()
		pp.nOpen--
		pp.fallbacks++
		pp.mu.Unlock()
		return nil
	}
	return p
}

// put returns p to the pool, or closes it when it is not empty or the pool is full.
func (pp *pipePool) put(p *pipe) {
	pp.mu.Lock()
	if p.n != 0 || len(pp.free) >= pp.maxIdle {
		pp.nOpen--
		pp.mu.Unlock()
		pp.close(p)
		return
	}
	p.last = pp.now()
	pp.free = append(pp.free, p)
	arm := !pp.trimArmed
	pp.trimArmed = true
	pp.mu.Unlock()
	if arm {
		pp.afterFunc(pp.idle, pp.trim)
	}
}

// trim closes the pipes idle for pp.idle or longer, and schedules itself again while
// pipes remain in the pool.
func (pp *pipePool) trim() {
	pp.mu.Lock()
	now := pp.now()
	n := 0
	for n < len(pp.free) && now.Sub(pp.free[n].last) >= pp.idle {
		n++
	}
	old := append([]*pipe(nil), pp.free[:n]...)
	pp.free = append(pp.free[:0], pp.free[n:]...)
	pp.nOpen -= n
	pp.trimArmed = len(pp.free) > 0
	var next time.Duration
	if pp.trimArmed {
		next = max(pp.idle-now.Sub(pp.free[0].last), time.Millisecond)
	}
	pp.mu.Unlock()
	for _, p := range old {
		pp.close(p)
	}
	if next > 0 {
		pp.afterFunc(next, pp.trim)
	}
}

func (pp *pipePool) stats() PipeStats {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return PipeStats{Open: pp.nOpen, Idle: len(pp.free), Fallbacks: pp.fallbacks}
}

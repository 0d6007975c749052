package cmdexec

import (
	"context"
	"sync"
)

// Pool runs commands on at most Workers goroutines, with at most Queue commands waiting.
type Pool struct {
	exec  Executor
	queue chan job
	wg    sync.WaitGroup
	ctx   context.Context
}

type job struct {
	spec Spec
	done func(Result)
}

// NewPool starts workers goroutines (at least 1) running commands with e, queueing up to
// queue more. The workers stop when ctx ends; commands running then are killed.
func NewPool(ctx context.Context, e Executor, workers, queue int) *Pool {
	p := &Pool{exec: e, queue: make(chan job, max(queue, 0)), ctx: ctx}
	for range max(workers, 1) {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.wg.Done()
	for {
		select {
		case <-p.ctx.Done():
			return
		case j := <-p.queue:
			r := p.exec.Run(p.ctx, j.spec)
			if j.done != nil {
				j.done(r)
			}
		}
	}
}

// Submit queues s without waiting; done, if not nil, gets the result on a worker goroutine.
// It returns ErrBusy, running nothing, when the queue is full or the pool has stopped.
func (p *Pool) Submit(s Spec, done func(Result)) error {
	if p.ctx.Err() != nil {
		return ErrBusy
	}
	select {
	case p.queue <- job{s, done}:
		return nil
	default:
		return ErrBusy
	}
}

// Wait waits for the workers to stop (after the pool's context ended).
func (p *Pool) Wait() { p.wg.Wait() }

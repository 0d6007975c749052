package nfevents

import "sync"

// Source is what consumers of ruleset events need: Watcher in production, Fake in tests.
type Source interface {
	// Next blocks until at least one event is available and returns them in kernel order. A
	// batch holding Overrun means events were lost. After Close it returns an error wrapping
	// net.ErrClosed.
	Next() ([]Event, error)
	// Close releases the source and unblocks Next.
	Close() error
}

// Fake is a Source fed by the test: each Push is one batch for Next. The zero value is ready;
// it is safe for concurrent use.
type Fake struct {
	once sync.Once
	ch   chan []Event
	done chan struct{}
	stop sync.Once
}

// fakeQueue is how many batches Push queues before it blocks.
const fakeQueue = 1024

func (f *Fake) init() {
	f.once.Do(func() {
		f.ch = make(chan []Event, fakeQueue)
		f.done = make(chan struct{})
	})
}

// Push queues events as one batch for Next. It blocks while 1024 batches are queued, and drops
// the batch if f is closed. Pushing no events is a no-op (Next never returns an empty batch).
func (f *Fake) Push(events ...Event) {
	f.init()
	if len(events) == 0 {
		return
	}
	batch := append([]Event(nil), events...)
	select {
	case <-f.done:
	case f.ch <- batch:
	}
}

// Next returns the oldest pushed batch, blocking until there is one. After Close it returns an
// error wrapping net.ErrClosed, even if batches are queued.
func (f *Fake) Next() ([]Event, error) {
	f.init()
	select {
	case <-f.done:
		return nil, errClosed
	default:
	}
	select {
	case <-f.done:
		return nil, errClosed
	case b := <-f.ch:
		return b, nil
	}
}

// Close unblocks Next. It always returns nil.
func (f *Fake) Close() error {
	f.init()
	f.stop.Do(func() { close(f.done) })
	return nil
}

package capture

import (
	"fmt"
	"net"
	"sync"
)

// Chan is an in-memory Source for tests: packets pushed with Push come out of Read in order.
// It is safe for concurrent use.
type Chan struct {
	ch   chan Packet
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	screen func(Packet) bool
}

// Fake is another name for Chan.
type Fake = Chan

var (
	_ Source   = (*Chan)(nil)
	_ Screener = (*Chan)(nil)
	_ Backlog  = (*Chan)(nil)
)

// NewChan returns a Chan holding up to buffer unread packets before Push blocks.
func NewChan(buffer int) *Chan {
	return &Chan{ch: make(chan Packet, buffer), done: make(chan struct{})}
}

// Push queues p, blocking while the buffer is full. After Close it returns an error wrapping
// net.ErrClosed.
func (c *Chan) Push(p Packet) error {
	select {
	case <-c.done:
		return fmt.Errorf("capture: push: %w", net.ErrClosed)
	default:
	}
	select {
	case c.ch <- p:
		return nil
	case <-c.done:
		return fmt.Errorf("capture: push: %w", net.ErrClosed)
	}
}

// Read returns the next pushed packet the screen (if any) does not settle. After Close it
// returns an error wrapping net.ErrClosed, even if packets are still queued.
func (c *Chan) Read() (Packet, error) {
	for {
		select {
		case <-c.done:
			return Packet{}, fmt.Errorf("capture: read: %w", net.ErrClosed)
		default:
		}
		select {
		case p := <-c.ch:
			c.mu.Lock()
			f := c.screen
			c.mu.Unlock()
			if f != nil && f(p) {
				continue
			}
			return p, nil
		case <-c.done:
			return Packet{}, fmt.Errorf("capture: read: %w", net.ErrClosed)
		}
	}
}

// Waiting implements Backlog: whether a pushed packet is unread.
func (c *Chan) Waiting() bool { return len(c.ch) > 0 }

// Screen implements Screener.
func (c *Chan) Screen(f func(Packet) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.screen = f
}

// Close unblocks Read and Push. Closing twice is not an error.
func (c *Chan) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sesame-spa/sesame/internal/firewall"
)

// ManyGranter is a Firewall that can make many grants in one transaction (the nftables
// backend's GrantMany). When Run uses several workers with such a firewall, concurrent grants
// are committed together (group commit), so a burst of valid packets costs one netlink
// transaction per batch instead of one per packet.
type ManyGranter interface {
	GrantMany(ctx context.Context, gs []firewall.Grant) error
}

// maxBatch bounds the grants committed together.
const maxBatch = 1000

type grantReq struct {
	gs      []firewall.Grant
	err     error         // final once done is closed
	done    chan struct{} // closed by the commit that settles the request
	promote chan struct{} // closed when the request's worker is to commit next
}

// settled reports whether r's commit is over.
func (r *grantReq) settled() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// settle sets r's result and wakes its worker.
func (r *grantReq) settle(err error) {
	r.err = err
	close(r.done)
}

// batcher is a group commit without a goroutine of its own. A worker that wants a grant queues
// it; if no worker is committing, it becomes the leader and commits everything queued so far
// (oldest first, up to maxBatch grants a transaction) until its own request is settled, then
// hands the lead to the worker of the oldest request still queued, or gives it up. A lone grant
// is thus committed by its own worker at once, with no hand-off to another goroutine; grants
// that arrive during a commit go together in the next one, and each waiting worker is woken by
// the commit that settles its request.
type batcher struct {
	fw ManyGranter

	mu      sync.Mutex
	queue   []*grantReq
	leading bool // a worker commits; it promotes the next leader or clears this
}

func newBatcher(fw ManyGranter) *batcher { return &batcher{fw: fw} }

// grant queues gs and returns once a batch holding it has been committed, with that batch's
// result for gs.
func (b *batcher) grant(ctx context.Context, gs []firewall.Grant) error {
	req := &grantReq{gs: gs, done: make(chan struct{}), promote: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, req)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if !lead {
		select {
		case <-req.done:
			return req.err
		case <-req.promote:
		}
	}
	b.lead(ctx, req)
	return req.err
}

// lead commits the oldest queued requests until req is settled, then hands the lead on. If a
// commit panics, req is withdrawn and settled with an error (its worker is unwinding), and the
// lead is handed on all the same.
func (b *batcher) lead(ctx context.Context, req *grantReq) {
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if !req.settled() { // a commit of older requests panicked
			if i := slices.Index(b.queue, req); i >= 0 {
				b.queue = slices.Delete(b.queue, i, i+1)
			}
			req.settle(errors.New("grant withdrawn: the firewall panicked in an earlier commit"))
		}
		if len(b.queue) == 0 {
			b.leading = false
		} else {
			close(b.queue[0].promote)
		}
	}()
	for !req.settled() {
		b.commit(ctx, b.take())
	}
}

// take removes the oldest queued requests, up to maxBatch grants (at least one request).
func (b *batcher) take() []*grantReq {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, i := 0, 0
	for i < len(b.queue) && (i == 0 || n+len(b.queue[i].gs) <= maxBatch) {
		n += len(b.queue[i].gs)
		i++
	}
	batch := b.queue[:i:i]
	b.queue = append([]*grantReq(nil), b.queue[i:]...)
	return batch
}

// commit makes the grants of batch in one transaction and settles each request. If the
// transaction fails, each request is retried on its own so that the failure is attributed to
// the request that caused it. If the firewall panics, every request of batch not yet settled
// fails, and the panic goes on to the leader (Handle recovers it).
func (b *batcher) commit(ctx context.Context, batch []*grantReq) {
	defer func() {
		if r := recover(); r != nil {
			for _, q := range batch {
				if !q.settled() {
					q.settle(fmt.Errorf("firewall panicked in another packet's commit: %v", r))
				}
			}
			panic(r)
		}
	}()
	if len(batch) == 1 {
		batch[0].settle(b.fw.GrantMany(ctx, batch[0].gs))
		return
	}
	var all []firewall.Grant
	for _, r := range batch {
		all = append(all, r.gs...)
	}
	if err := b.fw.GrantMany(ctx, all); err != nil {
		for _, r := range batch {
			r.settle(b.fw.GrantMany(ctx, r.gs))
		}
		return
	}
	for _, r := range batch {
		r.settle(nil)
	}
}

package server

import (
	"context"

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
	gs  []firewall.Grant
	err chan error
}

// batcher commits grant requests from workers in batches.
type batcher struct {
	fw   ManyGranter
	reqs chan *grantReq
}

func newBatcher(fw ManyGranter, workers int) *batcher {
	return &batcher{fw: fw, reqs: make(chan *grantReq, workers)}
}

// grant queues gs and waits for its batch to be committed.
func (b *batcher) grant(ctx context.Context, gs []firewall.Grant) error {
	req := &grantReq{gs: gs, err: make(chan error, 1)}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-req.err
}

// run commits batches until reqs is closed. Every queued request gets an answer.
func (b *batcher) run(ctx context.Context) {
	for req := range b.reqs {
		batch := []*grantReq{req}
		n := len(req.gs)
	more:
		for n < maxBatch {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					break more
				}
				batch = append(batch, r)
				n += len(r.gs)
			default:
				break more
			}
		}
		b.commit(ctx, batch, n)
	}
}

func (b *batcher) commit(ctx context.Context, batch []*grantReq, n int) {
	if len(batch) == 1 {
		batch[0].err <- b.fw.GrantMany(ctx, batch[0].gs)
		return
	}
	all := make([]firewall.Grant, 0, n)
	for _, r := range batch {
		all = append(all, r.gs...)
	}
	if err := b.fw.GrantMany(ctx, all); err == nil {
		for _, r := range batch {
			r.err <- nil
		}
		return
	}
	// Attribute the failure: retry each request on its own.
	for _, r := range batch {
		r.err <- b.fw.GrantMany(ctx, r.gs)
	}
}

package shield

import (
	"context"
	"sync/atomic"
)

// A Tally counts what the Forward and Exec handlers did with the connections they were
// given: passed on (the upstream accepted the dial, or the program started) or reset
// because the upstream could not be reached or the program not started. The zero value is
// ready; it is safe for concurrent use.
type Tally struct {
	relayed, failed atomic.Uint64
}

// Relayed returns the connections passed on to the upstream or to a program.
func (t *Tally) Relayed() uint64 { return t.relayed.Load() }

// Failed returns the connections reset because the upstream or the program was not
// reached.
func (t *Tally) Failed() uint64 { return t.failed.Load() }

type tallyKey struct{}

// WithTally returns a copy of ctx that makes the Forward and Exec handlers run under it
// (Server.Serve passes its ctx on to them) count into t.
func WithTally(ctx context.Context, t *Tally) context.Context {
	return context.WithValue(ctx, tallyKey{}, t)
}

// count adds one connection to ctx's Tally, if it has one.
func count(ctx context.Context, relayed bool) {
	t, _ := ctx.Value(tallyKey{}).(*Tally)
	switch {
	case t == nil:
	case relayed:
		t.relayed.Add(1)
	default:
		t.failed.Add(1)
	}
}

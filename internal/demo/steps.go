package demo

import (
	"context"
	"errors"
	"fmt"
)

// A step is one scene of the demo. run narrates what it does with n and returns an error
// when the system did not behave as the step shows it should.
type step struct {
	name  string // short, stable identifier: printed, and named in the error
	title string
	run   func(ctx context.Context, n *Narrator) (summary string, err error)
}

// A StepError says which step misbehaved, or was running when the demo was interrupted.
type StepError struct {
	Num  int    // 1-based
	Name string // the step's identifier ("knock")
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("step %d (%s): %v", e.Num, e.Name, e.Err) }
func (e *StepError) Unwrap() error { return e.Err }

// runSteps runs steps in order, each headed and closed by n, and stops at the first that
// fails, or when ctx ends (the running step is then reported with ctx's cause). It
// returns nil when every step behaved, else a *StepError.
func runSteps(ctx context.Context, n *Narrator, steps []step) error {
	for i, s := range steps {
		if ctx.Err() != nil {
			return &StepError{i + 1, s.name, context.Cause(ctx)}
		}
		n.Step(s.name, s.title)
		summary, err := s.run(ctx, n)
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
				err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
			}
			n.Fail("%v", err)
			return &StepError{i + 1, s.name, err}
		}
		n.OK("%s", summary)
	}
	return nil
}

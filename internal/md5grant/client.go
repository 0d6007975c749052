package md5grant

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// A Knocker sends a stanza's SPA packet and derives the stanza's TCP-MD5 key: the client
// half of a SESAME_MD5 grant.
type Knocker struct {
	RCPath string               // the rc file; "" = ~/.fwknoprc
	Env    knock.Env            // zero: the real clock, randomness and user
	Sender knock.Sender         // nil: knock.NetSender{}
	Warn   func(string)         // rc warnings; nil: dropped
	Build  func(*knock.Options) // optional last changes to the options (tests, flags)
}

// Knock loads stanza (merged over [default]) from the rc file, sends its SPA packet and
// returns the key derived from the packet's keys (Derive), with the packet.
func (k *Knocker) Knock(ctx context.Context, stanza string) (tcpmd5.Key, *knock.Packet, error) {
	f, err := knock.LoadRC(k.RCPath, true)
	if err != nil {
		return tcpmd5.Key{}, nil, fmt.Errorf("md5grant: %w", err)
	}
	o, warns, err := knock.FromRC(f, stanza)
	for _, w := range warns {
		if k.Warn != nil {
			k.Warn(w)
		}
	}
	if err != nil {
		return tcpmd5.Key{}, nil, fmt.Errorf("md5grant: %w", err)
	}
	if k.Build != nil {
		k.Build(o)
	}
	s := k.Sender
	if s == nil {
		s = knock.NetSender{}
	}
	p, _, err := knock.Knock(ctx, o, k.Env, s)
	if err != nil {
		return tcpmd5.Key{}, p, fmt.Errorf("md5grant: knock with stanza [%s]: %w", stanza, err)
	}
	key, err := Derive(p.Keys)
	if err != nil {
		return tcpmd5.Key{}, p, err
	}
	return key, p, nil
}

// Dialer is what DialRetry dials with; *tcpmd5.Dialer implements it.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Retry is DialRetry's schedule: attempts start First apart, the gap doubling up to Max,
// and at most InFlight attempts run at once. Zero fields take the defaults (20 ms, 1 s, 8).
type Retry struct {
	First, Max time.Duration
	InFlight   int
}

// DialRetry dials addr with the default Retry.
func DialRetry(ctx context.Context, d Dialer, network, addr string) (net.Conn, error) {
	return Retry{}.Dial(ctx, d, network, addr)
}

type dialResult struct {
	c   net.Conn
	err error
}

// Dial connects to addr, starting overlapping attempts until one succeeds or ctx ends.
// Right after a knock the grant may not be live yet, and a SYN the server cannot verify
// gets no answer at all (the kernel would resend it only after a second), so a new attempt,
// with a new SYN, starts after First, 2*First, 4*First ... while the earlier ones keep
// waiting: a slow path costs no restarts and a dropped SYN costs one gap. The first
// connection wins; the others are cancelled (or closed). Key errors (a missing or rejected
// key) end the dial at once. On failure it returns the last attempt's error. The attempts
// run on their own goroutines, so a caller that switched only its own thread into another
// network namespace dials from the process's namespace.
func (r Retry) Dial(ctx context.Context, d Dialer, network, addr string) (net.Conn, error) {
	if r.First <= 0 {
		r.First = 20 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = time.Second
	}
	if r.InFlight <= 0 {
		r.InFlight = 8
	}
	ctx, cancel := context.WithCancel(ctx)
	results := make(chan dialResult)
	pending := 0
	defer func() {
		cancel()
		go func(n int) { // collect the losers
			for ; n > 0; n-- {
				if res := <-results; res.c != nil {
					res.c.Close()
				}
			}
		}(pending)
	}()
	next := time.NewTimer(0)
	defer next.Stop()
	gap := r.First
	var last error
	for {
		select {
		case <-next.C:
			if pending < r.InFlight {
				pending++
				go func() {
					c, err := d.DialContext(ctx, network, addr)
					results <- dialResult{c, err}
				}()
			}
			next.Reset(gap)
			gap = min(2*gap, r.Max)
		case res := <-results:
			pending--
			if res.err == nil {
				return res.c, nil
			}
			last = res.err
			var ke *tcpmd5.KeyError
			if errors.Is(res.err, tcpmd5.ErrNoKey) || errors.As(res.err, &ke) {
				return nil, res.err
			}
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return nil, fmt.Errorf("md5grant: no connection to %s before the deadline: %w", addr, last)
		}
	}
}

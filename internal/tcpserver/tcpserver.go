// Package tcpserver is fwknopd's "dummy" TCP server (ENABLE_TCP_SERVER, TCPSERV_PORT): it
// accepts connections and closes them at once, reading nothing, so that a client sending SPA
// with `-P tcp` or `-P http` can finish its handshake and send. The packet itself is read by the
// capture, like any other; the connection carries no authority.
//
// A connection is closed as soon as it is accepted, so slow or idle peers hold nothing: there
// is no read, no timeout to run out, and at most one descriptor in use per accept.
package tcpserver

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// Stats counts what Serve did; safe to read while it runs.
type Stats struct {
	Accepted atomic.Uint64 // connections accepted and closed
	Errors   atomic.Uint64 // temporary accept errors (each followed by a back-off)
}

// Serve accepts and closes connections on ln until ctx ends or ln is closed; it closes ln
// when ctx ends. Temporary accept errors (out of descriptors) back off from 5 ms up to 1 s,
// as net/http does. It returns nil when ctx ended or ln was closed, else the accept error.
func Serve(ctx context.Context, ln net.Listener, stats *Stats) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if stats != nil {
					stats.Errors.Add(1)
				}
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		if stats != nil {
			stats.Accepted.Add(1)
		}
		c.Close()
	}
}

// isTemporary reports errors that a later accept may not repeat (EMFILE, ENFILE, ECONNABORTED...).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

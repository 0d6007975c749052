package md5grant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/shield"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// DefaultExpireEvery is how often a Service removes expired grants.
const DefaultExpireEvery = 250 * time.Millisecond

// Config describes the TCP-MD5 listener a server runs next to its SPA pipeline.
type Config struct {
	Listen   string // SESAME_MD5_LISTEN: "IP:PORT" or ":PORT"
	Upstream string // SESAME_MD5_UPSTREAM: "HOST:PORT"

	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now; the grants' clock
	// ExpireEvery is how often expired grants are removed (DefaultExpireEvery when 0): a
	// key outlives its grant by at most this much.
	ExpireEvery time.Duration
	// Dial connects to the upstream (nil: net.Dialer with a 10 s timeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// A Service is a running TCP-MD5 listener whose only keys are grants: it starts with an
// unguessable random key for every address (0.0.0.0/0 and ::/0), so nobody connects until
// OnGrant installs their derived key, and it relays signed connections to the upstream.
type Service struct {
	ln     *tcpmd5.Listener
	grants *shield.Grants
	hook   Hook
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error

	closeOnce sync.Once
	closeErr  error
}

// Start listens on c.Listen and serves until ctx ends or Close is called.
func Start(ctx context.Context, c Config) (*Service, error) {
	if c.Listen == "" || c.Upstream == "" {
		return nil, errors.New("md5grant: need a listen address and an upstream")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ExpireEvery <= 0 {
		c.ExpireEvery = DefaultExpireEvery
	}
	ln, err := tcpmd5.Listen(ctx, "tcp", c.Listen, nil)
	if err != nil {
		return nil, fmt.Errorf("md5grant: %w", err)
	}
	grants := shield.NewGrants(ln, c.Now)
	ctx, cancel := context.WithCancel(ctx)
	s := &Service{ln: ln, grants: grants, hook: Hook{Grants: grants}, log: c.Log, cancel: cancel,
		done: make(chan error, 1)}
	srv := &shield.Server{Listener: ln, Log: c.Log, Handler: shield.Forward(c.Upstream, c.Dial, c.Log)}
	tick := time.NewTicker(c.ExpireEvery)
	go func() {
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if n, err := grants.Expire(); err != nil {
					c.Log.Error("md5 grant expiry", "err", err)
				} else if n > 0 {
					c.Log.Info("md5 grants expired", "count", n, "live", grants.Len())
				}
			}
		}
	}()
	go func() { s.done <- srv.Serve(ctx) }()
	return s, nil
}

// Addr is the listener's address.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Live returns the number of live grants.
func (s *Service) Live() int { return s.grants.Len() }

// OnGrant installs the derived key of an SESAME_MD5 stanza for the addresses the firewall
// just granted (see Hook.OnGrant) and logs it. It is the server's grant hook.
func (s *Service) OnGrant(st *fwconf.Stanza, gs []firewall.Grant) error {
	if !st.MD5 || len(gs) == 0 {
		return nil
	}
	if err := s.hook.OnGrant(st, gs); err != nil {
		return err
	}
	s.log.Info("md5 key granted", "src", gs[0].Src.Unmap().String(), "stanza", st.Num, "timeout", gs[0].Timeout,
		"listen", s.ln.Addr().String())
	return nil
}

// Close stops the listener, ends the relayed connections and waits for them. It returns
// the accept error that stopped the service early, if any; calling it again returns the
// same.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.closeErr = <-s.done
	})
	return s.closeErr
}

package md5grant

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
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
	// Listen is SESAME_MD5_LISTEN: "0.0.0.0:PORT" listens on IPv4 only, "[::]:PORT" and
	// ":PORT" on IPv4 and IPv6 (see shield.ListenNetwork).
	Listen   string
	Upstream string // SESAME_MD5_UPSTREAM: "HOST:PORT"

	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now; the grants' clock
	// ExpireEvery is how often expired grants are removed (DefaultExpireEvery when 0): a
	// key outlives its grant by at most this much.
	ExpireEvery time.Duration
	// Dial connects to the upstream (nil: net.Dialer with shield.DefaultDialTimeout).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// MaxKeysPerStanza is the most live keys (granted addresses) one stanza may hold:
	// 0 means DefaultMaxKeysPerStanza, a negative value no limit (see Hook).
	MaxKeysPerStanza int
	// KeyTableSize is how many keys the listener's socket holds; 0 means estimated from
	// net.core.optmem_max when Start runs (about 960 at the default 128 KiB). A warning
	// is logged when the live grants reach 90 % of it.
	KeyTableSize int
}

// keyCost is the option memory one key takes in the kernel (struct tcp_md5sig_key);
// optmem_max 131072 holds 963 keys on 6.x kernels.
const keyCost = 136

// estimateTableSize returns how many grant keys fit next to the listener's two
// catch-alls, from the calling thread's network namespace's net.core.optmem_max.
func estimateTableSize() int {
	b, err := os.ReadFile("/proc/sys/net/core/optmem_max")
	optmem := 131072
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
			optmem = v
		}
	}
	return max((optmem-64)/keyCost-2, 1)
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
	srv    *shield.Server

	tableSize int
	warnMu    sync.Mutex
	nearFull  bool // the near-full warning was logged and the table has not emptied since

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
	network, err := shield.ListenNetwork(c.Listen)
	if err != nil {
		return nil, fmt.Errorf("md5grant: %w", err)
	}
	if c.KeyTableSize <= 0 {
		c.KeyTableSize = estimateTableSize()
	}
	ln, err := tcpmd5.Listen(ctx, network, c.Listen, nil)
	if err != nil {
		return nil, fmt.Errorf("md5grant: %w", err)
	}
	grants := shield.NewGrants(ln, c.Now)
	ctx, cancel := context.WithCancel(ctx)
	s := &Service{ln: ln, grants: grants, hook: Hook{Grants: grants, MaxPerStanza: c.MaxKeysPerStanza, Now: c.Now},
		log: c.Log, cancel: cancel, done: make(chan error, 1), tableSize: c.KeyTableSize}
	srv := &shield.Server{Listener: ln, Log: c.Log, MaxConns: shield.ConnLimit(shield.FDsPerConn),
		Handler: shield.Forward(c.Upstream, c.Dial, c.Log)}
	s.srv = srv
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
					s.checkTable()
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
// just granted (see Hook.OnGrant) and logs it. A stanza at its MaxKeysPerStanza gets no
// more keys (the error matches ErrStanzaFull); a full key table gives an error matching
// tcpmd5.ErrTooManyKeys. When the live grants reach 90 % of the key table, a warning is
// logged, once until they fall to 80 %. It is the server's grant hook.
func (s *Service) OnGrant(st *fwconf.Stanza, gs []firewall.Grant) error {
	if !st.MD5 || len(gs) == 0 {
		return nil
	}
	err := s.hook.OnGrant(st, gs)
	s.checkTable()
	if errors.Is(err, tcpmd5.ErrTooManyKeys) {
		return fmt.Errorf("%w (the listener's key table is full: %d live grants; raise net.core.optmem_max or shorten the grants' timeouts)", err, s.grants.Len())
	}
	if err != nil {
		return err
	}
	s.log.Info("md5 key granted", "src", gs[0].Src.Unmap().String(), "stanza", st.Num, "timeout", gs[0].Timeout,
		"listen", s.ln.Addr().String(), "stanza_keys", s.hook.Held(st.Num), "live", s.grants.Len())
	return nil
}

// Check reports whether granting addrs for stanza st would keep the stanza within
// MaxKeysPerStanza: nil, or an error matching ErrStanzaFull. A server can call it before
// it opens the firewall, to refuse such a knock whole. It changes nothing.
func (s *Service) Check(st *fwconf.Stanza, addrs []netip.Addr) error { return s.hook.Check(st, addrs) }

// Conns returns the counters of the connections the listener relays.
func (s *Service) Conns() shield.ConnStats { return s.srv.Stats() }

// checkTable logs when the live grants reach 90 % of the key table, and re-arms when they
// fall to 80 %.
func (s *Service) checkTable() {
	live := s.grants.Len()
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	switch {
	case !s.nearFull && live*10 >= s.tableSize*9:
		s.nearFull = true
		s.log.Warn("md5 key table near full: new grants fail once it is full; raise net.core.optmem_max, lower SESAME_MD5 grant timeouts or the stanzas' key limits",
			"live", live, "capacity", s.tableSize, "listen", s.ln.Addr().String())
	case s.nearFull && live*10 <= s.tableSize*8:
		s.nearFull = false
		s.log.Info("md5 key table below 80 % again", "live", live, "capacity", s.tableSize)
	}
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

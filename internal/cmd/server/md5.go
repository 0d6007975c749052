package server

import (
	"context"
	"log/slog"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/md5grant"
)

// md5Listener is the daemon's TCP-MD5 listener (SESAME_MD5_LISTEN); the zero value stands
// for "none configured": its hook does nothing.
type md5Listener struct {
	svc *md5grant.Service
}

// startMD5 starts the TCP-MD5 listener when SESAME_MD5_LISTEN is set.
func startMD5(ctx context.Context, s *settings, log *slog.Logger) (*md5Listener, error) {
	if s.md5Listen == "" {
		return &md5Listener{}, nil
	}
	svc, err := md5grant.Start(ctx, md5grant.Config{Listen: s.md5Listen, Upstream: s.md5Upstream, Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("tcp-md5 listener started", "listen", svc.Addr().String(), "upstream", s.md5Upstream)
	return &md5Listener{svc: svc}, nil
}

// OnGrant is the server's grant hook.
func (m *md5Listener) OnGrant(st *fwconf.Stanza, gs []firewall.Grant) error {
	if m.svc == nil {
		return nil
	}
	return m.svc.OnGrant(st, gs)
}

// Close stops the listener.
func (m *md5Listener) Close() error {
	if m.svc == nil {
		return nil
	}
	return m.svc.Close()
}

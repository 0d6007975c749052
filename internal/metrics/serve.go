package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP limits of the metrics endpoint. A scrape is one small GET; anything slower is cut off.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	gatherTimeout     = 10 * time.Second // promhttp answers 503 after this
	writeTimeout      = 15 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	maxInFlight       = 4 // concurrent scrapes; more get 503
	shutdownGrace     = 5 * time.Second
)

// Endpoint is a running metrics HTTP server.
type Endpoint struct {
	addr net.Addr
	done chan struct{}
	err  error
}

// Listen opens the TCP listener for addr (host:port, e.g. "127.0.0.1:9762"; port 0 picks
// one). A daemon calls it before it changes anything, so a taken port refuses the start;
// StartListener serves on it once the sources exist.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// Start is Listen followed by StartListener: it returns the listen error at once.
func Start(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) (*Endpoint, error) {
	ln, err := Listen(ctx, addr)
	if err != nil {
		return nil, err
	}
	return StartListener(ctx, ln, g, log), nil
}

// StartListener serves g at /metrics on ln in the background until ctx ends, then closes
// ln; every other path is 404 and methods other than GET and HEAD get 405. Errors while
// gathering are logged to log (WARN) and the metrics that could be read are still served.
func StartListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, log *slog.Logger) *Endpoint {
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            errLog,
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: maxInFlight,
		Timeout:             gatherTimeout,
	}))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	e := &Endpoint{addr: ln.Addr(), done: make(chan struct{})}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
	go func() {
		defer close(e.done)
		defer stop()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			e.err = fmt.Errorf("metrics: %w", err)
		}
	}()
	return e
}

// Addr returns the address the endpoint listens on.
func (e *Endpoint) Addr() net.Addr { return e.addr }

// Wait blocks until the server has stopped and returns nil after ctx ended, or the error
// that stopped it.
func (e *Endpoint) Wait() error {
	<-e.done
	return e.err
}

// Serve is Start followed by Wait: it serves g at /metrics on addr until ctx ends (then it
// returns nil) or serving fails.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) error {
	e, err := Start(ctx, addr, g, log)
	if err != nil {
		return err
	}
	return e.Wait()
}

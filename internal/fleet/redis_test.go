package fleet

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/redistest"
)

// The tests run Debian's redis-server on loopback (internal/redistest): one shared instance
// for the package (started by the first test that needs it, stopped by TestMain), and their
// own for tests that kill it or configure it.

var (
	sharedOnce  sync.Once
	sharedDir   string
	sharedSrv   *redistest.Server
	sharedStart error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedSrv != nil {
		sharedSrv.Stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// needRedis skips t when redis-server is missing (fails it under CI=true).
func needRedis(t testing.TB) {
	t.Helper()
	redistest.Require(t)
}

// shared returns the package's redis-server, starting it on first use (TestMain stops it).
func shared(t testing.TB) *redistest.Server {
	t.Helper()
	needRedis(t)
	sharedOnce.Do(func() {
		if sharedDir, sharedStart = os.MkdirTemp("", "fleet-redis-"); sharedStart == nil {
			sharedSrv, sharedStart = redistest.Launch(redistest.Options{Dir: sharedDir})
		}
	})
	if sharedStart != nil {
		t.Fatalf("start redis-server: %v", sharedStart)
	}
	return sharedSrv
}

// newRedis starts a redis-server for t alone with more arguments and stops it when t ends.
func newRedis(t testing.TB, args ...string) *redistest.Server {
	t.Helper()
	return redistest.Start(t, redistest.Options{Args: args})
}

// client is a plain go-redis client for r (the tests' attacker and inspector).
func client(t testing.TB, r *redistest.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.HostPort(), Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// testKey is the fleet key of the tests' gateways.
var testKey = bytes.Repeat([]byte{0x5a}, 32)

// logBuf collects a Fleet's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// gateway is one Fleet in a test, with its log.
type gateway struct {
	*Fleet
	log *logBuf
}

// groupName returns a group name unique to t.
func groupName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if validName(string(r)) {
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("%.40s-%s", n, randomHex(4))
}

// newGateway returns a Fleet on url, closed when t ends.
func newGateway(t testing.TB, url, group string, mods ...func(*Config)) *gateway {
	t.Helper()
	lb := &logBuf{}
	cfg := Config{URL: url, Group: group, Key: testKey, Timeout: time.Second,
		Log: slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, m := range mods {
		m(&cfg)
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &gateway{f, lb}
}

// run runs g.Run with a recording applier until t ends.
func (g *gateway) run(t testing.TB) *recorder {
	rec := &recorder{ch: make(chan event, 1024)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(ctx, rec); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return rec
}

// event is one Applier call.
type event struct {
	kind    string // "apply", "revoke", "revoke-all"
	entries []ledger.Entry
	keys    []ledger.Key
	at      time.Time
}

// recorder is an Applier that reports each call on ch.
type recorder struct{ ch chan event }

func (r *recorder) Apply(es []ledger.Entry) error {
	r.ch <- event{kind: "apply", entries: es, at: time.Now()}
	return nil
}

func (r *recorder) Revoke(ks []ledger.Key) error {
	r.ch <- event{kind: "revoke", keys: ks, at: time.Now()}
	return nil
}

func (r *recorder) RevokeAll() error {
	r.ch <- event{kind: "revoke-all", at: time.Now()}
	return nil
}

// next waits for the next call (10 s at most: a bound for failure, not a measurement).
func (r *recorder) next(t testing.TB) event {
	t.Helper()
	select {
	case e := <-r.ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no Applier call within 10 s")
		return event{}
	}
}

// eventually retries cond every 10 ms until it holds (10 s at most).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package shield

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// logBuffer collects log lines (and passes them to t.Log).
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return l.b.Write(p)
}

func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func captureLog(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// waitUntil polls cond every 10 ms until it holds, failing the test after 5 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// plainEcho listens in ns on 127.0.0.1 and echoes with Read/Write (no splice, so the
// test process's pipes are the relay's alone).
func plainEcho(t *testing.T, ns *nstest.NS) string {
	t.Helper()
	var l net.Listener
	if err := ns.Do(t, func() (err error) { l, err = net.Listen("tcp4", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// pipeFDs counts the process's open pipe descriptors.
func pipeFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(l, "pipe:") {
			n++
		}
	}
	return n
}

// dialSigned connects from ns to addr with key.
func dialSigned(t *testing.T, ns *nstest.NS, addr string, key tcpmd5.Key) *net.TCPConn {
	t.Helper()
	c, err := dialSignedErr(t, ns, addr, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dialSignedErr is dialSigned returning the error.
func dialSignedErr(t *testing.T, ns *nstest.NS, addr string, key tcpmd5.Key) (*net.TCPConn, error) {
	t.Helper()
	var c net.Conn
	if err := ns.Do(t, func() (err error) {
		c, err = (&tcpmd5.Dialer{Dialer: net.Dialer{Timeout: 2 * time.Second}, Key: key}).DialContext(context.Background(), "tcp", addr)
		return err
	}); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn), nil
}

// resetSeen dials addr and reports the reset the server answers with: at the dial (the
// RST can beat connect's return) or at the first read or write.
func resetSeen(t *testing.T, ns *nstest.NS, addr string, key tcpmd5.Key) error {
	t.Helper()
	c, err := dialSignedErr(t, ns, addr, key)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err = io.ReadFull(c, make([]byte, 1))
	return err
}

// TestIntegrationRelayReleasesPipes is issue 15's descriptor burst: after 60 forwarded
// connections moved data and went idle, the relay holds no pipe for them, keeps at most
// IdlePipes for reuse, and closes those once idle for PipeIdle. (Go's own io.Copy would
// hold two pipes per connection, 240 descriptors here, until the connections end, and
// more until the garbage collector runs.)
func TestIntegrationRelayReleasesPipes(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	clock := time.Unix(1_000_000, 0)
	var mu sync.Mutex
	var timers []func()
	pool := newPipePool(MaxPipes, IdlePipes, PipeIdle)
	pool.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	pool.afterFunc = func(_ time.Duration, f func()) { mu.Lock(); timers = append(timers, f); mu.Unlock() }
	saved := pipes
	pipes = pool
	t.Cleanup(func() { pipes = saved })

	key := key(t, "pipes")
	addr := startShield(t, ns, tcpmd5.Any(key), Forward(plainEcho(t, ns), dialIn(t, ns), slog.New(slog.DiscardHandler)))
	base := pipeFDs(t)
	const conns = 60
	payload := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		c := dialSigned(t, ns, addr, key)
		wg.Add(1)
		go func() {
			defer wg.Done()
			go c.Write(payload)
			got := make([]byte, len(payload))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("echo: %v", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// All 60 connections are open; their relays go idle once the last splice is done.
	waitUntil(t, "the relays to go idle", func() bool { st := Pipes(); return st.Open == st.Idle })
	st := Pipes()
	held := pipeFDs(t) - base
	t.Logf("after the burst: %+v, %d pipe descriptors held for %d idle connections", st, held, conns)
	// Pipes other code in this process had open at base time may close meanwhile (exec'd
	// helpers being reaped), so only more descriptors than the pool's count is a leak.
	if st.Open > IdlePipes || held > 2*st.Open || st.Open != st.Idle {
		t.Errorf("idle connections: %+v and %d pipe descriptors; want at most %d idle pipes, none in use", st, held, IdlePipes)
	}
	mu.Lock()
	clock = clock.Add(PipeIdle)
	ts := timers
	timers = nil
	mu.Unlock()
	for _, f := range ts {
		f()
	}
	if st, held := Pipes(), pipeFDs(t)-base; st.Open != 0 || held > 0 {
		t.Errorf("after %v idle: %+v, %d pipe descriptors; want none", PipeIdle, st, held)
	}
}

// TestIntegrationMaxConns: beyond MaxConns a connection is reset at once, the limit is
// logged once, and connections are served again when one ends.
func TestIntegrationMaxConns(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	key := key(t, "cap")
	log, logs := captureLog(t)
	var l *tcpmd5.Listener
	if err := ns.Do(t, func() (err error) {
		l, err = tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:0", tcpmd5.Any(key))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	echo := func(_ context.Context, c *net.TCPConn) { io.Copy(c, c); c.Close() }
	srv := &Server{Listener: l, Handler: echo, Log: log, MaxConns: 2}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := l.Addr().String()

	talk := func(c *net.TCPConn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	a, b := dialSigned(t, ns, addr, key), dialSigned(t, ns, addr, key)
	for _, c := range []*net.TCPConn{a, b} {
		if err := talk(c); err != nil {
			t.Fatalf("within the cap: %v", err)
		}
	}
	if err := resetSeen(t, ns, addr, key); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("third connection over a cap of 2: %v, want a reset", err)
	}
	if st := srv.Stats(); st.Refused != 1 || st.Active != 2 || st.Peak != 2 {
		t.Errorf("stats %+v", st)
	}
	if n := strings.Count(logs.String(), "connection limit reached"); n != 1 {
		t.Errorf("limit logged %d times, want once", n)
	}
	a.Close()
	waitUntil(t, "a handler to end", func() bool { return srv.Stats().Active == 1 })
	if err := talk(dialSigned(t, ns, addr, key)); err != nil {
		t.Errorf("after a connection ended: %v", err)
	}
	if !strings.Contains(logs.String(), "below the connection limit again") || !strings.Contains(logs.String(), "refused=1") {
		t.Error("no log line for the end of the full period")
	}
}

// TestIntegrationForwardUpstreamDown: a signed client whose upstream is down is reset,
// and the shield logs the upstream and the client.
func TestIntegrationForwardUpstreamDown(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	key := key(t, "down")
	log, logs := captureLog(t)
	addr := startShield(t, ns, tcpmd5.Any(key), Forward("127.0.0.1:1", dialIn(t, ns), log))
	if err := resetSeen(t, ns, addr, key); !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("client of a shield whose upstream is down: %v; want a reset", err)
	}
	if l := logs.String(); !strings.Contains(l, "upstream unreachable") || !strings.Contains(l, "upstream=127.0.0.1:1") {
		t.Errorf("shield log does not name the unreachable upstream:\n%s", l)
	}
}

// livingWith lists the pids of processes (not zombies) whose command line contains
// marker.
func livingWith(marker string) []int {
	var out []int
	for _, p := range readProcs() {
		if p.zombie {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.pid))
		if err == nil && bytes.Contains(b, []byte(marker)) {
			out = append(out, p.pid)
		}
	}
	return out
}

// TestIntegrationExecKillsTree: at shutdown a program that ignores SIGTERM, and the
// process it started in a session of its own (out of its process group), are killed
// after the grace period.
func TestIntegrationExecKillsTree(t *testing.T) {
	nstest.Require(t, "sh", "setsid", "sleep")
	ns := nstest.New(t)
	key := key(t, "tree")
	marker := fmt.Sprintf("1000.%d", os.Getpid())
	script := `trap "" TERM; setsid sleep ` + marker + ` & echo ready; wait`
	log, logs := captureLog(t)
	var l *tcpmd5.Listener
	if err := ns.Do(t, func() (err error) {
		l, err = tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:0", tcpmd5.Any(key))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Server{Listener: l, Handler: Exec([]string{"sh", "-c", script}, os.Stderr, log, 200*time.Millisecond), Log: log}).Serve(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		for _, pid := range livingWith(marker) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	c := dialSigned(t, ns, l.Addr().String(), key)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, len("ready\n"))); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the setsid'd sleep", func() bool { return len(livingWith(marker)) > 0 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve still waiting 5 s after shutdown with a 200 ms grace")
	}
	waitUntil(t, "the program's descendants to die", func() bool { return len(livingWith(marker)) == 0 })
	if !strings.Contains(logs.String(), "still running after the grace period") {
		t.Error("no log line for the SIGKILL")
	}
}

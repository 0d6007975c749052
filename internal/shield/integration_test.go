package shield

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/tcpmd5"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// echoUpstream listens in ns on 127.0.0.1 and echoes, passing the half-close back.
func echoUpstream(t *testing.T, ns *nstest.NS) string {
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
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return l.Addr().String()
}

// startShield runs an in-process shield in ns with handler h.
func startShield(t *testing.T, ns *nstest.NS, rules []tcpmd5.KeyRule, h Handler) string {
	t.Helper()
	var l *tcpmd5.Listener
	if err := ns.Do(t, func() (err error) { l, err = tcpmd5.Listen(context.Background(), "tcp", ":0", rules); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Server{Listener: l, Handler: h, Log: testLog(t)}).Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
}

// dialIn returns a dial function whose sockets are created inside ns.
func dialIn(t *testing.T, ns *nstest.NS) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		derr := ns.Do(t, func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return nil
		})
		if derr != nil {
			return nil, derr
		}
		return c, err
	}
}

// session dials addr from ns with key (zero: unsigned), sends payload, half-closes and
// returns everything the server sent until its FIN.
func session(t *testing.T, ns *nstest.NS, addr string, key tcpmd5.Key, payload []byte) ([]byte, error) {
	t.Helper()
	var c net.Conn
	err := ns.Do(t, func() (err error) {
		nd := net.Dialer{Timeout: 400 * time.Millisecond}
		if key.IsZero() {
			c, err = nd.Dial("tcp", addr)
		} else {
			c, err = (&tcpmd5.Dialer{Dialer: nd, Key: key}).DialContext(context.Background(), "tcp", addr)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		c.(*net.TCPConn).CloseWrite()
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return got, err
	}
	return got, <-werr
}

func TestIntegrationForward(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	key := key(t, "forward key")
	up := echoUpstream(t, ns)
	addr := startShield(t, ns, tcpmd5.Any(key), Forward(up, dialIn(t, ns), testLog(t)))

	payload := make([]byte, 4<<20)
	rand.Read(payload)
	got, err := session(t, ns, addr, key, payload)
	if err != nil {
		t.Fatalf("signed session: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("echo through the shield: got %d bytes, want the %d sent", len(got), len(payload))
	}
	if _, err := session(t, ns, addr, tcpmd5.Key{}, []byte("x")); err == nil || !isTimeout(err) {
		t.Errorf("unsigned client: %v, want a timeout", err)
	}
	if _, err := session(t, ns, addr, key2(t), []byte("x")); err == nil || !isTimeout(err) {
		t.Errorf("wrong-key client: %v, want a timeout", err)
	}
}

func key2(t *testing.T) tcpmd5.Key { return key(t, "not the key") }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestIntegrationExec(t *testing.T) {
	nstest.Require(t, "sh", "cat")
	ns := nstest.New(t)
	key := key(t, "exec key")
	h := Exec([]string{"sh", "-c", `echo "hi $TCPREMOTEIP $PROTO"; cat; echo bye`}, os.Stderr, testLog(t), 0)
	addr := startShield(t, ns, tcpmd5.Any(key), h)
	got, err := session(t, ns, addr, key, []byte("abc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "hi 127.0.0.1 TCP\nabc\nbye\n"; string(got) != want {
		t.Errorf("program output %q, want %q", got, want)
	}
}

// TestIntegrationGrant: a listener that starts with no rules admits a host only while
// its grant lasts.
func TestIntegrationGrant(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	up := echoUpstream(t, ns)
	var l *tcpmd5.Listener
	if err := ns.Do(t, func() (err error) { l, err = tcpmd5.Listen(context.Background(), "tcp", ":0", nil); return err }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go (&Server{Listener: l, Handler: Forward(up, dialIn(t, ns), testLog(t)), Log: testLog(t)}).Serve(ctx)
	addr := fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
	now := time.Now()
	g := NewGrants(l, func() time.Time { return now })
	k := key(t, "derived from an SPA grant")

	if _, err := session(t, ns, addr, k, []byte("x")); err == nil {
		t.Fatal("connected before the grant")
	}
	if err := g.Grant(mustAddr("127.0.0.1"), k, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := session(t, ns, addr, k, []byte("granted")); err != nil || string(got) != "granted" {
		t.Fatalf("during the grant: %q, %v", got, err)
	}
	now = now.Add(time.Minute)
	if n, err := g.Expire(); n != 1 || err != nil {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	if _, err := session(t, ns, addr, k, []byte("x")); err == nil {
		t.Error("connected after the grant expired")
	}
	if _, err := session(t, ns, addr, tcpmd5.Key{}, []byte("x")); err == nil {
		t.Error("unsigned client connected to a grants-only listener")
	}
}

func TestIntegrationCountersSeeProbes(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	addr := startShield(t, ns, tcpmd5.Any(key(t, "k")), func(_ context.Context, c *net.TCPConn) { c.Close() })
	var before, after Counters
	read := func(dst *Counters) {
		if err := ns.Do(t, func() (err error) { *dst, err = ReadCounters(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	read(&before)
	session(t, ns, addr, tcpmd5.Key{}, nil)
	session(t, ns, addr, key2(t), nil)
	read(&after)
	d := after.Sub(before)
	if d.NotFound == 0 || d.Failure == 0 {
		t.Errorf("counter deltas %+v: want NotFound and Failure > 0", d)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestIntegrationShutdownEndsSessions(t *testing.T) {
	nstest.Require(t, "sleep")
	ns := nstest.New(t)
	k := key(t, "shutdown")
	up := echoUpstream(t, ns)
	for name, h := range map[string]Handler{
		"forward": Forward(up, dialIn(t, ns), testLog(t)),
		"exec":    Exec([]string{"sleep", "60"}, os.Stderr, testLog(t), 0),
	} {
		t.Run(name, func(t *testing.T) {
			var l *tcpmd5.Listener
			if err := ns.Do(t, func() (err error) {
				l, err = tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:0", tcpmd5.Any(k))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- (&Server{Listener: l, Handler: h, Log: testLog(t)}).Serve(ctx) }()
			var c net.Conn
			if err := ns.Do(t, func() (err error) {
				c, err = tcpmd5.Dial(context.Background(), "tcp4", l.Addr().String(), k)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			time.Sleep(200 * time.Millisecond) // the handler is running
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Serve still waiting for a session 5 s after shutdown")
			}
		})
	}
}

package md5grant

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// scriptDialer plays one script entry per attempt: hang (wait for cancellation), connect,
// or fail with an error. It records when each attempt started and whether it was cancelled.
type scriptDialer struct {
	mu        sync.Mutex
	script    []error // errHang, nil (connect) or an error; past the end: hang
	start     time.Time
	starts    []time.Duration
	cancelled int
	conns     []net.Conn
}

var errHang = errors.New("hang")

func (d *scriptDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	n := len(d.starts)
	d.starts = append(d.starts, time.Since(d.start))
	step := errHang
	if n < len(d.script) {
		step = d.script[n]
	}
	d.mu.Unlock()
	switch step {
	case errHang:
		<-ctx.Done()
		d.mu.Lock()
		d.cancelled++
		d.mu.Unlock()
		return nil, ctx.Err()
	case nil:
		a, b := net.Pipe()
		b.Close()
		d.mu.Lock()
		d.conns = append(d.conns, a)
		d.mu.Unlock()
		return a, nil
	}
	return nil, step
}

func (d *scriptDialer) snapshot() (starts []time.Duration, cancelled int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Duration(nil), d.starts...), d.cancelled
}

func TestRetryDial(t *testing.T) {
	r := Retry{First: 20 * time.Millisecond, Max: 80 * time.Millisecond, InFlight: 8}

	// Attempts overlap: the fifth connects while the first three still wait; they are
	// cancelled once it wins.
	d := &scriptDialer{script: []error{errHang, errHang, errHang, syscall.ECONNREFUSED, nil}, start: time.Now()}
	c, err := r.Dial(context.Background(), d, "tcp", "x:1")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	starts, _ := d.snapshot()
	if len(starts) != 5 {
		t.Fatalf("%d attempts, want 5", len(starts))
	}
	// Gaps 20, 40, 80, 80 ms: attempts start at 0, 20, 60, 140, 220 ms.
	for i, want := range []time.Duration{0, 20, 60, 140, 220} {
		if got := starts[i]; got < want*time.Millisecond || got > want*time.Millisecond+60*time.Millisecond {
			t.Errorf("attempt %d started at %v, want about %v ms", i, got, want)
		}
	}
	deadline := time.Now().Add(time.Second)
	for _, n := d.snapshot(); n != 3 && time.Now().Before(deadline); _, n = d.snapshot() {
		time.Sleep(time.Millisecond)
	}
	if _, n := d.snapshot(); n != 3 {
		t.Errorf("%d waiting attempts cancelled, want 3", n)
	}

	// Key errors stop at once.
	for _, kerr := range []error{tcpmd5.ErrNoKey, &tcpmd5.KeyError{Op: "set", Err: syscall.EINVAL}} {
		d = &scriptDialer{script: []error{kerr}, start: time.Now()}
		if _, err := r.Dial(context.Background(), d, "tcp", "x:1"); !errors.Is(err, kerr) {
			t.Errorf("key error %v: %v", kerr, err)
		}
		if starts, _ := d.snapshot(); len(starts) != 1 {
			t.Errorf("key error %v: %d attempts", kerr, len(starts))
		}
	}

	// The deadline ends the dial and reports the last error; no more than InFlight attempts
	// wait at once.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	d = &scriptDialer{script: []error{syscall.EHOSTUNREACH}, start: time.Now()}
	r.InFlight = 2
	_, err = r.Dial(ctx, d, "tcp", "x:1")
	if !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("deadline: %v", err)
	}
	if starts, _ := d.snapshot(); len(starts) != 3 || time.Since(d.start) > time.Second {
		t.Errorf("deadline: %d attempts (want 1 failing + 2 waiting) after %v", len(starts), time.Since(d.start))
	}
}

// fakeSender keeps the packets it is given.
type fakeSender struct{ wires []string }

func (f *fakeSender) Send(_ context.Context, t knock.Target, wire string) (knock.Sent, error) {
	f.wires = append(f.wires, wire)
	return knock.Sent{Bytes: len(wire)}, nil
}

// The client derives, from its rc stanza, the key the server derives from the access.conf
// stanza with the same keys.
func TestKnockerDerivesServerKey(t *testing.T) {
	const access = `SOURCE ANY
KEY_BASE64 Zndrbm9wdGVzdA==
HMAC_KEY_BASE64 aG1hY3Rlc3Q=
HMAC_DIGEST_TYPE sha512
SESAME_MD5 Y
`
	const rc = `[default]
SPA_SERVER_PROTO udp

[srv]
SPA_SERVER 10.99.0.1
KEY_BASE64 Zndrbm9wdGVzdA==
HMAC_KEY_BASE64 aG1hY3Rlc3Q=
HMAC_DIGEST_TYPE sha512
USE_HMAC Y
ALLOW_IP 10.99.0.2
ACCESS tcp/2222
`
	stanzas, _, err := fwconf.ParseAccess("access.conf", []byte(access), fwconf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	serverKey, err := Derive(stanzas[0].Keys)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fwknoprc")
	if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &fakeSender{}
	k := &Knocker{RCPath: path, Sender: s, Env: knock.Env{Username: func() string { return "alice" }}}
	key, p, err := k.Knock(context.Background(), "srv")
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(serverKey) {
		t.Error("client and server derive different keys")
	}
	if len(s.wires) != 1 || s.wires[0] != p.Wire {
		t.Fatalf("sent %d packets", len(s.wires))
	}
	m, err := spa.Decode([]byte(p.Wire), stanzas[0].Keys)
	if err != nil || m.Message != "10.99.0.2,tcp/2222" || m.Username != "alice" {
		t.Errorf("server decodes %+v, %v", m, err)
	}

	if _, _, err := k.Knock(context.Background(), "nosuch"); err == nil {
		t.Error("unknown stanza accepted")
	}
	os.Chmod(path, 0o644)
	if _, _, err := k.Knock(context.Background(), "srv"); err == nil {
		t.Error("world-readable rc file accepted")
	}
}

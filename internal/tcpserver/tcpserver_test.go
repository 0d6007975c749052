package tcpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// fakeListener hands out scripted accept results, then blocks until closed.
type fakeListener struct {
	mu      sync.Mutex
	results []error // nil: a connection
	closed  chan struct{}
	conns   []*fakeConn
}

type fakeConn struct {
	net.Conn
	closed bool
}

func (c *fakeConn) Close() error { c.closed = true; return nil }

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.results) == 0 {
		l.mu.Unlock()
		<-l.closed
		return nil, net.ErrClosed
	}
	r := l.results[0]
	l.results = l.results[1:]
	l.mu.Unlock()
	if r != nil {
		return nil, r
	}
	c := &fakeConn{}
	l.mu.Lock()
	l.conns = append(l.conns, c)
	l.mu.Unlock()
	return c, nil
}

func (l *fakeListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func TestServeClosesEveryConnection(t *testing.T) {
	l := &fakeListener{results: []error{nil, tempErr{}, nil, nil}, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	var st Stats
	go func() { done <- Serve(ctx, l, &st) }()
	for {
		l.mu.Lock()
		n := len(l.results)
		l.mu.Unlock()
		if n == 0 {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if st.Accepted.Load() != 3 || st.Errors.Load() != 1 {
		t.Errorf("stats = %d accepted, %d errors, want 3, 1", st.Accepted.Load(), st.Errors.Load())
	}
	for i, c := range l.conns {
		if !c.closed {
			t.Errorf("connection %d left open", i)
		}
	}
}

func TestServeReturnsPermanentError(t *testing.T) {
	bad := errors.New("listener broken")
	l := &fakeListener{results: []error{bad}, closed: make(chan struct{})}
	if err := Serve(context.Background(), l, nil); !errors.Is(err, bad) {
		t.Fatalf("Serve = %v, want %v", err, bad)
	}
}

// On loopback: a client completes its handshake and may send, and reads end of file.
func TestServeLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Serve(ctx, ln, nil) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("spa data"))
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err)) {
		t.Errorf("read from a closed server connection = %d, %v", n, err)
	}
	c.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

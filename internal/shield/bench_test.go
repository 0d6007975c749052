package shield

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/sesame-spa/sesame/tcpmd5"
)

// The benchmarks run on the host's loopback (TCP-MD5 needs no privileges) and compare,
// in one run, a plain connection, a direct TCP-MD5 connection, and a TCP-MD5 connection
// through the shield to a plain upstream. bench/shield.sh runs them and prints the
// shield/direct ratio.

type benchSetup struct {
	addr string // where the client dials
	key  tcpmd5.Key
}

// serve accepts on l and, per connection, either echoes or discards everything (reading
// 256 KiB at a time, so the sink costs little next to the transport being measured).
func serve(b *testing.B, l net.Listener, echo bool) {
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				if echo {
					io.Copy(c, c)
				} else {
					buf := make([]byte, 256<<10)
					for {
						if _, err := c.Read(buf); err != nil {
							break
						}
					}
				}
				c.Close()
			}()
		}
	}()
}

func setupBench(b *testing.B, mode string, echo bool) benchSetup {
	b.Helper()
	key, _ := tcpmd5.ParseKey("benchmark key")
	switch mode {
	case "plain":
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		serve(b, l, echo)
		return benchSetup{addr: l.Addr().String()}
	case "md5":
		l, err := tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:0", tcpmd5.Any(key))
		if err != nil {
			b.Fatal(err)
		}
		serve(b, l, echo)
		return benchSetup{addr: l.Addr().String(), key: key}
	case "shield":
		up, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		serve(b, up, echo)
		l, err := tcpmd5.Listen(context.Background(), "tcp4", "127.0.0.1:0", tcpmd5.Any(key))
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		done := make(chan struct{})
		go func() {
			(&Server{Listener: l, Handler: Forward(up.Addr().String(), nil, log), Log: log}).Serve(ctx)
			close(done)
		}()
		b.Cleanup(func() { cancel(); <-done })
		return benchSetup{addr: l.Addr().String(), key: key}
	}
	b.Fatalf("unknown mode %s", mode)
	return benchSetup{}
}

func (s benchSetup) dial(b *testing.B) *net.TCPConn {
	var c net.Conn
	var err error
	if s.key.IsZero() {
		c, err = net.Dial("tcp4", s.addr)
	} else {
		c, err = tcpmd5.Dial(context.Background(), "tcp4", s.addr, s.key)
	}
	if err != nil {
		b.Fatal(err)
	}
	return c.(*net.TCPConn)
}

var modes = []string{"plain", "md5", "shield"}

// BenchmarkThroughput streams 128 KiB writes over one connection; MB/s is the figure.
func BenchmarkThroughput(b *testing.B) {
	buf := make([]byte, 128<<10)
	for _, m := range modes {
		b.Run(m, func(b *testing.B) {
			s := setupBench(b, m, false)
			c := s.dial(b)
			defer c.Close()
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			// Wait until the far end has read everything and closed.
			c.CloseWrite()
			io.Copy(io.Discard, c)
			b.StopTimer()
		})
	}
}

// BenchmarkConnect measures connect + 1-byte echo + close; ns/op is the cost of one
// connection (connections per second = 1e9 / ns/op).
func BenchmarkConnect(b *testing.B) {
	one := []byte{'x'}
	for _, m := range modes {
		b.Run(m, func(b *testing.B) {
			s := setupBench(b, m, true)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := s.dial(b)
				if _, err := c.Write(one); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.SetLinger(0) // RST: no TIME_WAIT pile-up (MD5 disables timestamps, so no tw_reuse)
				c.Close()
			}
		})
	}
}

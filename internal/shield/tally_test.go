package shield

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// TestTallyForward checks that Forward counts a reached upstream as relayed and an
// unreachable one as failed, only into the Tally of its ctx.
func TestTallyForward(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var tl Tally
	ctx := WithTally(context.Background(), &tl)

	s, c := tcpPair(t)
	c.CloseWrite()
	Forward(up.Addr().String(), nil, log)(ctx, s)
	if tl.Relayed() != 1 || tl.Failed() != 0 {
		t.Errorf("after a relayed connection: relayed %d, failed %d; want 1, 0", tl.Relayed(), tl.Failed())
	}

	refuse := func(context.Context, string, string) (net.Conn, error) { return nil, errors.New("refused") }
	s, _ = tcpPair(t)
	Forward("upstream", refuse, log)(ctx, s)
	if tl.Relayed() != 1 || tl.Failed() != 1 {
		t.Errorf("after an unreachable upstream: relayed %d, failed %d; want 1, 1", tl.Relayed(), tl.Failed())
	}

	s, _ = tcpPair(t)
	Forward("upstream", refuse, log)(context.Background(), s) // no Tally: nothing counted, no panic
	if tl.Failed() != 1 {
		t.Errorf("a handler without the Tally in its ctx counted into it: failed %d", tl.Failed())
	}
}

// TestTallyExec checks that Exec counts a started program as relayed and one that cannot
// start as failed.
func TestTallyExec(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var tl Tally
	ctx := WithTally(context.Background(), &tl)
	s, _ := tcpPair(t)
	Exec([]string{"true"}, io.Discard, log, 0)(ctx, s)
	s, _ = tcpPair(t)
	Exec([]string{"/nonexistent/program"}, io.Discard, log, 0)(ctx, s)
	if tl.Relayed() != 1 || tl.Failed() != 1 {
		t.Errorf("relayed %d, failed %d; want 1, 1", tl.Relayed(), tl.Failed())
	}
}

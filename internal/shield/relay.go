package shield

import (
	"errors"
	"io"
	"net"
	"sync"
)

// halfCloser is a connection whose write side can be shut down alone.
type halfCloser interface {
	io.ReadWriteCloser
	CloseWrite() error
}

// Relay copies a→b and b→a until both directions end, then closes both. When one
// direction reaches EOF its destination's write side is closed (FIN passed on) and the
// other direction keeps going; when one fails, both connections are closed at once.
// Between two *net.TCPConn, Go's copy uses splice(2), so the bytes stay in the kernel.
// It returns the bytes copied each way and the first error other than a clean close.
func Relay(a, b halfCloser) (aToB, bToA int64, err error) {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	closeBoth := func() { a.Close(); b.Close() }
	pipe := func(dst, src halfCloser, n *int64) {
		defer wg.Done()
		var cerr error
		*n, cerr = io.Copy(dst, src)
		if cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			once.Do(func() { first = cerr })
			closeBoth()
			return
		}
		dst.CloseWrite()
	}
	wg.Add(2)
	go pipe(b, a, &aToB)
	go pipe(a, b, &bToA)
	wg.Wait()
	closeBoth()
	return aToB, bToA, first
}

// RelayStdio relays between conn and a local stdin/stdout pair, as an ssh ProxyCommand
// does: stdin is copied to conn (then conn's write side is closed) and conn to stdout.
// It returns when conn has no more to say, without waiting for stdin to end: the
// server closing the connection is the end of the session.
func RelayStdio(conn halfCloser, stdin io.Reader, stdout io.Writer) error {
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, stdin)
		conn.CloseWrite()
		up <- err
	}()
	_, err := io.Copy(stdout, conn)
	conn.Close()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	select {
	case uerr := <-up:
		if uerr != nil && !errors.Is(uerr, net.ErrClosed) {
			return uerr
		}
	default:
	}
	return nil
}

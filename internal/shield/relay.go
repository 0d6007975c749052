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
// other direction keeps going; when one fails, both connections are reset at once (RST,
// where the connection supports SO_LINGER), so each end learns that the session broke
// rather than seeing a clean end. Between two *net.TCPConn the bytes move by splice(2)
// through the process's pipe pool (see Pipes): no pipe is held while a direction is idle.
// It returns the bytes copied each way and the first error other than a clean close.
func Relay(a, b halfCloser) (aToB, bToA int64, err error) {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	pipe := func(dst, src halfCloser, n *int64) {
		defer wg.Done()
		var cerr error
		*n, cerr = copyConn(dst, src)
		if cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			once.Do(func() { first = cerr })
			Reset(a)
			Reset(b)
			return
		}
		dst.CloseWrite()
	}
	wg.Add(2)
	go pipe(b, a, &aToB)
	go pipe(a, b, &bToA)
	wg.Wait()
	a.Close()
	b.Close()
	return aToB, bToA, first
}

// copyConn copies src to dst until src's EOF: by splice between TCP connections,
// else io.Copy.
func copyConn(dst, src io.ReadWriter) (int64, error) {
	if d, ok := dst.(*net.TCPConn); ok {
		if s, ok := src.(*net.TCPConn); ok {
			return spliceCopy(d, s, pipes)
		}
	}
	return io.Copy(dst, src)
}

// Reset closes c with a TCP reset (SO_LINGER 0) when c supports it, else plainly. On a
// TCP-MD5 connection the RST is signed, so the peer accepts it.
func Reset(c io.Closer) error {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return c.Close()
}

// RelayStdio relays between conn and a local stdin/stdout pair, as an ssh ProxyCommand
// does: stdin is copied to conn (then conn's write side is closed) and conn to stdout.
// It returns when conn has no more to say, without waiting for stdin to end: the
// server closing the connection is the end of the session. Errors say which side
// failed: a *StdioError for the local stdin/stdout, the connection's own error
// otherwise.
func RelayStdio(conn halfCloser, stdin io.Reader, stdout io.Writer) error {
	up := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, readerOnly{stdin})
		conn.CloseWrite()
		up <- err
	}()
	_, err := io.Copy(writerOnly{stdout}, conn)
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

// A StdioError is a failure to read the local stdin or write the local stdout, as
// opposed to a failure of the connection.
type StdioError struct {
	Op  string // "read stdin" or "write stdout"
	Err error
}

func (e *StdioError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *StdioError) Unwrap() error { return e.Err }

// writerOnly and readerOnly mark errors from the local stdout and stdin (io.Copy would
// otherwise not say which side failed).
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		err = &StdioError{Op: "write stdout", Err: err}
	}
	return n, err
}

type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = &StdioError{Op: "read stdin", Err: err}
	}
	return n, err
}

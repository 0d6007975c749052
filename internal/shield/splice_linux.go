package shield

import (
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for each pipe (F_SETPIPE_SZ), as Go's own splice does;
// a smaller one still works, with more system calls.
const pipeSize = 1 << 20

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	unix.FcntlInt(uintptr(fds[0]), unix.F_SETPIPE_SZ, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func closePipe(p *pipe) { unix.Close(p.r); unix.Close(p.w) }

// spliceCopy copies src to dst until src's EOF, like io.Copy, through the kernel. It
// waits for src to have something to say without holding a pipe, takes one from pp to
// move what is there, and gives it back when src has nothing more for now; without a
// pipe it copies one buffer through memory.
func spliceCopy(dst, src *net.TCPConn, pp *pipePool) (int64, error) {
	srcRC, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	dstRC, err := dst.SyscallConn()
	if err != nil {
		return 0, err
	}
	var total int64
	for {
		if err := waitReadable(srcRC); err != nil {
			return total, err
		}
		p := pp.get()
		if p == nil {
			n, err := copyOnce(dst, src)
			total += n
			if err == io.EOF {
				return total, nil
			}
			if err != nil {
				return total, err
			}
			continue
		}
		n, eof, err := pump(dstRC, srcRC, p)
		total += n
		pp.put(p)
		if err != nil || eof {
			return total, err
		}
	}
}

// waitReadable returns when the socket has data, an EOF or an error pending (it peeks
// one byte without taking it).
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		return e != unix.EAGAIN && e != unix.EINTR
	})
}

// pump moves bytes src → pipe → dst until src has none ready (eof false, err nil), src
// ends (eof true) or something fails. It returns the bytes written to dst.
func pump(dstRC, srcRC syscall.RawConn, p *pipe) (written int64, eof bool, err error) {
	for {
		var in int64
		var serr error
		if err := srcRC.Read(func(fd uintptr) bool {
			for {
				in, serr = unix.Splice(int(fd), nil, p.w, nil, pipeSize, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				if serr != unix.EINTR {
					return true
				}
			}
		}); err != nil {
			return written, false, err
		}
		switch {
		case serr == unix.EAGAIN:
			return written, false, nil
		case serr != nil:
			return written, false, &net.OpError{Op: "splice", Net: "tcp", Err: serr}
		case in == 0:
			return written, true, nil
		}
		p.n = int(in)
		for p.n > 0 {
			var out int64
			var werr error
			if err := dstRC.Write(func(fd uintptr) bool {
				out, werr = unix.Splice(p.r, nil, int(fd), nil, p.n, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
				return werr != unix.EAGAIN && werr != unix.EINTR
			}); err != nil {
				return written, false, err
			}
			if werr != nil {
				return written, false, &net.OpError{Op: "splice", Net: "tcp", Err: werr}
			}
			p.n -= int(out)
			written += int64(out)
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// copyOnce reads what src has (one read) and writes it all to dst. It returns io.EOF
// at src's end.
func copyOnce(dst io.Writer, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	n, err := src.Read(*bp)
	if n > 0 {
		if w, werr := dst.Write((*bp)[:n]); werr != nil {
			return int64(w), werr
		}
	}
	return int64(n), err
}

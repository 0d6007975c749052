// Package pidfile keeps the server's PID file as a lock, so that a file left by a crash never
// blocks a start and a running server is detected even when its file names a recycled pid.
//
// The file holds the decimal pid and a newline. The server holds an open file description
// lock (fcntl F_OFD_SETLK, a write lock on the whole file) for as long as it runs; the kernel
// drops it when the process dies, however it dies. Like flock(2) the lock belongs to the open
// file description, so a second Acquire in the same process conflicts too, and the descriptor
// is close-on-exec so no child keeps it. Unlike flock(2) it conflicts with the classic POSIX
// record lock that fwknopd 2.6 takes on its PID file (seen in /proc/locks as "POSIX ADVISORY
// WRITE"), so sesame and fwknopd pointed at the same FWKNOP_PID_FILE see each other, and Read
// can test for the lock (F_OFD_GETLK) without taking it. Linux 3.15 or later.
//
// The file is mode 0600: anyone who can open it can take a lock on it and so block a start.
// Paths are checked and opened with package safefile.
package pidfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// HeldError is returned by Acquire when another open file (another process, or another
// Acquire in this one) holds the lock.
type HeldError struct {
	Path string
	PID  int // from the file, else from the kernel for a classic POSIX lock; 0 if unknown
}

func (e *HeldError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("another server is running (pid %d holds %s)", e.PID, e.Path)
	}
	return fmt.Sprintf("another server is running (it holds %s; pid not written yet)", e.Path)
}

// File is a held PID file.
type File struct {
	path string
	f    *os.File
}

// Acquire creates the directory of path if missing (mode 0700; safefile.EnsureDir), opens or
// creates path (mode 0600, a regular file owned by us, never through a link), takes the lock
// without waiting, then writes our pid and fsyncs. It returns *HeldError if the lock is held,
// or the failed step's error.
func Acquire(path string) (*File, error) {
	if err := safefile.EnsureDir(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("pidfile: %w", err)
	}
	for attempt := 0; ; attempt++ {
		f, err := safefile.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("pidfile: %w", err)
		}
		lk := wholeFile(unix.F_WRLCK)
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			pid := pidIn(f)
			if pid == 0 {
				pid = holder(f)
			}
			f.Close()
			return nil, &HeldError{Path: path, PID: pid}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("pidfile: lock %s: %w", path, err)
		}
		// A holder releasing the file removes its name before unlocking: if the file we
		// locked is no longer at path, lock the one that is (or create it).
		if same(f, path) {
			p := &File{path: path, f: f}
			if err := p.write(); err != nil {
				f.Close()
				return nil, err
			}
			return p, nil
		}
		f.Close()
		if attempt == 10 {
			return nil, fmt.Errorf("pidfile: %s keeps being replaced", path)
		}
	}
}

func (p *File) write() error {
	b := strconv.AppendInt(nil, int64(os.Getpid()), 10)
	b = append(b, '\n')
	err := p.f.Truncate(0)
	if err == nil {
		_, err = p.f.WriteAt(b, 0)
	}
	if err == nil {
		err = p.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("pidfile: write %s: %w", p.path, err)
	}
	return nil
}

// Path returns the path given to Acquire.
func (p *File) Path() string { return p.path }

// Release removes the file if it is still the one we locked, then drops the lock. It is safe
// to call more than once; the error is the failed removal's.
func (p *File) Release() error {
	if p.f == nil {
		return nil
	}
	var err error
	if same(p.f, p.path) {
		err = os.Remove(p.path)
	}
	p.f.Close() // drops the lock
	p.f = nil
	if err != nil {
		return fmt.Errorf("pidfile: %w", err)
	}
	return nil
}

// Read reports the pid written in path and whether a process holds the lock on it (running).
// It takes no lock. A missing file is (0, false, nil); the pid of an unlocked file is stale.
// If the file is locked but names no pid, pid is the kernel's lock owner when known (a classic
// POSIX lock such as fwknopd's), else 0. Errors: safefile refusals and I/O errors.
func Read(path string) (pid int, running bool, err error) {
	f, err := safefile.OpenRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("pidfile: %w", err)
	}
	defer f.Close()
	pid = pidIn(f)
	lk := wholeFile(unix.F_WRLCK)
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk); err != nil {
		return pid, false, fmt.Errorf("pidfile: test lock on %s: %w", path, err)
	}
	running = lk.Type != unix.F_UNLCK
	if running && pid == 0 && lk.Pid > 0 {
		pid = int(lk.Pid)
	}
	return pid, running, nil
}

func wholeFile(typ int16) unix.Flock_t {
	return unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: 0, Len: 0}
}

// pidIn parses the pid at the start of f; 0 if there is none.
func pidIn(f *os.File) int {
	var b [32]byte
	n, _ := f.ReadAt(b[:], 0)
	s := string(b[:n])
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// holder returns the pid the kernel reports for a conflicting lock on f: a classic POSIX
// lock's owner; 0 for an open file description lock or none.
func holder(f *os.File) int {
	lk := wholeFile(unix.F_WRLCK)
	if unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk) != nil || lk.Type == unix.F_UNLCK || lk.Pid <= 0 {
		return 0
	}
	return int(lk.Pid)
}

// same reports whether path still names the file open as f.
func same(f *os.File, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Lstat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

package safefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// OpenFile opens path with flag (os.O_* bits; O_NOFOLLOW, O_CLOEXEC are always added) after
// CheckDir of its directory. The open never follows a link at path and never blocks on a FIFO.
// The opened file must be a regular file; if flag asks for writing it must also be owned by the
// effective uid with exactly one link, otherwise by root or the effective uid. perm is the mode
// a created file gets (before umask). Errors: an *UnsafeError, or the failed call wrapped
// (fs.ErrNotExist when path is missing and flag lacks O_CREATE).
func OpenFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	dir, base, err := split(path)
	if err != nil {
		return nil, err
	}
	if dir, err = resolveDir(dir); err != nil {
		return nil, err
	}
	real := filepath.Join(dir, base)
	// Refuse a FIFO or device before opening it: opening one can block or have side effects.
	// The fstat after the open is what decides; this only spares the open.
	var pre unix.Stat_t
	if unix.Lstat(real, &pre) == nil && pre.Mode&unix.S_IFMT != unix.S_IFREG && pre.Mode&unix.S_IFMT != unix.S_IFLNK {
		return nil, notRegular(path, pre.Mode)
	}
	fd, err := unix.Open(real, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, uint32(perm.Perm()))
	if errors.Is(err, unix.ELOOP) {
		return nil, &UnsafeError{Path: path, Problem: "is a symbolic link; refusing to follow it",
			Fix: "rm " + path}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := checkOpened(fd, path, flag&(os.O_WRONLY|os.O_RDWR) != 0); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// OpenAppend opens path for appending, creating it with perm if missing (OpenFile rules: a
// regular file owned by the effective uid with one link, never through a link).
func OpenAppend(path string, perm os.FileMode) (*os.File, error) {
	return OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, perm)
}

// OpenRead opens path for reading (OpenFile rules: a regular file owned by root or the
// effective uid, never through a link; a FIFO or a device is refused without blocking).
func OpenRead(path string) (*os.File, error) {
	return OpenFile(path, os.O_RDONLY, 0)
}

// checkOpened refuses an opened descriptor that is not a regular file we may trust.
func checkOpened(fd int, path string, write bool) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	euid := os.Geteuid()
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return notRegular(path, st.Mode)
	}
	if write && int64(st.Uid) != int64(euid) || !write && !ownerOK(st.Uid, euid) {
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("file is owned by uid %d, not uid %d", st.Uid, euid),
			Fix:     "rm " + path + " (it is recreated) or chown " + ownerName(euid) + " " + path}
	}
	if write && st.Nlink != 1 {
		return &UnsafeError{Path: path,
			Problem: fmt.Sprintf("file has %d hard links: another name writes the same file", st.Nlink),
			Fix:     "rm " + path + " (it is recreated)"}
	}
	return nil
}

func notRegular(path string, mode uint32) error {
	return &UnsafeError{Path: path, Problem: "is a " + typeName(mode) + ", not a regular file",
		Fix: "rm " + path}
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "named pipe (FIFO)"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

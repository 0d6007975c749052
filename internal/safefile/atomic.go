package safefile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// WriteAtomic replaces path with data, mode perm exactly (umask does not apply). See
// WriteAtomicFunc.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomicFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomicFunc replaces path with what write writes, mode perm exactly. After CheckDir of
// the directory it creates a temporary file there (O_EXCL|O_NOFOLLOW, random name
// ".<name>.<hex>.tmp"), writes through a buffer, fsyncs, renames it over path and fsyncs the
// directory. A link at path is replaced, never followed; readers see the old file or the new
// one, never a mix. On error the temporary file is removed and path is untouched; the error
// from write is returned wrapped.
func WriteAtomicFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	dir, base, err := split(path)
	if err != nil {
		return err
	}
	if dir, err = resolveDir(dir); err != nil {
		return err
	}
	var fd int
	var tmp string
	for i := 0; ; i++ {
		tmp = filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 16)+".tmp")
		fd, err = unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || i == 10 {
			return fmt.Errorf("safefile: write %s: %w", path, &os.PathError{Op: "create", Path: tmp, Err: err})
		}
	}
	f := os.NewFile(uintptr(fd), tmp)
	err = fill(f, perm, write)
	if errClose := f.Close(); err == nil {
		err = errClose
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, base))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("safefile: write %s: %w", path, err)
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("safefile: write %s: %w", path, err)
	}
	return nil
}

// fill gives f its mode and content and fsyncs it.
func fill(f *os.File, perm os.FileMode, write func(io.Writer) error) error {
	if err := f.Chmod(perm.Perm()); err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	if err := write(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// SyncDir fsyncs the directory dir, making renames and removals in it durable.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return &os.PathError{Op: "fsync", Path: dir, Err: err}
	}
	return nil
}

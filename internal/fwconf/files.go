package fwconf

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
)

// maxFileSize bounds what is read from one configuration file.
const maxFileSize = 16 << 20

// fileSystem is what the loaders read through; tests and fuzzers swap it.
type fileSystem interface {
	// ReadFile returns the contents of a regular file and warnings about its permissions.
	ReadFile(name string) ([]byte, []string, error)
	// ReadDir returns the names in a directory.
	ReadDir(name string) ([]string, error)
}

// osFS reads the real file system, warning as fwknopd does when a file is not mode 0600 or
// not owned by the effective user.
type osFS struct{}

func (osFS) ReadFile(name string) ([]byte, []string, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is not a regular file", name)
	}
	var warns []string
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		warns = append(warns, fmt.Sprintf("permissions %04o let group or other users access it; chmod 600 %s", perm, name))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		warns = append(warns, fmt.Sprintf("owned by uid %d, not by the user running sesame (uid %d)", st.Uid, os.Geteuid()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxFileSize {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", name, maxFileSize)
	}
	return data, warns, nil
}

func (osFS) ReadDir(name string) ([]string, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names, nil
}

// noFS is used when parsing text: it has no files.
type noFS struct{}

func (noFS) ReadFile(name string) ([]byte, []string, error) {
	return nil, nil, fmt.Errorf("open %s: %w (includes need LoadAccess)", name, fs.ErrNotExist)
}

func (noFS) ReadDir(name string) ([]string, error) {
	return nil, fmt.Errorf("open %s: %w (includes need LoadAccess)", name, fs.ErrNotExist)
}

// confFiles returns the *.conf names of dir, sorted, as full paths.
func confFiles(fsys fileSystem, dir string) ([]string, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if strings.HasSuffix(n, ".conf") && !strings.HasPrefix(n, ".") {
			out = append(out, strings.TrimRight(dir, "/")+"/"+n)
		}
	}
	slices.Sort(out)
	return out, nil
}

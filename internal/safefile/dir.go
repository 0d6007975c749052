// Package safefile opens, creates and replaces the files a root daemon keeps (PID file, replay
// cache, grant ledger) so that no other user can redirect those writes or feed it a file.
//
// # The rules
//
// A directory is safe when another user can neither change it nor any directory above it. The
// check walks the path from / one component at a time, as OpenSSH's StrictModes does, and
// resolves symbolic links itself:
//
//   - every directory and every symbolic link on the way is owned by root or the effective uid;
//   - no directory on the way is writable by group or others, except a sticky one such as /tmp
//     (1777): there others may add names but cannot rename or remove ours, and what they add
//     fails the owner rule above;
//   - the directory itself (the end of the walk, after links) is not writable by group or
//     others at all, sticky or not: a shared directory is never a safe home for these files.
//
// A symbolic link on the way is followed only because the directory holding it passed these
// checks, so only root or we could have put it there (Debian's /var/run -> /run is such a
// link). Files themselves are never reached through a link: every open uses O_NOFOLLOW, and
// WriteAtomic renames over the final name, which replaces a link rather than writing through
// it. A file opened for writing must be a regular file owned by the effective uid with one
// link; a file opened for reading must be a regular file owned by root or the effective uid.
//
// A refusal is an *UnsafeError naming the path, what was found and the command that fixes it.
package safefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrUnsafe is wrapped by every *UnsafeError.
var ErrUnsafe = errors.New("unsafe path")

// UnsafeError reports a path refused for its owner, mode or type.
type UnsafeError struct {
	Path    string // the offending directory, link or file
	Problem string // what was found, e.g. "directory is writable by group or others (owner uid 0, mode drwxrwxrwx)"
	Fix     string // a shell command or instruction that makes it safe
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("unsafe path %s: %s (fix: %s)", e.Path, e.Problem, e.Fix)
}

// Unwrap returns ErrUnsafe.
func (e *UnsafeError) Unwrap() error { return ErrUnsafe }

// maxLinks bounds symbolic link expansions during a walk, as the kernel's ELOOP limit does.
const maxLinks = 40

// CheckDir reports whether dir is a safe directory for the daemon's files (see the package
// doc). It returns nil, an *UnsafeError, or an error wrapping the failed lstat (fs.ErrNotExist
// when dir or a directory above it is missing).
func CheckDir(dir string) error {
	_, err := resolveDir(dir)
	return err
}

// EnsureDir creates dir and any missing parents with perm (before umask), then checks it with
// CheckDir. The deepest existing ancestor is checked before anything is created, so nothing is
// created under an unsafe directory. perm must not grant group or others write permission.
func EnsureDir(dir string, perm os.FileMode) error {
	if CheckDir(dir) == nil {
		return nil
	}
	abs, err := filepath.Abs(dir) // lexical: MkdirAll semantics
	if err != nil {
		return fmt.Errorf("safefile: %s: %w", dir, err)
	}
	var missing []string
	p := abs
	for {
		if _, err := os.Stat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) || p == "/" {
			return fmt.Errorf("safefile: %w", err)
		}
		missing = append(missing, p)
		p = filepath.Dir(p)
	}
	if len(missing) > 0 {
		if _, err := walk(p, false); err != nil {
			return err
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("safefile: %w", err)
		}
	}
	return CheckDir(abs)
}

// resolveDir checks dir and returns its real path (links resolved).
func resolveDir(dir string) (string, error) {
	abs, err := absolute(dir)
	if err != nil {
		return "", err
	}
	return walk(abs, true)
}

// absolute makes p absolute without cleaning it: "link/.." must mean what the kernel makes of
// it (the parent of the link's target), which walk resolves.
func absolute(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("safefile: %s: %w", p, err)
	}
	return wd + "/" + p, nil
}

// split returns the directory and the final name of the file path, without cleaning.
func split(path string) (dir, base string, err error) {
	dir, base = ".", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, base = path[:i], path[i+1:]
		if dir == "" {
			dir = "/"
		}
	}
	if base == "" || base == "." || base == ".." {
		return "", "", fmt.Errorf("safefile: %q does not name a file", path)
	}
	return dir, base, nil
}

// walk checks every component of the absolute path abs from / down and returns the real
// path. strict applies the no-sticky rule to the final directory.
func walk(abs string, strict bool) (string, error) {
	euid := os.Geteuid()
	if err := checkDirAt("/", euid, false); err != nil {
		return "", err
	}
	cur := "/"
	rest := strings.Split(abs, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur holds no links, so this is the real parent
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("safefile: %w", err)
		}
		uid := fi.Sys().(*syscall.Stat_t).Uid
		if fi.Mode()&fs.ModeSymlink != 0 {
			if !ownerOK(uid, euid) {
				return "", &UnsafeError{Path: next,
					Problem: fmt.Sprintf("symbolic link owned by uid %d (only root or uid %d may own it)", uid, euid),
					Fix:     "rm " + next + " and use a path without it"}
			}
			if links++; links > maxLinks {
				return "", fmt.Errorf("safefile: %s: %w", abs, syscall.ELOOP)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("safefile: %w", err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("safefile: %s is not a directory (%v): %w", next, fi.Mode().Type(), syscall.ENOTDIR)
		}
		if err := checkDirInfo(next, fi, euid, false); err != nil {
			return "", err
		}
		cur = next
	}
	if strict {
		if err := checkDirAt(cur, euid, true); err != nil {
			return "", err
		}
	}
	return cur, nil
}

func checkDirAt(path string, euid int, strict bool) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("safefile: %w", err)
	}
	return checkDirInfo(path, fi, euid, strict)
}

// checkDirInfo applies the owner and mode rules to the directory path described by fi.
func checkDirInfo(path string, fi fs.FileInfo, euid int, strict bool) error {
	uid := fi.Sys().(*syscall.Stat_t).Uid
	mode := fi.Mode()
	badOwner := !ownerOK(uid, euid)
	writable := mode.Perm()&0o022 != 0
	shared := writable && mode&fs.ModeSticky != 0
	if !badOwner && (!writable || shared && !strict) {
		return nil
	}
	found := fmt.Sprintf("owner uid %d, mode %v", uid, mode)
	if shared && !badOwner {
		return &UnsafeError{Path: path,
			Problem: "directory is shared (sticky and writable by others: " + found + ")",
			Fix:     "use a directory of its own, e.g. mkdir -m 700 " + filepath.Join(path, "sesame")}
	}
	var problem string
	if badOwner {
		problem = fmt.Sprintf("directory is not owned by root or uid %d (%s)", euid, found)
	} else {
		problem = "directory is writable by group or others (" + found + ")"
	}
	fix := fmt.Sprintf("chmod %o %s", mode.Perm()&^0o022, path)
	if badOwner {
		fix = "chown " + ownerName(euid) + " " + path + " && " + fix
	}
	return &UnsafeError{Path: path, Problem: problem, Fix: fix}
}

func ownerOK(uid uint32, euid int) bool { return uid == 0 || int64(uid) == int64(euid) }

func ownerName(euid int) string {
	if euid == 0 {
		return "root:root"
	}
	return strconv.Itoa(euid)
}

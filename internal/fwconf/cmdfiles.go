package fwconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUnsafeFile: a configuration file, or its directory, could be changed by a user other than
// root or the daemon while stanzas run commands (CheckCommandFiles).
var ErrUnsafeFile = errors.New("configuration file unsafe for command execution")

// CheckCommandFiles is the check for a server whose stanzas run commands (Stanza.RunsCommands):
// whoever can change a configuration file can make the daemon run anything, so every file in
// files, and the directory holding it, must be owned by root or by euid and not writable by
// group or others (a directory with the sticky bit, such as /tmp, may be). It returns every
// refusal joined, each an *Error wrapping ErrUnsafeFile that names the path and the chmod or
// chown that fixes it; nil when all are safe. A file that cannot be examined is refused too.
func CheckCommandFiles(files []string, euid int) error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range files {
		for _, p := range []string{f, filepath.Dir(f)} {
			if seen[p] {
				continue
			}
			seen[p] = true
			if err := checkCommandFile(p, euid); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func checkCommandFile(path string, euid int) error {
	const why = "stanzas run commands, so whoever can change it can run anything as sesame"
	fi, err := os.Stat(path)
	if err != nil {
		return &Error{File: path, Msg: fmt.Sprintf("cannot check: %v", err), Err: ErrUnsafeFile}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return &Error{File: path, Msg: "cannot read its owner", Err: ErrUnsafeFile}
	}
	if st.Uid != 0 && int64(st.Uid) != int64(euid) {
		return &Error{File: path, Msg: fmt.Sprintf("owned by uid %d, not root or the daemon (uid %d); %s", st.Uid, euid, why),
			Fix: "chown root " + path, Err: ErrUnsafeFile}
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && !(fi.IsDir() && fi.Mode()&os.ModeSticky != 0) {
		return &Error{File: path, Msg: fmt.Sprintf("mode %04o lets group or others write it; %s", perm, why),
			Fix: "chmod go-w " + path, Err: ErrUnsafeFile}
	}
	return nil
}

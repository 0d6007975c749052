package server

import (
	"fmt"

	"github.com/sesame-spa/sesame/internal/pidfile"
)

// readPID returns the PID of the server holding the lock on path, or 0 if none does (a file
// left by a crash names a pid but is not locked).
func readPID(path string) (int, error) {
	pid, running, err := pidfile.Read(path)
	if err != nil {
		return 0, err
	}
	if !running {
		return 0, nil
	}
	if pid == 0 {
		return 0, fmt.Errorf("a server holds %s but its pid is not written there yet", path)
	}
	return pid, nil
}

// writePID locks path and records this process there, refusing (*pidfile.HeldError) if another
// server holds it. The returned function removes the file and drops the lock.
func writePID(path string) (func(), error) {
	f, err := pidfile.Acquire(path)
	if err != nil {
		return nil, err
	}
	return func() { f.Release() }, nil
}

package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// readPID returns the PID recorded in path if that process is alive, or 0.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read PID file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, nil // a corrupt PID file is stale
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return 0, nil
	}
	return pid, nil
}

// writePID records this process in path, refusing if another live process is recorded there.
// The returned function removes the file.
func writePID(path string) (func(), error) {
	if pid, err := readPID(path); err != nil {
		return nil, err
	} else if pid != 0 && pid != os.Getpid() {
		return nil, fmt.Errorf("another server is running (pid %d, %s)", pid, path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("PID file directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write PID file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write PID file: %w", err)
	}
	return func() {
		if pid, _ := readPID(path); pid == os.Getpid() {
			os.Remove(path)
		}
	}, nil
}

// signalRunning sends sig to the server recorded in path.
func signalRunning(path string, sig syscall.Signal) (int, error) {
	pid, err := readPID(path)
	if err != nil {
		return 0, err
	}
	if pid == 0 {
		return 0, fmt.Errorf("no running server found (PID file %s)", path)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return pid, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	return pid, nil
}

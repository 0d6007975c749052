// Package benchtest holds the helpers the benchmarks under bench/ share: environment knobs,
// log-line counting and polling, signals, sesame's packet counter, CPU time from /proc and UDP
// senders that run inside a network namespace made by internal/nstest.
//
// It is for benchmarks and tests only (helpers that can fail take a testing.TB and fail it),
// but its files are ordinary .go files so that the test files of several packages can import
// it.
package benchtest

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/sesametest"
)

// EnvInt returns the integer in the environment variable name, or def if it is unset or not
// an integer (0 and negative values are returned as set).
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// CountLines counts the lines of the file at path that contain every one of substrs; an
// unreadable file counts 0.
func CountLines(path string, substrs ...string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		ok := true
		for _, s := range substrs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// WaitStable polls count every 5 ms until it reaches want, or has not changed for quiet, or
// limit has passed, and returns the last count and when it last changed (the start if never).
func WaitStable(count func() int, want int, quiet, limit time.Duration) (int, time.Time) {
	last, lastT := count(), time.Now()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		n := count()
		if n != last {
			last, lastT = n, time.Now()
		}
		if n >= want || time.Since(lastT) > quiet {
			break
		}
	}
	return last, lastT
}

// Signal sends sig to the process pid and fails t if it cannot.
func Signal(t testing.TB, pid int, sig syscall.Signal) {
	t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

var packetsRE = regexp.MustCompile(`msg=stats packets=(\d+)`)

// Packets asks the sesame server p for its counters (SIGUSR1), waits up to 2 s for the new
// "msg=stats" log line and returns its packets= count, the packets p has handled since it
// started. It fails t if the log holds no stats line.
func Packets(t testing.TB, p *sesametest.Server) int {
	t.Helper()
	before := CountLines(p.LogPath, "msg=stats")
	Signal(t, p.PID, syscall.SIGUSR1)
	WaitStable(func() int { return CountLines(p.LogPath, "msg=stats") }, before+1, 2*time.Second, 2*time.Second)
	m := packetsRE.FindAllStringSubmatch(p.Log(), -1)
	if len(m) == 0 {
		t.Fatalf("no stats line in the sesame log")
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

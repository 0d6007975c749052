package benchtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StatCPU is the CPU time of pid from /proc/PID/stat (proc(5)): utime+stime, plus
// cutime+cstime (its reaped children) if children. The kernel counts in USER_HZ ticks, taken
// as 100 a second, so the resolution is 10 ms. It fails t if the file cannot be read.
func StatCPU(t testing.TB, pid int, children bool) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	idx := []int{11, 12} // utime stime (fields 14, 15)
	if children {
		idx = append(idx, 13, 14) // cutime cstime (fields 16, 17)
	}
	var ticks int64
	for _, i := range idx {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * time.Second / 100
}

// SchedCPU is the CPU time (user and system) of pid's threads in nanoseconds: the sum of the
// first field of /proc/PID/task/*/schedstat. Threads that have exited are not counted (a Go
// daemon keeps its threads). It fails t if pid has no schedstat.
func SchedCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("schedstat of %d: %v", pid, err)
	}
	var ns int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			ns += v
		}
	}
	return time.Duration(ns)
}

package shield

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one process as /proc/PID/stat tells it.
type proc struct {
	pid, ppid int
	zombie    bool
}

// readProcs lists the processes of the system (of our pid namespace).
func readProcs() []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]proc, 0, len(ents))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		if p, ok := parseStat(pid, b); ok {
			out = append(out, p)
		}
	}
	return out
}

// parseStat reads "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses, so
// the fields are found after the last ')'.
func parseStat(pid int, b []byte) (proc, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return proc{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return proc{}, false
	}
	return proc{pid: pid, ppid: ppid, zombie: string(f[0]) == "Z" || string(f[0]) == "X"}, true
}

// descendants returns the living (not zombie) descendants of root in procs.
func descendants(procs []proc, root int) []int {
	kids := map[int][]proc{}
	for _, p := range procs {
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			if k.pid == root {
				continue
			}
			queue = append(queue, k.pid)
			if !k.zombie {
				out = append(out, k.pid)
			}
		}
	}
	return out
}

// signalTree sends sig to pid, to its process group (the programs Exec starts lead
// their own) and to every living descendant of pid, so that processes which left the
// group (setsid, a daemon's double fork) are reached too. It returns how many
// descendants it found.
func signalTree(pid int, sig syscall.Signal) int {
	ds := descendants(readProcs(), pid)
	unix.Kill(-pid, sig)
	unix.Kill(pid, sig)
	for _, d := range ds {
		unix.Kill(d, sig)
	}
	return len(ds)
}

// signalDescendants sends sig to every living descendant of the calling process (not to
// the process or its group) and returns how many there were.
func signalDescendants(sig syscall.Signal) int {
	ds := descendants(readProcs(), os.Getpid())
	for _, d := range ds {
		unix.Kill(d, sig)
	}
	return len(ds)
}

// killUntilGone repeats kill until it reports no process left (new ones may have been
// forked meanwhile), for at most a second.
func killUntilGone(kill func() int) {
	for end := time.Now().Add(time.Second); kill() > 0 && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
}

// owned are the children an Exec handler waits for itself: the Reaper leaves them
// alone. startMu is held shared from a child's start until it is in owned, and by the
// Reaper exclusively while it reaps, so a child that exits at once is never taken.
var (
	startMu sync.RWMutex
	ownedMu sync.Mutex
	owned   = map[int]bool{}
)

func own(pid int)    { ownedMu.Lock(); owned[pid] = true; ownedMu.Unlock() }
func disown(pid int) { ownedMu.Lock(); delete(owned, pid); ownedMu.Unlock() }
func isOwned(pid int) bool {
	ownedMu.Lock()
	defer ownedMu.Unlock()
	return owned[pid]
}

// A Reaper makes the process the subreaper of its descendants (PR_SET_CHILD_SUBREAPER):
// what the programs Exec runs leave behind when they exit (a setsid'd session, a double
// fork) becomes the process's child instead of init's, is reaped when it exits, and is
// terminated when the shield stops. Only one Reaper should run in a process, and only in
// a process whose other children are all started by Exec (sesame shield --exec).
type Reaper struct {
	log      *slog.Logger
	grace    time.Duration
	deadline chan time.Time // when the grace period of the shutdown ends
	done     chan struct{}
}

// StartReaper becomes the subreaper and reaps orphans until ctx ends. Then it sends
// SIGTERM to every descendant still running; Finish completes the shutdown.
func StartReaper(ctx context.Context, log *slog.Logger, grace time.Duration) (*Reaper, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, os.NewSyscallError("prctl PR_SET_CHILD_SUBREAPER", err)
	}
	r := &Reaper{log: log, grace: grace, deadline: make(chan time.Time, 1), done: make(chan struct{})}
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	go func() {
		defer close(r.done)
		defer signal.Stop(chld)
		for {
			select {
			case <-chld:
				r.reapOrphans()
			case <-ctx.Done():
				r.deadline <- time.Now().Add(grace)
				if n := signalDescendants(syscall.SIGTERM); n > 0 {
					r.log.Info("stopping: sent SIGTERM to the programs still running", "processes", n, "grace", grace)
				}
				return
			}
		}
	}()
	return r, nil
}

// reapOrphans reaps the exited children that no Exec handler waits for.
func (r *Reaper) reapOrphans() int {
	startMu.Lock()
	defer startMu.Unlock()
	n := 0
	self := os.Getpid()
	for _, p := range readProcs() {
		if p.ppid == self && p.zombie && !isOwned(p.pid) {
			if pid, _ := unix.Wait4(p.pid, nil, unix.WNOHANG, nil); pid == p.pid {
				n++
			}
		}
	}
	return n
}

// Finish ends the shutdown StartReaper began when its ctx ended: it waits for the
// descendants to exit until the grace period ends, then kills those left with SIGKILL
// and reaps them all. Call it after the handlers have returned. It returns how many
// processes it had to kill.
func (r *Reaper) Finish() int {
	<-r.done
	deadline := <-r.deadline
	self := os.Getpid()
	for len(descendants(readProcs(), self)) > 0 && time.Now().Before(deadline) {
		r.reapOrphans()
		time.Sleep(10 * time.Millisecond)
	}
	killed := len(descendants(readProcs(), self))
	if killed > 0 {
		r.log.Warn("killing the processes still running after the grace period", "processes", killed, "grace", r.grace)
		killUntilGone(func() int { return signalDescendants(syscall.SIGKILL) })
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		r.reapOrphans()
		var left bool
		for _, p := range readProcs() {
			if p.ppid == self {
				left = true
			}
		}
		if !left {
			break
		}
	}
	return killed
}

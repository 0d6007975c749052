package shield

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fdDir is /proc/self/fd, opened once, so that descriptors can still be counted when
// none is left to open it.
var fdDir struct {
	sync.Mutex
	f *os.File
}

// Descriptors returns how many file descriptors the process has open (/proc/self/fd)
// and its RLIMIT_NOFILE soft limit; open is -1 when it cannot be read. The first call
// keeps a descriptor on /proc/self/fd for the later ones.
func Descriptors() (open int, limit uint64) {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil {
		limit = rl.Cur
	}
	fdDir.Lock()
	defer fdDir.Unlock()
	if fdDir.f == nil {
		f, err := os.Open("/proc/self/fd")
		if err != nil {
			return -1, limit
		}
		fdDir.f = f
	}
	if _, err := fdDir.f.Seek(0, io.SeekStart); err != nil {
		return -1, limit
	}
	names, err := fdDir.f.Readdirnames(-1)
	if err != nil {
		return -1, limit
	}
	return len(names), limit
}

// FDsPerConn is how many descriptors a forwarded connection holds besides splice pipes:
// the client's socket and the upstream's. Pipes come from a pool shared by all
// connections (at most MaxPipes, two descriptors each).
const FDsPerConn = 2

// fdReserve is kept for the rest of the process: listeners, logs, the key file, netlink.
const fdReserve = 64

// ConnLimit returns how many connections holding perConn descriptors each fit in the
// process's RLIMIT_NOFILE, after the pipe pool and a reserve for the rest of the
// process; at least 1.
func ConnLimit(perConn int) int {
	_, limit := Descriptors()
	room := int64(limit) - 2*MaxPipes - fdReserve
	if limit > 1<<30 {
		room = 1 << 30
	}
	return int(max(room/int64(max(perConn, 1)), 1))
}

// fdReportEvery is how often running out of descriptors is logged at most.
const fdReportEvery = time.Minute

// outOfFDs logs running out of descriptors at most once per fdReportEvery for the whole
// process, with the number of times it happened since the last line.
var outOfFDs struct {
	sync.Mutex
	last    time.Time
	missed  int
	starved bool // reported since the last recovery
}

// fdsRecovered reports, once per episode, that descriptors ran out (anywhere: accept or an
// upstream dial) and are now below 90 % of the limit again.
func fdsRecovered() (open int, limit uint64, ok bool) {
	outOfFDs.Lock()
	defer outOfFDs.Unlock()
	if !outOfFDs.starved {
		return 0, 0, false
	}
	if open, limit = Descriptors(); open < 0 || uint64(open)*10 >= limit*9 {
		return 0, 0, false
	}
	outOfFDs.starved = false
	return open, limit, true
}

// reportOutOfFDs logs msg with the descriptor counts, unless it was logged less than
// fdReportEvery ago; then it only counts.
func reportOutOfFDs(log *slog.Logger, msg string, args ...any) {
	outOfFDs.Lock()
	outOfFDs.starved = true
	now := time.Now()
	if !outOfFDs.last.IsZero() && now.Sub(outOfFDs.last) < fdReportEvery {
		outOfFDs.missed++
		outOfFDs.Unlock()
		return
	}
	missed := outOfFDs.missed
	outOfFDs.last, outOfFDs.missed = now, 0
	outOfFDs.Unlock()
	open, limit := Descriptors()
	log.Error(msg, append(args, "open_fds", open, "nofile_limit", limit, "pipes", Pipes().Open,
		"times_since_last_report", missed)...)
}

package shield

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Counters are the kernel's TCP-MD5 drop counters (TcpExt in /proc/net/netstat). They
// count per network namespace, for every socket in it, not per listener.
type Counters struct {
	NotFound   uint64 // TCPMD5NotFound: unsigned segment where a key was expected (no key)
	Unexpected uint64 // TCPMD5Unexpected: signed segment where no key was expected
	Failure    uint64 // TCPMD5Failure: signature did not verify (wrong key)
}

// Sub returns c - o field by field (counters never go down within one namespace).
func (c Counters) Sub(o Counters) Counters {
	return Counters{c.NotFound - o.NotFound, c.Unexpected - o.Unexpected, c.Failure - o.Failure}
}

// IsZero reports whether all counters are zero.
func (c Counters) IsZero() bool { return c == Counters{} }

// ParseNetstat reads /proc/net/netstat's format (pairs of "Group: names..." and
// "Group: values..." lines) and returns the MD5 counters of the TcpExt group. Counters
// the kernel does not report stay zero.
func ParseNetstat(r io.Reader) (Counters, error) {
	var c Counters
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var names []string
	found := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "TcpExt:" {
			names = nil
			continue
		}
		if names == nil {
			names = fields[1:]
			continue
		}
		vals := fields[1:]
		if len(vals) != len(names) {
			return c, fmt.Errorf("netstat: TcpExt has %d names and %d values", len(names), len(vals))
		}
		for i, n := range names {
			var dst *uint64
			switch n {
			case "TCPMD5NotFound":
				dst = &c.NotFound
			case "TCPMD5Unexpected":
				dst = &c.Unexpected
			case "TCPMD5Failure":
				dst = &c.Failure
			default:
				continue
			}
			v, err := strconv.ParseUint(vals[i], 10, 64)
			if err != nil {
				return c, fmt.Errorf("netstat: %s: %w", n, err)
			}
			*dst = v
		}
		found = true
		names = nil
	}
	if err := sc.Err(); err != nil {
		return c, fmt.Errorf("netstat: %w", err)
	}
	if !found {
		return c, fmt.Errorf("netstat: no TcpExt values")
	}
	return c, nil
}

// ReadCounters reads the counters of the calling thread's network namespace
// (/proc/thread-self: /proc/net follows the main thread, not the caller).
func ReadCounters() (Counters, error) {
	f, err := os.Open("/proc/thread-self/net/netstat")
	if err != nil {
		return Counters{}, err
	}
	defer f.Close()
	return ParseNetstat(f)
}

// WatchCounters logs, at every tick, how many signature drops the kernel counted since
// the previous tick ("md5 probes"), and nothing when there were none. It returns when ctx
// ends. read is usually ReadCounters.
func WatchCounters(ctx context.Context, log *slog.Logger, tick <-chan time.Time, read func() (Counters, error)) {
	prev, err := read()
	if err != nil {
		log.Warn("md5 counters unavailable", "err", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		cur, err := read()
		if err != nil {
			log.Warn("md5 counters", "err", err)
			continue
		}
		if d := cur.Sub(prev); !d.IsZero() {
			log.Info("md5 probes dropped by the kernel (whole network namespace)",
				"no_signature", d.NotFound, "wrong_signature", d.Failure, "unexpected_signature", d.Unexpected)
		}
		prev = cur
	}
}

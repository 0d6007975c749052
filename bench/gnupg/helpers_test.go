package gnupg

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

var packetsRE = regexp.MustCompile(`msg=stats packets=(\d+)`)

// packets asks sesame for its counters (SIGUSR1) and returns the packets handled.
func packets(t testing.TB, p *sesametest.Server) int {
	t.Helper()
	before := countLines(p.LogPath, "msg=stats")
	signal(t, p.PID, syscall.SIGUSR1)
	waitStable(func() int { return countLines(p.LogPath, "msg=stats") }, before+1, 2*time.Second, 2*time.Second)
	m := packetsRE.FindAllStringSubmatch(p.Log(), -1)
	if len(m) == 0 {
		t.Fatalf("no stats line in the sesame log")
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// udpFrom dials addr (host:port) from local (an address of ns; "" for any) inside ns.
func udpFrom(local, addr string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	var la *net.UDPAddr
	if local != "" {
		la = &net.UDPAddr{IP: net.ParseIP(local)}
	}
	return net.DialUDP("udp4", la, ra)
}

// blast sends payloads from ns to addr, paced at rate packets/s (0: as fast as possible), and
// returns when all are sent.
func blast(t testing.TB, ns *nstest.NS, addr string, payloads [][]byte, rate int) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := udpFrom("", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		start := time.Now()
		for i, p := range payloads {
			c.Write(p)
			if rate > 0 && i%20 == 19 {
				due := start.Add(time.Duration(i+1) * time.Second / time.Duration(rate))
				if w := time.Until(due); w > 0 {
					time.Sleep(w)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// floodFor sends payloads round-robin from ns to addr for d, as fast as one goroutine can,
// rotating over the source addresses srcs; it returns the packets sent.
func floodFor(t testing.TB, ns *nstest.NS, srcs []string, addr string, payloads [][]byte, d time.Duration) int {
	t.Helper()
	n := 0
	err := ns.Do(t, func() error {
		var cs []*net.UDPConn
		defer func() {
			for _, c := range cs {
				c.Close()
			}
		}()
		for _, s := range srcs {
			c, err := udpFrom(s, addr)
			if err != nil {
				return err
			}
			cs = append(cs, c)
		}
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for range 32 {
				cs[n%len(cs)].Write(payloads[n%len(payloads)])
				n++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sendFrom sends one datagram from local in ns to addr.
func sendFrom(t testing.TB, ns *nstest.NS, local, addr string, payload []byte) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := udpFrom(local, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// statCPU is the CPU time of pid from /proc/PID/stat: utime+stime, plus cutime+cstime (its
// reaped children) if children; 10 ms resolution (USER_HZ 100).
func statCPU(t testing.TB, pid int, children bool) time.Duration {
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

// agentPIDs returns the PIDs of the gpg-agents whose command line names home.
func agentPIDs(home string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cl := string(b)
		if strings.Contains(cl, "gpg-agent") && strings.Contains(cl, home) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// countLines counts the lines of path containing every substring.
func countLines(path string, substrs ...string) int {
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

// waitStable polls count until it stops growing for quiet (or reaches want) and returns the
// final count and when it last grew.
func waitStable(count func() int, want int, quiet, limit time.Duration) (int, time.Time) {
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

// waitIdle returns when cpu stops growing over a 200 ms poll (or after limit).
func waitIdle(cpu func() time.Duration, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for prev := time.Duration(-1); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		c := cpu()
		if c == prev {
			return
		}
		prev = c
	}
}

func signal(t testing.TB, pid int, sig syscall.Signal) {
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatal(err)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// schedCPU is the CPU time of pid's threads (user and system, nanosecond resolution): the sum
// of the first field of /proc/PID/task/*/schedstat. A Go daemon keeps its threads.
func schedCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("schedstat of %d: %v", pid, err)
	}
	var ns int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			ns += v
		}
	}
	return time.Duration(ns)
}

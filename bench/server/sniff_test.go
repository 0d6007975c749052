package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// BenchmarkSniffGarbage is "garbage packets / s / core" of BenchmarkServerVsFwknopd for sesame
// in sniff mode (AF_PACKET on the server's veth, nothing listens on udp/62201), measured the
// same way: the server is stopped while a burst of forged packets fills its capture buffer,
// then resumed, and the packets it handled are divided by the CPU time (user+system) it took
// to drain them (summed over its threads from /proc/PID/task/*/schedstat, in nanoseconds, where
// /proc/PID/stat counts 10 ms ticks). Bursts of BENCH_SNIFF_BURST (2000) packets fit in the capture buffer, so the
// kernel drops none; BENCH_SNIFF_ROUNDS (20) rounds. It needs root and nft; run it with
// -benchtime 1x.
func BenchmarkSniffGarbage(b *testing.B) {
	nstest.Require(b, "nft")
	srv, cli := nstest.Pair(b)
	ses := sesametest.StartServer(b, srv, sesametest.ServerOptions{
		Config: fmt.Sprintf("PCAP_INTF %s;\nSESAME_GUARD_PORTS tcp/22;\n", srv.Ifc),
		Access: fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 600\n", benchKey, benchHMAC)})
	junk := forged(b, 512)
	burst := make([][]byte, envInt("BENCH_SNIFF_BURST", 2000))
	for i := range burst {
		burst[i] = junk[i%len(junk)]
	}
	var handled int
	var cpu time.Duration
	for round := 0; round < envInt("BENCH_SNIFF_ROUNDS", 20); round++ {
		p0, c0 := packets(b, ses), schedCPU(b, ses.PID)
		signal(b, ses.PID, syscall.SIGSTOP)
		blast(b, cli, srvSPA, burst, 0)
		signal(b, ses.PID, syscall.SIGCONT)
		for prev := time.Duration(-1); ; { // the drain is over when CPU time stops growing
			time.Sleep(50 * time.Millisecond)
			c := schedCPU(b, ses.PID)
			if c == prev {
				break
			}
			prev = c
		}
		p1, c1 := packets(b, ses), schedCPU(b, ses.PID)
		handled += p1 - p0
		cpu += c1 - c0
	}
	b.Logf("sesame sniff mode: %d of %d forged packets handled with %v CPU", handled,
		len(burst)*envInt("BENCH_SNIFF_ROUNDS", 20), cpu)
	b.ReportMetric(float64(handled)/cpu.Seconds(), "garbage-pkt/s/core")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(handled), "cpu-ns/pkt")
}

// schedCPU is the CPU time of pid's threads (user and system, nanosecond resolution): the sum
// of the first field of /proc/PID/task/*/schedstat. Threads that exited are not counted; a Go
// daemon keeps its threads.
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
			continue // the thread exited
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			v, _ := strconv.ParseInt(f[0], 10, 64)
			ns += v
		}
	}
	return time.Duration(ns)
}

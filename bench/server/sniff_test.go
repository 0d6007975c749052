package server

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/benchtest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// BenchmarkSniffGarbage is "garbage packets / s / core" of BenchmarkServerVsFwknopd for sesame
// in sniff mode (AF_PACKET on the server's veth, nothing listens on udp/62201), measured the
// same way: the server is stopped (SIGSTOP) while a burst of forged packets fills its capture
// ring, then resumed, and the packets it handled are divided by the CPU time (user+system) it
// took to drain them. CPU time is summed over the server's threads from
// /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks) and read before
// the counters are asked for (SIGUSR1), so the stats line it logs is not counted.
//
// Stopping and resuming a process costs CPU of its own (every thread takes the stop and the
// continue, and the runtime reschedules): before each burst an empty round (stop, resume, wait
// the same way, no packets) measures it, and the net figure subtracts it. The net figure still
// carries what each drain pays once (waking the reader and the runtime's threads). The
// marginal figure leaves that out too: every round also drains a quarter burst, and the
// marginal cost of a packet is the slope between the two sizes (CPU of the full bursts minus
// that of the quarter bursts, over the packets between them): the cost of a forged packet to a
// server that a flood keeps busy. The gross figure is reported too. Bursts of
// BENCH_SNIFF_BURST (2000) packets fit in the capture ring, so the kernel drops none;
// BENCH_SNIFF_ROUNDS (20) rounds, after one burst that is not counted: the first burst after
// start pays once for what a flooded server has already paid (the reader's goroutine stack
// growing, the first rejection lines, the log limiter's entry). It needs root and nft; run it
// with -benchtime 1x.
func BenchmarkSniffGarbage(b *testing.B) {
	nstest.Require(b, "nft")
	srv, cli := nstest.Pair(b)
	ses := sesametest.StartServer(b, srv, sesametest.ServerOptions{
		Config: fmt.Sprintf("PCAP_INTF %s;\nSESAME_GUARD_PORTS tcp/22;\n", srv.Ifc),
		Access: fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 600\n", benchKey, benchHMAC)})
	junk := forged(b, 512)
	burst := make([][]byte, benchtest.EnvInt("BENCH_SNIFF_BURST", 2000))
	for i := range burst {
		burst[i] = junk[i%len(junk)]
	}
	drainRound(b, ses, cli, burst) // warm-up, not counted (see above)
	var handled, handledQ int
	var cpu, cpuQ, idle time.Duration
	rounds := benchtest.EnvInt("BENCH_SNIFF_ROUNDS", 20)
	for range rounds {
		if n, c := drainRound(b, ses, cli, nil); n == 0 {
			idle += c
		} else {
			b.Fatalf("%d packets handled in an empty round", n)
		}
		n, c := drainRound(b, ses, cli, burst[:len(burst)/4])
		handledQ += n
		cpuQ += c
		n, c = drainRound(b, ses, cli, burst)
		handled += n
		cpu += c
	}
	b.Logf("sesame sniff mode: %d of %d forged packets handled with %v CPU; empty rounds %v CPU; quarter bursts %d packets with %v CPU",
		handled, len(burst)*rounds, cpu, idle, handledQ, cpuQ)
	b.ReportMetric(float64(handled)/cpu.Seconds(), "garbage-pkt/s/core")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(handled), "cpu-ns/pkt")
	b.ReportMetric(float64(handled)/(cpu-idle).Seconds(), "net-garbage-pkt/s/core")
	b.ReportMetric(float64((cpu-idle).Nanoseconds())/float64(handled), "net-cpu-ns/pkt")
	b.ReportMetric(float64(handled-handledQ)/(cpu-cpuQ).Seconds(), "marginal-garbage-pkt/s/core")
}

// drainRound stops the server, sends burst (maybe none) from cli to the SPA port, resumes the
// server and waits until its CPU time stops growing (50 ms without a nanosecond of CPU). It
// returns the packets the server handled and the CPU time it took.
func drainRound(b testing.TB, ses *sesametest.Server, cli *nstest.NS, burst [][]byte) (int, time.Duration) {
	p0, c0 := benchtest.Packets(b, ses), benchtest.SchedCPU(b, ses.PID)
	benchtest.Signal(b, ses.PID, syscall.SIGSTOP)
	if len(burst) > 0 {
		benchtest.Blast(b, cli, srvSPA, burst, 0)
	}
	benchtest.Signal(b, ses.PID, syscall.SIGCONT)
	for prev := time.Duration(-1); ; {
		time.Sleep(50 * time.Millisecond)
		c := benchtest.SchedCPU(b, ses.PID)
		if c == prev {
			break
		}
		prev = c
	}
	c1 := benchtest.SchedCPU(b, ses.PID) // before the stats request, whose logging is not packet work
	p1 := benchtest.Packets(b, ses)
	return p1 - p0, c1 - c0
}

package capture

import (
	"bytes"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// floodSender is a UDP socket in the client namespace of a Pair that sends 200-byte garbage
// datagrams (the size of a forged SPA packet) to the server's udp/62201, 64 per sendmmsg.
type floodSender struct {
	conn net.PacketConn
	pc   *ipv4.PacketConn
	msgs []ipv4.Message
}

func newFloodSender(b testing.TB, cli *nstest.NS) *floodSender {
	f := &floodSender{}
	if err := cli.Do(b, func() (err error) {
		f.conn, err = net.ListenPacket("udp4", nstest.CliIP4+":0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.conn.Close() })
	f.pc = ipv4.NewPacketConn(f.conn)
	dst := &net.UDPAddr{IP: net.ParseIP(nstest.SrvIP4), Port: 62201}
	payload := bytes.Repeat([]byte("A"), 200)
	f.msgs = make([]ipv4.Message, 64)
	for i := range f.msgs {
		f.msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: dst}
	}
	return f
}

// send sends n datagrams.
func (f *floodSender) send(n int) error {
	for n > 0 {
		k, err := f.pc.WriteBatch(f.msgs[:min(n, len(f.msgs))], 0)
		if err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// BenchmarkSnifferFlood measures packets per second through the whole sniffer path (kernel
// filter, read, parse, payload copy) at the reader, while a client namespace floods the
// server's veth with garbage datagrams to udp/62201 (what bad-HMAC floods look like to the
// capture layer). The sender stops when the reader has its b.N packets. Allocations include
// the sender's. When the reader is faster than the sender it waits for packets, and those
// wake-ups are part of its cost; BenchmarkSnifferDrain measures a reader that never waits.
func BenchmarkSnifferFlood(b *testing.B) {
	srv, cli := nstest.Pair(b)
	s := openSniffer(b, srv, SniffConfig{Interface: srv.Ifc, ReadBuffer: 8 << 20})
	f := newFloodSender(b, cli)
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if f.send(64) != nil {
				return
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()

	// The reader's own CPU time (user and system, on its locked thread) gives the cost per
	// packet independent of what else the machine runs; 1e9 over it is packets per core-second.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s.Read() // the flood is running
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), threadCPU(b)
	for b.Loop() {
		if _, err := s.Read(); err != nil {
			b.Fatal(err)
		}
	}
	el, cpu := time.Since(start), threadCPU(b)-cpu0
	b.StopTimer()
	reportCPU(b, cpu, b.N)
	b.ReportMetric(float64(b.N)/el.Seconds(), "pkts/s")
	if st, err := s.Stats(); err == nil && st.Received > 0 {
		b.ReportMetric(100*float64(st.Dropped)/float64(st.Received), "%dropped")
	}
}

// BenchmarkSnifferDrain is the reader's cost per packet when packets are already waiting, as
// when a flood outpaces the server (and as bench/server measures the daemon): in rounds, the
// client sends a burst of drainBurst garbage datagrams while the reader is idle, the sniffer's
// kernel counter shows they were all queued, and then the reader drains them on its locked
// thread. Only the drains count, in CPU time (getrusage RUSAGE_THREAD, user and system) and in
// ns/op (wall time).
func BenchmarkSnifferDrain(b *testing.B) {
	const drainBurst = 2048 // fits the 8 MiB buffer
	srv, cli := nstest.Pair(b)
	s := openSniffer(b, srv, SniffConfig{Interface: srv.Ifc, ReadBuffer: 8 << 20})
	f := newFloodSender(b, cli)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// A Read that hangs (a packet lost between the counter and the reader) fails, not blocks.
	stuck := time.AfterFunc(time.Minute, func() { s.Close() })
	defer stuck.Stop()

	var cpu time.Duration
	var queued uint64 // packets the kernel queued for the reader so far (received - dropped)
	b.ReportAllocs()
	b.ResetTimer()
	for read := 0; read < b.N; {
		b.StopTimer()
		if err := f.send(min(drainBurst, b.N-read)); err != nil {
			b.Fatal(err)
		}
		// Delivery over the veth can finish in a softirq after send returns: wait for the count.
		want, n := queued+uint64(min(drainBurst, b.N-read)), 0
		for deadline := time.Now().Add(5 * time.Second); ; {
			st, err := s.Stats()
			if err != nil {
				b.Fatal(err)
			}
			if q := st.Received - st.Dropped; q >= want || time.Now().After(deadline) {
				n, queued = int(q-queued), q
				break
			}
			runtime.Gosched()
		}
		b.StartTimer()
		cpu0 := threadCPU(b)
		for range n {
			if _, err := s.Read(); err != nil {
				b.Fatal(err)
			}
		}
		cpu += threadCPU(b) - cpu0
		read += n
	}
	b.StopTimer()
	reportCPU(b, cpu, b.N)
}

// reportCPU reports the reader's CPU time per packet and its inverse, packets per CPU-second.
func reportCPU(b *testing.B, cpu time.Duration, n int) {
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "reader-cpu-ns/pkt")
	b.ReportMetric(float64(n)/cpu.Seconds(), "pkts/cpu-s")
}

func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadPath is the userspace share of Sniffer.Read per packet: parse, userspace filter
// check and payload copy (the decoder).
func BenchmarkReadPath(b *testing.B) {
	d := newDecoder(mustFilter(b, DefaultFilter), time.Now)
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	var a arena
	b.ReportAllocs()
	for b.Loop() {
		p, _, ok := d.decode(pkt)
		if !ok {
			b.Fatal("rejected")
		}
		p.Payload = a.copy(p.Payload)
	}
}

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

// BenchmarkSnifferFlood measures packets per second through the whole sniffer path (kernel
// filter, read, parse, payload copy) at the reader, while a client namespace floods the
// server's veth with 200-byte garbage datagrams to udp/62201 (what bad-HMAC floods look like
// to the capture layer). The sender stops when the reader has its b.N packets. Allocations
// include the sender's.
func BenchmarkSnifferFlood(b *testing.B) {
	srv, cli := nstest.Pair(b)
	s := openSniffer(b, srv, SniffConfig{Interface: srv.Ifc, ReadBuffer: 8 << 20})

	var pc *ipv4.PacketConn
	var conn net.PacketConn
	if err := cli.Do(b, func() (err error) {
		conn, err = net.ListenPacket("udp4", nstest.CliIP4+":0")
		pc = ipv4.NewPacketConn(conn)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	dst := &net.UDPAddr{IP: net.ParseIP(nstest.SrvIP4), Port: 62201}
	payload := bytes.Repeat([]byte("A"), 200)
	msgs := make([]ipv4.Message, 64)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: dst}
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if _, err := pc.WriteBatch(msgs, 0); err != nil {
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
	b.ReportMetric(float64(b.N)/el.Seconds(), "pkts/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "reader-cpu-ns/pkt")
	if st, err := s.Stats(); err == nil && st.Received > 0 {
		b.ReportMetric(100*float64(st.Dropped)/float64(st.Received), "%dropped")
	}
}

func threadCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadPath is the userspace share of Sniffer.Read per packet: parse, userspace filter
// check and payload copy.
func BenchmarkReadPath(b *testing.B) {
	f := mustFilter(b, DefaultFilter)
	pkt := ip4(ProtoUDP, cli4, srv4, 0, udpHdr(40000, 62201, spaPayload()))
	b.ReportAllocs()
	for b.Loop() {
		p, err := ParseIP(pkt)
		if err != nil || !f.Match(p) {
			b.Fatal(err)
		}
		p.Payload = bytes.Clone(p.Payload)
	}
}

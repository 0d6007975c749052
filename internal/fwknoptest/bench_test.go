package fwknoptest

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// BenchmarkRealClient measures one run of the real client building a packet (-T -B -v),
// the baseline for "sesame knock" packet building.
func BenchmarkRealClient(b *testing.B) {
	nstest.Require(b, "fwknop")
	args := Matrix()[0].ClientArgs()
	dir := b.TempDir()
	for b.Loop() {
		if _, err := RunClient(dir, args...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpaDecodeVectors measures spa.Decode over the recorded real-client packets.
func BenchmarkSpaDecodeVectors(b *testing.B) {
	vs, err := LoadVectors(VectorsFile)
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]spa.Keys, len(vs))
	for i, v := range vs {
		if keys[i], err = v.Keys(); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := spa.Decode([]byte(vs[i].Wire), keys[i]); err != nil {
			b.Fatal(err)
		}
		i = (i + 1) % len(vs)
	}
}

// BenchmarkFwknopdTestModeDecode measures how fast the real fwknopd (UDP-server mode, -t, one
// stanza, -v -v logging) decodes a burst of valid sesame-built packets: time per packet from
// the first send to the last decode.
func BenchmarkFwknopdTestModeDecode(b *testing.B) {
	nstest.Require(b, "fwknopd", "iptables")
	c := Matrix()[0]
	ns := nstest.New(b)
	srv := StartServer(b, ns, ServerOptions{Access: c.Stanza(), Config: MatrixServerConfig, TestMode: true})
	now := time.Now()
	packets := make([][]byte, b.N)
	for i := range packets {
		m := c.Message(now)
		w, err := spa.Encode(&m, c.Keys, rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		packets[i] = []byte(w)
	}
	b.ResetTimer()
	// fwknopd's socket buffer holds ~160 datagrams: send in chunks and wait for each.
	for start := 0; start < len(packets); start += 100 {
		end := min(start+100, len(packets))
		srv.Send(b, packets[start:end]...)
		srv.WaitLog(b, "skipping firewall manipulation", end, time.Minute)
	}
	b.StopTimer()
	if n := strings.Count(srv.Log(), "SPA Decode (res=0)"); n != b.N {
		b.Fatalf("%d packets decoded, sent %d", n, b.N)
	}
}

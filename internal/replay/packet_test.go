package replay

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Each digest line records the packet's protocol, source and destination (fwknopd's fields),
// IPv6 addresses as 0.0.0.0 (which fwknopd can read), zeros without a packet, and a compaction
// keeps every live entry's line as written.
func TestFileRecordsPacket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	clk := &fakeClock{t0}
	c := openT(t, path, clk, 0)
	ap := netip.MustParseAddrPort
	add := func(d string, p *Packet, keep time.Duration) {
		t.Helper()
		cx := ctx
		if p != nil {
			cx = WithPacket(ctx, *p)
		}
		if fresh, err := c.CheckAndAdd(cx, d, clk.Now(), keep); err != nil || !fresh {
			t.Fatalf("add %s: %v %v", d, fresh, err)
		}
	}
	add(digestN(1), &Packet{Proto: 17, Src: ap("10.99.0.2:55383"), Dst: ap("10.99.0.1:62201")}, time.Hour)
	add(digestN(2), &Packet{Proto: 17, Src: ap("10.99.0.2:40000"), Dst: netip.AddrPortFrom(netip.IPv4Unspecified(), 62201)}, 0)
	add(digestN(3), &Packet{Proto: 6, Src: ap("[fd99::2]:1234"), Dst: ap("[fd99::1]:62201")}, time.Hour)
	add(digestN(4), &Packet{Proto: 1, Src: ap("[::ffff:192.0.2.7]:0"), Dst: ap("192.0.2.1:0")}, time.Hour)
	add(digestN(5), nil, time.Hour)
	add(digestN(6), &Packet{Proto: 17, Src: ap("10.99.0.9:1"), Dst: ap("10.99.0.1:2")}, time.Second) // expires before the compaction
	exp := t0.Add(time.Hour).Unix()
	want := []string{
		digestN(1) + " 17 10.99.0.2 55383 10.99.0.1 62201 " + itoa(t0.Unix()) + " " + itoa(exp),
		digestN(2) + " 17 10.99.0.2 40000 0.0.0.0 62201 " + itoa(t0.Unix()) + " 0",
		digestN(3) + " 6 0.0.0.0 1234 0.0.0.0 62201 " + itoa(t0.Unix()) + " " + itoa(exp),
		digestN(4) + " 1 192.0.2.7 0 192.0.2.1 0 " + itoa(t0.Unix()) + " " + itoa(exp),
		digestN(5) + " 0 0.0.0.0 0 0.0.0.0 0 " + itoa(t0.Unix()) + " " + itoa(exp),
	}
	check := func(when string, lines []string) {
		t.Helper()
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range lines {
			if !strings.Contains(string(data), w+"\n") {
				t.Errorf("%s: no line %q in\n%s", when, w, data)
			}
		}
	}
	check("appended", append(want, digestN(6)+" 17 10.99.0.9 1 10.99.0.1 2 "+itoa(t0.Unix())+" "+itoa(t0.Unix()+1)))
	clk.Advance(2 * time.Second)
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	check("compacted", want)
	if n := countLines(t, path); n != len(want) {
		t.Errorf("compacted file has %d lines, want %d", n, len(want))
	}
	closeT(t, c)
	c = openT(t, path, clk, 0)
	defer closeT(t, c)
	if st := c.Stats(); st.Loaded != len(want) || st.Skipped != 0 {
		t.Errorf("reloaded: %+v", st)
	}
}

func TestPacketFrom(t *testing.T) {
	if p := PacketFrom(ctx); p != (Packet{}) {
		t.Errorf("no packet: %+v", p)
	}
	p := Packet{Proto: 17, Src: netip.MustParseAddrPort("10.0.0.1:5")}
	if got := PacketFrom(WithPacket(ctx, p)); got != p {
		t.Errorf("got %+v", got)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

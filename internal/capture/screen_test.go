package capture

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// screenLog is a screen that settles packets whose payload starts with "settle" and records
// what it saw (copies: the payload is the source's buffer).
type screenLog struct {
	mu   sync.Mutex
	seen [][]byte
}

func (l *screenLog) screen(p Packet) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, bytes.Clone(p.Payload))
	return bytes.HasPrefix(p.Payload, []byte("settle"))
}

func (l *screenLog) saw() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s []string
	for _, b := range l.seen {
		s = append(s, string(b))
	}
	return s
}

// checkScreened sends settle/keep payloads with send and checks that the screen saw every one
// in order and Read returned exactly the kept ones, intact, in order, and with the time they
// were read (Packet.Time) between the first send and the last Read.
func checkScreened(t *testing.T, r *reader, l *screenLog, send func(payload []byte)) {
	t.Helper()
	var want []string
	var all []string
	before := time.Now()
	for i := range 6 {
		p := fmt.Sprintf("keep %d", i)
		if i%2 == 0 {
			p = fmt.Sprintf("settle %d", i)
		} else {
			want = append(want, p)
		}
		all = append(all, p)
		send([]byte(p))
	}
	for _, w := range want {
		p := r.expect(t, w)
		if string(p.Payload) != w {
			t.Fatalf("Read returned %q, want %q", p.Payload, w)
		}
		if p.Time.Before(before) || p.Time.After(time.Now()) {
			t.Fatalf("%q read at %v, not between %v and now", w, p.Time, before)
		}
	}
	r.expectNone(t, 200*time.Millisecond)
	if saw := l.saw(); fmt.Sprint(saw) != fmt.Sprint(all) {
		t.Fatalf("the screen saw %q, want %q", saw, all)
	}
}

// TestIntegrationSnifferScreen: a Sniffer shows every packet to its screen and returns only
// those the screen does not settle.
func TestIntegrationSnifferScreen(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	l := &screenLog{}
	s.Screen(l.screen)
	r := startReading(t, s)
	checkScreened(t, r, l, func(b []byte) { sendUDP(t, cli, nstest.SrvIP4+":62201", b, 0) })
}

// TestUDPServerScreen: the same for the UDP server, whose counters include what the screen
// settled (it was received).
func TestUDPServerScreen(t *testing.T) {
	s, c := loopbackUDP(t)
	l := &screenLog{}
	s.Screen(l.screen)
	r := startReading(t, s)
	checkScreened(t, r, l, func(b []byte) {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	})
	if st, err := s.Stats(); err != nil || st.Received != 6 {
		t.Fatalf("stats %+v, %v: want 6 received", st, err)
	}
}

// TestResilientAndMultiScreen: a ResilientSniffer gives its screen to the open socket and to
// every socket it opens later; a MultiSniffer gives it to every interface.
func TestResilientAndMultiScreen(t *testing.T) {
	links := newFakeLinks(LinkEvent{Name: "eth8", Index: 2, Up: true}, LinkEvent{Name: "eth9", Index: 3, Up: true})
	r8, op8, _ := newTestResilient(t, "eth8", links, false)
	r9, op9, _ := newTestResilient(t, "eth9", links, false)
	s8, s9 := op8.next(t), op9.next(t)
	m := newMulti([]string{"eth8", "eth9"}, []subSniffer{r8, r9})
	l := &screenLog{}
	m.Screen(l.screen)
	rd := startReading(t, m)
	src := netip.MustParseAddrPort("10.99.0.2:40000")
	for i, fs := range []*fakeSource{s8, s9} {
		fs.pkts <- Packet{Src: src, Payload: []byte(fmt.Sprintf("settle %d", i))}
		fs.pkts <- Packet{Src: src, Payload: []byte(fmt.Sprintf("keep %d", i))}
		if p := rd.expect(t, "a kept packet"); !bytes.HasPrefix(p.Payload, []byte("keep")) {
			t.Fatalf("Read returned %q", p.Payload)
		}
	}

	// eth9 goes down and comes back: its new socket screens too.
	links.set(LinkEvent{Name: "eth9", Index: 3})
	s9.errs <- downErr("eth9")
	links.set(LinkEvent{Name: "eth9", Index: 3, Up: true})
	again := op9.next(t)
	again.pkts <- Packet{Src: src, Payload: []byte("settle again")}
	again.pkts <- Packet{Src: src, Payload: []byte("keep again")}
	if p := rd.expect(t, "the kept packet after the reattach"); string(p.Payload) != "keep again" {
		t.Fatalf("Read returned %q after the reattach, want %q", p.Payload, "keep again")
	}
	rd.expectNone(t, 100*time.Millisecond)
	if n := len(l.saw()); n != 6 {
		t.Fatalf("the screen saw %d packets (%q), want 6", n, l.saw())
	}
}

// checkWaiting: Waiting is false with nothing sent, turns true once a packet is queued (by the
// kernel, without a Read), and is false again once Read has taken it.
func checkWaiting(t *testing.T, src interface {
	Source
	Backlog
}, send func()) {
	t.Helper()
	if src.Waiting() {
		t.Fatal("Waiting before anything was sent")
	}
	send()
	deadline := time.Now().Add(3 * time.Second)
	for !src.Waiting() {
		if time.Now().After(deadline) {
			t.Fatal("Waiting stayed false after a packet was sent")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := src.Read(); err != nil {
		t.Fatal(err)
	}
	if src.Waiting() {
		t.Fatal("Waiting after the only packet was read")
	}
}

func TestIntegrationSnifferWaiting(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	checkWaiting(t, s, func() { sendUDP(t, cli, nstest.SrvIP4+":62201", []byte("knock"), 0) })
}

func TestUDPServerWaiting(t *testing.T) {
	s, c := loopbackUDP(t)
	checkWaiting(t, s, func() {
		if _, err := c.Write([]byte("knock")); err != nil {
			t.Fatal(err)
		}
	})
	// Two datagrams: after the first is read the second is waiting, in the batch Read took
	// or on the socket.
	for _, p := range []string{"one", "two"} {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Read(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !s.Waiting() {
		if time.Now().After(deadline) {
			t.Fatal("the second datagram is not waiting")
		}
		time.Sleep(time.Millisecond)
	}
	if p, err := s.Read(); err != nil || string(p.Payload) != "two" {
		t.Fatalf("Read: %q, %v; want the second datagram", p.Payload, err)
	}
}

// TestFillBounded: one fill looks at no more than scanLimit frames, so a run of frames the
// screen settles (a flood the reader cannot drain) ends it and Read comes back for more, and a
// packet kept behind such a run comes out after a few fills, not after the whole run.
func TestFillBounded(t *testing.T) {
	g := geometry(1500, 4<<20, 4096)
	r := &ring{mem: make([]byte, g.blockSize*g.blocks), geo: g}
	cli, srv := netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.1")
	put := func(i int, payload string) {
		b := ip4(ProtoUDP, cli, srv, 0, udpHdr(40000, 62201, []byte(payload)))
		off := (i/g.perBlock)*g.blockSize + (i%g.perBlock)*g.frameSize
		h := (*unix.Tpacket2Hdr)(unsafe.Pointer(&r.mem[off]))
		h.Net, h.Snaplen, h.Len = frameHeadroom, uint32(len(b)), uint32(len(b))
		copy(r.mem[off+frameHeadroom:], b)
		h.Status = unix.TP_STATUS_USER
	}
	forged := 2*scanLimit + 10
	for i := range forged {
		put(i, "forged")
	}
	put(forged, "keep")
	s := &Sniffer{dec: newDecoder(mustFilter(t, DefaultFilter), time.Now), ring: r, pend: make([]Packet, 0, pendSize)}
	settled := 0
	s.Screen(func(p Packet) bool {
		if string(p.Payload) == "forged" {
			settled++
			return true
		}
		return false
	})
	for fills := 1; ; fills++ {
		before := settled
		if err := s.fill(-1); err != nil {
			t.Fatalf("fill %d: %v", fills, err)
		}
		if seen := settled - before + len(s.pend); seen > scanLimit {
			t.Fatalf("fill %d looked at %d frames, more than %d", fills, seen, scanLimit)
		}
		if len(s.pend) > 0 {
			if string(s.pend[0].Payload) != "keep" || settled != forged || fills != 3 {
				t.Fatalf("fill %d returned %q after %d settled frames", fills, s.pend[0].Payload, settled)
			}
			return
		}
	}
}

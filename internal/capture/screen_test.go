package capture

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

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
// in order and Read returned exactly the kept ones, intact and in order.
func checkScreened(t *testing.T, r *reader, l *screenLog, send func(payload []byte)) []Packet {
	t.Helper()
	var want []string
	var all []string
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
	var got []Packet
	for _, w := range want {
		p := r.expect(t, w)
		if string(p.Payload) != w {
			t.Fatalf("Read returned %q, want %q", p.Payload, w)
		}
		got = append(got, p)
	}
	r.expectNone(t, 200*time.Millisecond)
	if saw := l.saw(); fmt.Sprint(saw) != fmt.Sprint(all) {
		t.Fatalf("the screen saw %q, want %q", saw, all)
	}
	return got
}

// TestIntegrationSnifferScreen: a Sniffer shows every packet to its screen, returns only those
// the screen does not settle, and stamps each with the kernel's receive time.
func TestIntegrationSnifferScreen(t *testing.T) {
	srv, cli := nstest.Pair(t)
	s := openSniffer(t, srv, SniffConfig{Interface: srv.Ifc})
	l := &screenLog{}
	s.Screen(l.screen)
	r := startReading(t, s)
	before := time.Now()
	got := checkScreened(t, r, l, func(b []byte) { sendUDP(t, cli, nstest.SrvIP4+":62201", b, 0) })
	after := time.Now()
	for _, p := range got {
		if p.Time.Before(before.Add(-time.Millisecond)) || p.Time.After(after) {
			t.Errorf("packet %q stamped %v, sent between %v and %v", p.Payload, p.Time, before, after)
		}
	}
}

// TestUDPServerScreen: the same for the UDP server, whose counters include what the screen
// settled (it was received).
func TestUDPServerScreen(t *testing.T) {
	s, c := loopbackUDP(t)
	l := &screenLog{}
	s.Screen(l.screen)
	r := startReading(t, s)
	got := checkScreened(t, r, l, func(b []byte) {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	})
	for _, p := range got {
		if !p.Time.IsZero() {
			t.Errorf("UDP packet stamped %v; the UDP server does not know the receive time", p.Time)
		}
	}
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

package nfevents

import (
	"errors"
	"net"
	"os"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// script is a receiver that returns its results in order. A receive without wait on an empty
// script returns errEmpty; with wait, it fails the test (Next must not block there).
type script struct {
	t       *testing.T
	results []result
	waits   []bool
}

type result struct {
	msgs []netlink.Message
	err  error
}

func (s *script) recv(wait bool) ([]netlink.Message, error) {
	s.waits = append(s.waits, wait)
	if len(s.results) == 0 {
		if wait {
			s.t.Fatal("Next blocked on an empty script")
		}
		return nil, errEmpty
	}
	r := s.results[0]
	s.results = s.results[1:]
	return r.msgs, r.err
}

func tableMsg(t testing.TB, msg uint8, name string) netlink.Message {
	return nfMsg(msg, unix.NFPROTO_INET, attrs(t, netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: str(name)}))
}

func genMsg(t testing.TB, id uint32) netlink.Message {
	return nfMsg(unix.NFT_MSG_NEWGEN, 0, attrs(t, netlink.Attribute{Type: unix.NFTA_GEN_ID, Data: be32(id)}))
}

func kinds(evs []Event) []Kind {
	var ks []Kind
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func sameKinds(got []Event, want ...Kind) bool {
	g := kinds(got)
	if len(g) != len(want) {
		return false
	}
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

func newScripted(t *testing.T, results ...result) (*Watcher, *script) {
	s := &script{t: t, results: results}
	return newWatcher(s.recv, func() error { return nil }), s
}

func TestNextDrainsQueue(t *testing.T) {
	other := netlink.Message{Header: netlink.Header{Type: netlink.Done}}
	w, s := newScripted(t,
		result{msgs: []netlink.Message{other}},                                   // nothing of interest: keep waiting
		result{msgs: []netlink.Message{tableMsg(t, unix.NFT_MSG_DELTABLE, "a")}}, // first events
		result{msgs: []netlink.Message{genMsg(t, 7)}},                            // queued behind them
	)
	evs, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !sameKinds(evs, DelTable, NewGen) || evs[0].Table != "a" || evs[1].Gen != 7 {
		t.Fatalf("got %v", evs)
	}
	if want := []bool{true, true, false, false}; len(s.waits) != len(want) || s.waits[0] != want[0] ||
		s.waits[1] != want[1] || s.waits[2] != want[2] || s.waits[3] != want[3] {
		t.Errorf("receives with wait %v, want %v", s.waits, want)
	}
}

func TestNextENOBUFSIsOverrun(t *testing.T) {
	enobufs := &netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvfrom", unix.ENOBUFS)}
	w, _ := newScripted(t,
		result{err: enobufs},
		result{msgs: []netlink.Message{tableMsg(t, unix.NFT_MSG_NEWTABLE, "b")}},
		result{err: enobufs}, // overflowed again while draining: still one Overrun
	)
	evs, err := w.Next()
	if err != nil {
		t.Fatalf("ENOBUFS became an error: %v", err)
	}
	if !sameKinds(evs, Overrun, NewTable) {
		t.Fatalf("got %v", evs)
	}
}

func TestNextBadMessageIsOverrun(t *testing.T) {
	bad := nfMsg(unix.NFT_MSG_DELTABLE, unix.NFPROTO_INET, nil) // no table name
	w, _ := newScripted(t, result{msgs: []netlink.Message{bad, bad, tableMsg(t, unix.NFT_MSG_DELTABLE, "c")}})
	evs, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !sameKinds(evs, Overrun, DelTable) {
		t.Fatalf("got %v", evs)
	}
}

func TestNextError(t *testing.T) {
	boom := errors.New("boom")
	w, _ := newScripted(t, result{err: boom})
	if _, err := w.Next(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want it to wrap %v", err, boom)
	}
	// An error while draining ends the batch; the events already read are returned.
	w, _ = newScripted(t, result{msgs: []netlink.Message{genMsg(t, 1)}}, result{err: boom})
	if evs, err := w.Next(); err != nil || !sameKinds(evs, NewGen) {
		t.Fatalf("got %v, %v", evs, err)
	}
}

func TestCloseUnblocksNext(t *testing.T) {
	unblock := make(chan struct{})
	w := newWatcher(func(bool) ([]netlink.Message, error) {
		<-unblock
		return nil, errors.New("use of closed file")
	}, func() error { close(unblock); return nil })
	errc := make(chan error)
	go func() { _, err := w.Next(); errc <- err }()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close: %v, want net.ErrClosed", err)
	}
	if _, err := w.Next(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Next: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Close unblocks a Next that waits on the real socket.
func TestIntegrationClose(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	w, err := Watch(Config{NetNSFd: int(ns.Handle(t)), ReadBuffer: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() { _, err := w.Next(); errc <- err }()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeLinks is a LinkWatcher over a map the test changes.
type fakeLinks struct {
	mu     sync.Mutex
	links  map[string]LinkEvent
	events chan linkItem
	done   chan struct{}
	once   sync.Once
}

type linkItem struct {
	ev  LinkEvent
	err error
}

var _ LinkWatcher = (*fakeLinks)(nil)

func newFakeLinks(evs ...LinkEvent) *fakeLinks {
	f := &fakeLinks{links: map[string]LinkEvent{}, events: make(chan linkItem, 64), done: make(chan struct{})}
	for _, ev := range evs {
		f.links[ev.Name] = ev
	}
	return f
}

// set changes a link (Gone deletes it) and reports the change.
func (f *fakeLinks) set(ev LinkEvent) {
	f.setQuietly(ev)
	f.events <- linkItem{ev: ev}
}

// setQuietly changes a link without an event, as when events were lost.
func (f *fakeLinks) setQuietly(ev LinkEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ev.Gone {
		delete(f.links, ev.Name)
	} else {
		f.links[ev.Name] = ev
	}
}

// fail makes Next return err once.
func (f *fakeLinks) fail(err error) { f.events <- linkItem{err: err} }

func (f *fakeLinks) Next() (LinkEvent, error) {
	select {
	case it := <-f.events:
		return it.ev, it.err
	case <-f.done:
		return LinkEvent{}, fmt.Errorf("fake links: %w", net.ErrClosed)
	}
}

func (f *fakeLinks) Link(name string) (LinkEvent, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, ok := f.links[name]
	return ev, ok, nil
}

func (f *fakeLinks) Close() error {
	f.once.Do(func() { close(f.done) })
	return nil
}

func (f *fakeLinks) closed() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// fakeSource is a Source whose packets and errors the test pushes.
type fakeSource struct {
	pkts  chan Packet
	errs  chan error
	done  chan struct{}
	once  sync.Once
	stats SourceStats

	screenMu sync.Mutex
	screen   func(Packet) bool
}

func (s *fakeSource) Read() (Packet, error) {
	for {
		select {
		case p := <-s.pkts:
			s.screenMu.Lock()
			f := s.screen
			s.screenMu.Unlock()
			if f != nil && f(p) {
				continue
			}
			return p, nil
		case err := <-s.errs:
			return Packet{}, err
		case <-s.done:
			return Packet{}, fmt.Errorf("fake source: %w", net.ErrClosed)
		}
	}
}

func (s *fakeSource) Waiting() bool { return len(s.pkts) > 0 }

func (s *fakeSource) Screen(f func(Packet) bool) {
	s.screenMu.Lock()
	defer s.screenMu.Unlock()
	s.screen = f
}

func (s *fakeSource) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *fakeSource) Stats() (SourceStats, error) { return s.stats, nil }

func (s *fakeSource) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// fakeOpener opens fakeSources on the links of a fakeLinks (any name if links is nil), as
// NewSniffer would: a missing link is ErrNoInterface.
type fakeOpener struct {
	links  *fakeLinks
	opened chan *fakeSource
	calls  atomic.Int64
	mu     sync.Mutex
	err    error // returned by every open while set
}

func newFakeOpener(links *fakeLinks) *fakeOpener {
	return &fakeOpener{links: links, opened: make(chan *fakeSource, 16)}
}

func (o *fakeOpener) open(cfg SniffConfig) (Source, error) {
	n := o.calls.Add(1)
	o.mu.Lock()
	err := o.err
	o.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if o.links != nil {
		if _, ok, _ := o.links.Link(cfg.Interface); !ok {
			return nil, onInterface(cfg.Interface, fmt.Errorf("capture: %w", ErrNoInterface))
		}
	}
	s := &fakeSource{pkts: make(chan Packet, 16), errs: make(chan error, 1), done: make(chan struct{}),
		stats: SourceStats{Received: uint64(10 * n), Dropped: uint64(n), Rejected: 1}}
	o.opened <- s
	return s, nil
}

func (o *fakeOpener) setErr(err error) {
	o.mu.Lock()
	o.err = err
	o.mu.Unlock()
}

// next waits for the next socket opened.
func (o *fakeOpener) next(t *testing.T) *fakeSource {
	t.Helper()
	select {
	case s := <-o.opened:
		return s
	case <-time.After(3 * time.Second):
		t.Fatal("no socket was opened")
		return nil
	}
}

// logRecorder is a slog.Handler that hands records to the test.
type logRecorder struct{ ch chan slog.Record }

func newLogRecorder() *logRecorder { return &logRecorder{ch: make(chan slog.Record, 256)} }

func (l *logRecorder) logger() *slog.Logger                     { return slog.New(l) }
func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.ch <- r.Clone()
	return nil
}

// expect waits for a record with the level and message, skipping others, and returns its
// attributes.
func (l *logRecorder) expect(t *testing.T, level slog.Level, msg string) map[string]slog.Value {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case r := <-l.ch:
			if r.Level != level || r.Message != msg {
				continue
			}
			attrs := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value; return true })
			return attrs
		case <-deadline:
			t.Fatalf("no %v log %q", level, msg)
			return nil
		}
	}
}

func newTestResilient(t *testing.T, name string, links *fakeLinks, exitOnDown bool) (*ResilientSniffer, *fakeOpener, *logRecorder) {
	t.Helper()
	op, log := newFakeOpener(links), newLogRecorder()
	opts := ResilientOptions{Log: log.logger(), Open: op.open, ExitOnDown: exitOnDown}
	if links != nil {
		opts.Links = links
	}
	r, err := NewResilientSniffer(SniffConfig{Interface: name}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, op, log
}

func downErr(name string) error {
	return onInterface(name, fmt.Errorf("sniff: %w: %w", ErrInterfaceDown, unix.ENETDOWN))
}

// TestResilientReattach: a socket that reports its interface down is closed, nothing is opened
// while the link is down or gone, and a new socket is opened on the re-created link.
func TestResilientReattach(t *testing.T) {
	links := newFakeLinks(LinkEvent{Name: "eth9", Index: 2, Up: true})
	r, op, log := newTestResilient(t, "eth9", links, false)
	s1 := op.next(t)
	rd := startReading(t, r)
	s1.pkts <- Packet{Payload: []byte("one")}
	if p := rd.expect(t, "first packet"); string(p.Payload) != "one" {
		t.Fatalf("got %q", p.Payload)
	}

	links.set(LinkEvent{Name: "eth9", Index: 2})
	s1.errs <- downErr("eth9")
	attrs := log.expect(t, slog.LevelWarn, "interface eth9 went down; waiting for it to come back")
	if attrs["interface"].String() != "eth9" || !strings.Contains(attrs["err"].String(), "went down") {
		t.Fatalf("attributes %v", attrs)
	}
	if !s1.closed() {
		t.Fatal("the old socket is still open")
	}
	links.set(LinkEvent{Name: "other", Index: 3, Up: true})
	links.set(LinkEvent{Name: "eth9", Index: 2, Gone: true})
	links.set(LinkEvent{Name: "eth9", Index: 5})
	links.set(LinkEvent{Name: "eth9", Index: 5, Up: true})
	s2 := op.next(t)
	attrs = log.expect(t, slog.LevelInfo, "reattached to interface eth9")
	if attrs["index"].Int64() != 5 || attrs["reattachments"].Uint64() != 1 {
		t.Fatalf("attributes %v", attrs)
	}
	s2.pkts <- Packet{Payload: []byte("two")}
	if p := rd.expect(t, "packet after reattaching"); string(p.Payload) != "two" {
		t.Fatalf("got %q", p.Payload)
	}
	if n := op.calls.Load(); n != 2 {
		t.Fatalf("%d sockets opened, want 2", n)
	}
	st, err := r.Stats()
	want := SourceStats{Received: 30, Dropped: 3, Rejected: 2}
	if err != nil || st != want {
		t.Fatalf("stats %+v, %v; want %+v", st, err, want)
	}
	if n, attached := r.Reattachments(); n != 1 || !attached {
		t.Fatalf("%d reattachments, attached %v; want 1, true", n, attached)
	}
}

// TestResilientFlapBeforeRead: the link is back before Read sees the error; one reattachment.
func TestResilientFlapBeforeRead(t *testing.T) {
	links := newFakeLinks(LinkEvent{Name: "eth9", Index: 2, Up: true})
	r, op, log := newTestResilient(t, "eth9", links, false)
	s1 := op.next(t)
	links.set(LinkEvent{Name: "eth9", Index: 2})
	links.set(LinkEvent{Name: "eth9", Index: 2, Up: true})
	s1.errs <- downErr("eth9")
	rd := startReading(t, r)
	s2 := op.next(t)
	log.expect(t, slog.LevelInfo, "reattached to interface eth9")
	s2.pkts <- Packet{Payload: []byte("x")}
	rd.expect(t, "packet")
	if n, _ := r.Reattachments(); n != 1 {
		t.Fatalf("%d reattachments, want 1", n)
	}
}

// TestResilientMissingAtStart: no error and a warning naming the interface; the socket opens
// when the link appears and is up, not before.
func TestResilientMissingAtStart(t *testing.T) {
	links := newFakeLinks()
	r, op, log := newTestResilient(t, "spa0", links, true)
	if attrs := log.expect(t, slog.LevelWarn, "interface spa0 does not exist yet; waiting for it (PCAP_INTF)"); attrs["interface"].String() != "spa0" {
		t.Fatalf("attributes %v", attrs)
	}
	rd := startReading(t, r)
	links.set(LinkEvent{Name: "spa0", Index: 4})
	links.set(LinkEvent{Name: "spa0", Index: 4, Up: true})
	s := op.next(t)
	if attrs := log.expect(t, slog.LevelInfo, "attached to interface spa0"); attrs["index"].Int64() != 4 {
		t.Fatalf("attributes %v", attrs)
	}
	s.pkts <- Packet{Payload: []byte("late")}
	rd.expect(t, "packet")
	if n := op.calls.Load(); n != 1 {
		t.Fatalf("%d sockets opened, want 1", n)
	}
	if n, attached := r.Reattachments(); n != 0 || !attached {
		t.Fatalf("%d reattachments, attached %v; want 0, true", n, attached)
	}
}

func TestResilientDownAtStart(t *testing.T) {
	links := newFakeLinks(LinkEvent{Name: "eth9", Index: 2})
	r, op, log := newTestResilient(t, "eth9", links, false)
	log.expect(t, slog.LevelWarn, "interface eth9 is down; waiting for it to come up (PCAP_INTF)")
	if _, attached := r.Reattachments(); attached {
		t.Fatal("attached to a link that is down")
	}
	rd := startReading(t, r)
	links.set(LinkEvent{Name: "eth9", Index: 2, Up: true})
	op.next(t).pkts <- Packet{Payload: []byte("up")}
	rd.expect(t, "packet")
}

// TestResilientExitOnDown: Read returns ErrInterfaceDown naming the interface, and nothing is
// reopened.
func TestResilientExitOnDown(t *testing.T) {
	for _, cause := range []error{downErr("eth9"), fmt.Errorf("recv: %w", unix.ENXIO)} {
		links := newFakeLinks(LinkEvent{Name: "eth9", Index: 2, Up: true})
		r, op, _ := newTestResilient(t, "eth9", links, true)
		s := op.next(t)
		s.errs <- cause
		_, err := r.Read()
		if !errors.Is(err, ErrInterfaceDown) || !strings.Contains(err.Error(), `interface "eth9"`) {
			t.Fatalf("Read: %v, want ErrInterfaceDown naming eth9", err)
		}
		if !errors.Is(err, cause) {
			t.Fatalf("Read: %v does not wrap %v", err, cause)
		}
		if n := op.calls.Load(); n != 1 {
			t.Fatalf("%d sockets opened, want 1", n)
		}
	}
}

// TestResilientClose: Close unblocks Read while waiting for the interface and while reading,
// closes the socket and the watcher, and Read afterwards fails at once.
func TestResilientClose(t *testing.T) {
	for _, present := range []bool{false, true} {
		t.Run(fmt.Sprintf("present=%v", present), func(t *testing.T) {
			links := newFakeLinks()
			if present {
				links.setQuietly(LinkEvent{Name: "eth9", Index: 2, Up: true})
			}
			r, op, _ := newTestResilient(t, "eth9", links, false)
			errc := make(chan error, 1)
			go func() { _, err := r.Read(); errc <- err }()
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) || !strings.Contains(err.Error(), `"eth9"`) {
					t.Fatalf("Read: %v, want net.ErrClosed naming eth9", err)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("Close did not unblock Read")
			}
			if _, err := r.Read(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
			if !links.closed() {
				t.Fatal("the link watcher is still open")
			}
			if present {
				if s := op.next(t); !s.closed() {
					t.Fatal("the socket is still open")
				}
			} else if n := op.calls.Load(); n != 0 {
				t.Fatalf("%d sockets opened", n)
			}
			if err := r.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if _, err := r.Stats(); err != nil {
				t.Fatalf("stats after Close: %v", err)
			}
			if _, attached := r.Reattachments(); attached {
				t.Fatal("attached after Close")
			}
		})
	}
}

// TestResilientEventsLost: after lost events the link is looked up again.
func TestResilientEventsLost(t *testing.T) {
	links := newFakeLinks()
	r, op, _ := newTestResilient(t, "spa0", links, false)
	rd := startReading(t, r)
	links.setQuietly(LinkEvent{Name: "spa0", Index: 4, Up: true})
	links.fail(fmt.Errorf("recv: %w", ErrLinkEventsLost))
	op.next(t).pkts <- Packet{Payload: []byte("x")}
	rd.expect(t, "packet")
}

// TestResilientWatcherFails: if link events stop working, the link is checked periodically.
func TestResilientWatcherFails(t *testing.T) {
	links := newFakeLinks()
	r, op, log := newTestResilient(t, "spa0", links, false)
	rd := startReading(t, r)
	links.fail(errors.New("netlink broke"))
	if attrs := log.expect(t, slog.LevelError, "link events for interface spa0 failed; checking it every 1s instead"); !strings.Contains(attrs["err"].String(), "netlink broke") {
		t.Fatalf("attributes %v", attrs)
	}
	links.setQuietly(LinkEvent{Name: "spa0", Index: 4, Up: true})
	op.next(t).pkts <- Packet{Payload: []byte("x")}
	rd.expect(t, "packet")
}

// TestResilientOpenErrors: errors name the interface; configuration errors are reported at
// start even when the interface does not exist yet; an interface deleted between lookup and
// open is waited for.
func TestResilientOpenErrors(t *testing.T) {
	links := newFakeLinks()
	_, err := NewResilientSniffer(SniffConfig{Interface: "spa0", Filter: "udp and vlan"},
		ResilientOptions{Links: links, Log: newLogRecorder().logger()})
	if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), `interface "spa0"`) || !links.closed() {
		t.Fatalf("bad filter: %v (links closed: %v)", err, links.closed())
	}
	_, err = NewResilientSniffer(SniffConfig{Interface: "a-name-of-16-bytes"}, ResilientOptions{Log: newLogRecorder().logger()})
	if err == nil || !strings.Contains(err.Error(), "at most 15 bytes") {
		t.Fatalf("long name: %v", err)
	}

	links = newFakeLinks(LinkEvent{Name: "eth9", Index: 2, Up: true})
	op := newFakeOpener(links)
	op.setErr(fmt.Errorf("socket: %w", unix.EPERM))
	_, err = NewResilientSniffer(SniffConfig{Interface: "eth9"}, ResilientOptions{Links: links, Open: op.open, Log: newLogRecorder().logger()})
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), `interface "eth9"`) || !links.closed() {
		t.Fatalf("open error at start: %v (links closed: %v)", err, links.closed())
	}

	// Deleted between the lookup and the open: waited for.
	links = newFakeLinks(LinkEvent{Name: "eth9", Index: 2, Up: true})
	r, op, log := newTestResilient(t, "eth9", links, false)
	s := op.next(t)
	op.setErr(onInterface("eth9", fmt.Errorf("capture: %w", ErrNoInterface)))
	s.errs <- downErr("eth9")
	errc := make(chan error, 1)
	go func() { _, err := r.Read(); errc <- err }()
	log.expect(t, slog.LevelWarn, "interface eth9 went down; waiting for it to come back")
	for deadline := time.Now().Add(3 * time.Second); op.calls.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) { // the reopen that finds no interface
			t.Fatal("no second open")
		}
	}
	// A failure that is not about the link ends Read.
	op.setErr(fmt.Errorf("socket: %w", unix.EPERM))
	links.set(LinkEvent{Name: "eth9", Index: 2, Up: true})
	select {
	case err := <-errc:
		if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), `interface "eth9"`) {
			t.Fatalf("Read: %v, want EPERM naming eth9", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Read did not return the open error")
	}
}

// TestResilientAny: on "any" a link going down is logged and reading goes on; no watcher is
// needed.
func TestResilientAny(t *testing.T) {
	for _, name := range []string{"", AnyInterface} {
		r, op, log := newTestResilient(t, name, nil, true)
		if r.Interface() != AnyInterface || r.Filter().String() != DefaultFilter {
			t.Fatalf("interface %q filter %v", r.Interface(), r.Filter())
		}
		s := op.next(t)
		type result struct {
			p   Packet
			err error
		}
		res := make(chan result, 1)
		go func() { p, err := r.Read(); res <- result{p, err} }()
		s.errs <- fmt.Errorf("recv: %w", unix.ENETDOWN)
		log.expect(t, slog.LevelWarn, "interface any went down while sniffing every interface; ignored")
		s.pkts <- Packet{Payload: []byte("still here")}
		if got := <-res; got.err != nil || string(got.p.Payload) != "still here" {
			t.Fatalf("Read: %q, %v", got.p.Payload, got.err)
		}
		s.errs <- fmt.Errorf("recv: %w", unix.EINVAL)
		if _, err := r.Read(); !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), `interface "any"`) {
			t.Fatalf("Read: %v", err)
		}
	}
}

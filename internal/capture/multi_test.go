package capture

import (
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitInterfaces(t *testing.T) {
	for in, want := range map[string][]string{
		"":                     nil,
		"eth0":                 {"eth0"},
		"eth0,wg0":             {"eth0", "wg0"},
		"eth0 wg0":             {"eth0", "wg0"},
		" eth0 ,\twg0,, eth0 ": {"eth0", "wg0"},
		"any":                  {"any"},
	} {
		if got := SplitInterfaces(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitInterfaces(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeSub is a subSniffer the test drives.
type fakeSub struct {
	*fakeSource
	reattach uint64
	attached bool
}

func (f *fakeSub) Reattachments() (uint64, bool) { return f.reattach, f.attached }
func (f *fakeSub) Filter() Filter                { return Filter{} }

func newFakeSub(st SourceStats, reattach uint64, attached bool) *fakeSub {
	return &fakeSub{fakeSource: &fakeSource{pkts: make(chan Packet, 16), errs: make(chan error, 1),
		done: make(chan struct{}), stats: st}, reattach: reattach, attached: attached}
}

// TestMultiSnifferMerges: packets of every interface come out of Read; an interface's error is
// returned while the others go on; counters and reattachments add up; Close closes all.
func TestMultiSnifferMerges(t *testing.T) {
	a := newFakeSub(SourceStats{Received: 5, Dropped: 1, Rejected: 2, Fragments: 3, Reassembled: 1}, 2, true)
	b := newFakeSub(SourceStats{Received: 7, Rejected: 1, FragmentsDiscarded: 4}, 1, false)
	m := newMulti([]string{"eth0", "wg0"}, []subSniffer{a, b})
	rd := startReading(t, m)
	a.pkts <- Packet{Payload: []byte("from eth0")}
	b.pkts <- Packet{Payload: []byte("from wg0")}
	got := map[string]bool{}
	for range 2 {
		got[string(rd.expect(t, "packet").Payload)] = true
	}
	if !got["from eth0"] || !got["from wg0"] {
		t.Fatalf("got %v", got)
	}
	if m.Interface() != "eth0,wg0" {
		t.Fatalf("Interface() = %q", m.Interface())
	}
	st, err := m.Stats()
	if err != nil || st != (SourceStats{Received: 12, Dropped: 1, Rejected: 3, Fragments: 3, Reassembled: 1, FragmentsDiscarded: 4}) {
		t.Fatalf("stats %+v %v", st, err)
	}
	if n, attached := m.Reattachments(); n != 3 || attached {
		t.Fatalf("reattachments %d %v, want 3, not all attached", n, attached)
	}
	m.Close()
	if !a.closed() || !b.closed() {
		t.Fatal("Close did not close every interface")
	}
	select {
	case err := <-rd.errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not end Read")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestMultiSnifferError(t *testing.T) {
	a, b := newFakeSub(SourceStats{}, 0, true), newFakeSub(SourceStats{}, 0, true)
	m := newMulti([]string{"eth0", "wg0"}, []subSniffer{a, b})
	defer m.Close()
	down := downErr("wg0")
	b.errs <- down
	if _, err := m.Read(); !errors.Is(err, ErrInterfaceDown) || !strings.Contains(err.Error(), `"wg0"`) {
		t.Fatalf("Read = %v, want wg0's ErrInterfaceDown", err)
	}
	a.pkts <- Packet{Payload: []byte("still here")}
	if p, err := m.Read(); err != nil || string(p.Payload) != "still here" {
		t.Fatalf("Read after one interface failed: %q %v", p.Payload, err)
	}
}

// TestMultiSnifferSingle: one interface is read directly.
func TestMultiSnifferSingle(t *testing.T) {
	a := newFakeSub(SourceStats{}, 0, true)
	m := newMulti([]string{"eth0"}, []subSniffer{a})
	a.pkts <- Packet{Payload: []byte("direct")}
	if p, err := m.Read(); err != nil || string(p.Payload) != "direct" {
		t.Fatalf("%q %v", p.Payload, err)
	}
	m.Close()
	if _, err := m.Read(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestNewMultiSnifferErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg   SniffConfig
		links bool
		msg   string
	}{
		{SniffConfig{Interface: "any,eth0"}, false, `"any" already sniffs every interface`},
		{SniffConfig{Interface: "eth0 wg0"}, true, "serves one interface"},
		{SniffConfig{Interface: "", Promiscuous: true}, false, "promiscuous mode needs a named interface"},
		{SniffConfig{Interface: "eth0,wg0", Filter: "udp and vlan"}, false, "link-layer"},
	} {
		opts := ResilientOptions{Log: newLogRecorder().logger()}
		var links *fakeLinks
		if tc.links {
			links = newFakeLinks()
			opts.Links = links
		}
		_, err := NewMultiSniffer(tc.cfg, opts)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("NewMultiSniffer(%+v): %v, want %q", tc.cfg, err, tc.msg)
		}
		if links != nil && !links.closed() {
			t.Errorf("%+v: links not closed", tc.cfg)
		}
	}
}

func TestResilientSnifferRefusesList(t *testing.T) {
	links := newFakeLinks()
	_, err := NewResilientSniffer(SniffConfig{Interface: "eth0,wg0"}, ResilientOptions{Links: links, Log: newLogRecorder().logger()})
	if err == nil || !strings.Contains(err.Error(), "NewMultiSniffer") || !links.closed() {
		t.Fatalf("NewResilientSniffer with two interfaces: %v", err)
	}
}

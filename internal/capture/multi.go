package capture

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
)

// SplitInterfaces splits a PCAP_INTF value into interface names. Names are separated by
// commas, white space or both ("eth0,wg0", "eth0 wg0", "eth0, wg0"); empty entries are
// dropped and repeated names kept once, in first-seen order. An empty value gives nil.
func SplitInterfaces(s string) []string {
	var names []string
	for _, n := range strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		dup := false
		for _, m := range names {
			dup = dup || m == n
		}
		if !dup {
			names = append(names, n)
		}
	}
	return names
}

// subSniffer is what MultiSniffer merges: a ResilientSniffer (or a test's fake).
type subSniffer interface {
	Source
	Screener
	Backlog
	Statser
	Reattachments() (n uint64, attached bool)
	Filter() Filter
}

var _ subSniffer = (*ResilientSniffer)(nil)

// MultiSniffer is a Source that sniffs several interfaces (PCAP_INTF "eth0,wg0", fwknop issue
// #312) with one ResilientSniffer each: each follows its own interface (waits for it, reattaches
// after it comes back) independently of the others, and their packets come out of one Read in
// arrival order per interface. With one name it is that interface's ResilientSniffer, with no
// goroutine in between. A packet seen on two of the interfaces (bridged, or forwarded from one
// to the other) is returned twice.
//
// Read must be called from one goroutine at a time; Close, Stats and Reattachments may be
// called from any goroutine. Every error names its interface.
type MultiSniffer struct {
	names []string
	subs  []subSniffer

	start     sync.Once
	ch        chan multiResult
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type multiResult struct {
	p   Packet
	err error
}

var (
	_ Source  = (*MultiSniffer)(nil)
	_ Statser = (*MultiSniffer)(nil)
)

// NewMultiSniffer opens one ResilientSniffer per interface cfg.Interface names (see
// SplitInterfaces; "" or "any" alone sniffs every interface), each with cfg and opts but its
// own interface. "any" cannot be listed with other names (it already covers them), and
// opts.Links, which serves one interface, only with a single name. If one cannot be opened,
// those already open are closed and the error, naming the interface, is returned. It must
// run in the network namespace to sniff in, like NewResilientSniffer.
func NewMultiSniffer(cfg SniffConfig, opts ResilientOptions) (*MultiSniffer, error) {
	names := SplitInterfaces(cfg.Interface)
	if len(names) == 0 {
		names = []string{AnyInterface}
	}
	fail := func(err error) (*MultiSniffer, error) {
		if opts.Links != nil {
			opts.Links.Close()
		}
		return nil, err
	}
	if len(names) > 1 {
		for _, n := range names {
			if n == AnyInterface {
				return fail(fmt.Errorf("capture: PCAP_INTF %q: %q already sniffs every interface; list it alone", cfg.Interface, AnyInterface))
			}
		}
		if opts.Links != nil {
			return fail(fmt.Errorf("capture: PCAP_INTF %q: ResilientOptions.Links serves one interface, not %d", cfg.Interface, len(names)))
		}
	}
	subs := make([]subSniffer, 0, len(names))
	for _, n := range names {
		c := cfg
		c.Interface = n
		r, err := NewResilientSniffer(c, opts)
		if err != nil {
			for _, s := range subs {
				s.Close()
			}
			return nil, err
		}
		subs = append(subs, r)
	}
	return newMulti(names, subs), nil
}

func newMulti(names []string, subs []subSniffer) *MultiSniffer {
	return &MultiSniffer{names: names, subs: subs, ch: make(chan multiResult, 16), done: make(chan struct{})}
}

// Interfaces returns the sniffed interfaces' names.
func (m *MultiSniffer) Interfaces() []string { return append([]string(nil), m.names...) }

// Interface returns the sniffed interfaces' names joined by commas (as PCAP_INTF lists them).
func (m *MultiSniffer) Interface() string { return strings.Join(m.names, ",") }

// Filter returns the compiled filter in use (the same on every interface).
func (m *MultiSniffer) Filter() Filter { return m.subs[0].Filter() }

// Read blocks until a packet passes the filter on any of the interfaces. After Close the error
// wraps net.ErrClosed. An error of one interface (with ExitOnDown, its going down; or a socket
// error) is returned as it comes, naming the interface, while the others keep sniffing; the
// caller decides whether to Close.
func (m *MultiSniffer) Read() (Packet, error) {
	if len(m.subs) == 1 {
		return m.subs[0].Read()
	}
	select {
	case <-m.done:
		return Packet{}, m.closedError()
	default:
	}
	m.start.Do(func() {
		for _, s := range m.subs {
			m.wg.Add(1)
			go m.pump(s)
		}
	})
	select {
	case r := <-m.ch:
		return r.p, r.err
	case <-m.done:
		return Packet{}, m.closedError()
	}
}

// Waiting implements Backlog. With several interfaces it sees only the packets their readers
// have already passed on, not those a reader is holding or the kernel has queued.
func (m *MultiSniffer) Waiting() bool {
	if len(m.subs) == 1 {
		return m.subs[0].Waiting()
	}
	return len(m.ch) > 0
}

// Screen implements Screener: every interface's sniffer gets f (each calls it from its own
// goroutine when there are several).
func (m *MultiSniffer) Screen(f func(Packet) bool) {
	for _, s := range m.subs {
		s.Screen(f)
	}
}

func (m *MultiSniffer) closedError() error {
	return fmt.Errorf("capture: interfaces %q: sniff: %w", m.Interface(), net.ErrClosed)
}

// pump reads s into m.ch until s fails or m closes.
func (m *MultiSniffer) pump(s subSniffer) {
	defer m.wg.Done()
	for {
		p, err := s.Read()
		select {
		case m.ch <- multiResult{p, err}:
		case <-m.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Stats returns the counters summed over the interfaces, with the errors of those whose
// counters could not be read.
func (m *MultiSniffer) Stats() (SourceStats, error) {
	var st SourceStats
	var errs []error
	for _, s := range m.subs {
		cs, err := s.Stats()
		st.add(cs)
		errs = append(errs, err)
	}
	return st, errors.Join(errs...)
}

// Reattachments returns how many times the interfaces were lost and sniffed on again, summed,
// and whether every one has a socket open now.
func (m *MultiSniffer) Reattachments() (n uint64, attached bool) {
	attached = true
	for _, s := range m.subs {
		k, a := s.Reattachments()
		n += k
		attached = attached && a
	}
	return n, attached
}

// Close closes every interface's sniffer and unblocks Read. Closing twice is not an error.
func (m *MultiSniffer) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		var errs []error
		for _, s := range m.subs {
			errs = append(errs, s.Close())
		}
		m.wg.Wait()
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ResilientOptions configures a ResilientSniffer.
type ResilientOptions struct {
	// Log gets the lines about the interface coming and going; nil means slog.Default().
	Log *slog.Logger
	// ExitOnDown (fwknopd's EXIT_AT_INTF_DOWN) makes Read return an error wrapping
	// ErrInterfaceDown when the interface goes down or is deleted, instead of waiting for it.
	// It does not apply to an interface that does not exist yet at start: that is waited for.
	ExitOnDown bool
	// Links reports link changes; nil means NewLinkWatcher in the current network namespace.
	// The sniffer closes it (also when NewResilientSniffer fails, and at once for "any").
	Links LinkWatcher
	// Open opens one capture socket; nil means NewSniffer. It runs in the network namespace
	// NewResilientSniffer was called in, on a locked thread.
	Open func(SniffConfig) (Source, error)
}

// ResilientSniffer is a Source that sniffs a named interface across its going down, being
// deleted and re-created (with a new index), and not existing yet at start. While the
// interface is away, Read blocks; it wakes on the interface's link events (no polling) and
// opens a new socket once the interface exists and is administratively up (LinkEvent.Up).
// Packets that arrive while no socket is open are not seen.
//
// With "any" (or "") there is nothing to reattach: one socket sees every interface of the
// namespace, including ones created later, and a link going down is logged, not returned.
//
// Read must be called from one goroutine at a time; Close, Stats and Reattachments may be
// called from any goroutine, and Close unblocks Read at any moment. Every error names the
// interface.
type ResilientSniffer struct {
	cfg        SniffConfig
	name       string
	filter     Filter
	log        *slog.Logger
	exitOnDown bool
	links      LinkWatcher // nil for "any"
	open       func(SniffConfig) (Source, error)
	ns         *netNS
	pollEvery  time.Duration // link checks if the link watcher fails

	kick      chan struct{} // the link may have changed: look again
	done      chan struct{} // closed by Close
	watchDone chan struct{} // closed when the watch goroutine returns
	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	cur      Source // nil while waiting for the interface
	closed   bool
	attached bool        // a socket was open at some point
	base     SourceStats // counters of the sockets already closed
	reattach uint64
	screen   func(Packet) bool // given to every socket opened (Screener)
}

var _ Source = (*ResilientSniffer)(nil)

// linkState is what tryAttach found.
type linkState int

const (
	linkAttached linkState = iota
	linkMissing
	linkDown
)

// NewResilientSniffer checks cfg, subscribes to link events and opens the socket if the
// interface is there and up. If it does not exist yet it logs a warning and returns a sniffer
// whose Read waits for it; if it exists but is down, likewise. It must run in the network
// namespace to sniff in (reattaching later returns there from any goroutine; that needs
// CAP_SYS_ADMIN only if the calling thread was switched into that namespace alone, as in
// tests). Errors name the interface: an invalid configuration, failing rtnetlink, or a socket
// that cannot be opened on an interface that is there.
//
// Lines logged (attribute "interface" on each):
//
//	WARN interface NAME does not exist yet; waiting for it (PCAP_INTF)
//	WARN interface NAME is down; waiting for it to come up (PCAP_INTF)
//	INFO attached to interface NAME                  (first socket, after waiting at start; "index")
//	WARN interface NAME went down; waiting for it to come back    ("err")
//	INFO reattached to interface NAME                ("index", "reattachments")
//	ERROR link events for interface NAME failed; checking it every 1s instead ("err")
//	WARN interface NAME went down while sniffing every interface; ignored (for "any"; "err")
func NewResilientSniffer(cfg SniffConfig, opts ResilientOptions) (*ResilientSniffer, error) {
	name := ifaceName(cfg)
	fail := func(err error) (*ResilientSniffer, error) {
		if opts.Links != nil {
			opts.Links.Close()
		}
		return nil, onInterface(name, err)
	}
	f, _, err := cfg.check()
	if err != nil {
		return fail(err)
	}
	if len(SplitInterfaces(name)) > 1 {
		return fail(fmt.Errorf("capture: %q lists several interfaces: NewMultiSniffer sniffs them", name))
	}
	if len(name) >= unix.IFNAMSIZ {
		return fail(fmt.Errorf("capture: interface names have at most %d bytes", unix.IFNAMSIZ-1))
	}
	r := &ResilientSniffer{
		cfg: cfg, name: name, filter: f, log: opts.Log, exitOnDown: opts.ExitOnDown, open: opts.Open,
		pollEvery: time.Second,
		kick:      make(chan struct{}, 1), done: make(chan struct{}), watchDone: make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.open == nil {
		r.open = func(cfg SniffConfig) (Source, error) {
			s, err := NewSniffer(cfg)
			if err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	if r.ns, err = currentNetNS(); err != nil {
		return fail(err)
	}
	if name == AnyInterface {
		if opts.Links != nil {
			opts.Links.Close()
		}
		close(r.watchDone)
		if r.cur, err = r.openSource(); err != nil {
			r.ns.close()
			return nil, onInterface(name, err)
		}
		r.attached = true
		return r, nil
	}
	r.links = opts.Links
	if r.links == nil {
		w, err := NewLinkWatcher()
		if err != nil {
			r.ns.close()
			return nil, onInterface(name, err)
		}
		r.links = w
	}
	go r.watch()
	st, err := r.tryAttach(true)
	if err != nil {
		r.Close()
		return nil, err
	}
	switch st {
	case linkMissing:
		r.log.Warn(fmt.Sprintf("interface %s does not exist yet; waiting for it (PCAP_INTF)", name), "interface", name)
	case linkDown:
		r.log.Warn(fmt.Sprintf("interface %s is down; waiting for it to come up (PCAP_INTF)", name), "interface", name)
	}
	return r, nil
}

// Filter returns the compiled filter in use.
func (r *ResilientSniffer) Filter() Filter { return r.filter }

// Interface returns the sniffed interface's name ("any" for every interface).
func (r *ResilientSniffer) Interface() string { return r.name }

// Read blocks until a packet passes the filter, waiting across the interface's absences.
// After Close the error wraps net.ErrClosed. With ExitOnDown, an interface going down ends
// Read with an error wrapping ErrInterfaceDown (call Close then). Other errors come from the
// socket, or from opening a new one on an interface that is back (for example EPERM).
func (r *ResilientSniffer) Read() (Packet, error) {
	for {
		src, err := r.source()
		if err != nil {
			return Packet{}, err
		}
		p, err := src.Read()
		switch {
		case err == nil:
			return p, nil
		case r.isClosed():
			return Packet{}, r.closedError()
		case !isLinkDown(err):
			return Packet{}, onInterface(r.name, err)
		case r.links == nil:
			// Sockets on "any" are not told about single links; be safe if one ever is.
			r.log.Warn(fmt.Sprintf("interface %s went down while sniffing every interface; ignored", r.name),
				"interface", r.name, "err", err)
		case r.exitOnDown:
			return Packet{}, downError(r.name, err)
		default:
			r.detach(src)
			r.log.Warn(fmt.Sprintf("interface %s went down; waiting for it to come back", r.name),
				"interface", r.name, "err", err)
		}
	}
}

// source returns the open socket, waiting for the interface if there is none.
func (r *ResilientSniffer) source() (Source, error) {
	for {
		r.mu.Lock()
		closed, cur := r.closed, r.cur
		r.mu.Unlock()
		if closed {
			return nil, r.closedError()
		}
		if cur != nil {
			return cur, nil
		}
		st, err := r.tryAttach(false)
		if r.isClosed() {
			return nil, r.closedError()
		}
		if err != nil {
			return nil, err
		}
		if st == linkAttached {
			continue
		}
		select {
		case <-r.kick:
		case <-r.done:
		}
	}
}

// tryAttach opens a socket if the interface exists and is up. A link event after its query
// kicks r.kick, so a caller that then waits for a kick misses no change.
func (r *ResilientSniffer) tryAttach(start bool) (linkState, error) {
	ev, ok, err := r.links.Link(r.name)
	switch {
	case err != nil:
		return 0, onInterface(r.name, err)
	case !ok:
		return linkMissing, nil
	case !ev.Up:
		return linkDown, nil
	}
	src, err := r.openSource()
	switch {
	case errors.Is(err, ErrNoInterface) || errors.Is(err, unix.ENODEV):
		return linkMissing, nil // deleted since the query
	case err != nil && isLinkDown(err):
		return linkDown, nil
	case err != nil:
		return 0, onInterface(r.name, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		src.Close()
		return 0, r.closedError()
	}
	r.cur = src
	again := r.attached
	r.attached = true
	if again {
		r.reattach++
	}
	n := r.reattach
	r.mu.Unlock()
	switch {
	case again:
		r.log.Info(fmt.Sprintf("reattached to interface %s", r.name), "interface", r.name, "index", ev.Index,
			"reattachments", n)
	case !start:
		r.log.Info(fmt.Sprintf("attached to interface %s", r.name), "interface", r.name, "index", ev.Index)
	}
	return linkAttached, nil
}

// openSource runs r.open in the sniffer's network namespace and gives the socket the screen.
func (r *ResilientSniffer) openSource() (Source, error) {
	var src Source
	err := r.ns.do(func() (err error) {
		src, err = r.open(r.cfg)
		return err
	})
	if err != nil {
		if src != nil {
			src.Close()
		}
		return nil, err
	}
	r.mu.Lock()
	screenSource(src, r.screen)
	r.mu.Unlock()
	return src, nil
}

// Waiting implements Backlog for the open socket; without one nothing is waiting.
func (r *ResilientSniffer) Waiting() bool {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil {
		return false
	}
	if b, ok := cur.(Backlog); ok {
		return b.Waiting()
	}
	return true
}

// Screen implements Screener: the open socket and every one opened later get f.
func (r *ResilientSniffer) Screen(f func(Packet) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.screen = f
	if r.cur != nil {
		screenSource(r.cur, f)
	}
}

// screenSource gives src the screen f if src is a Screener and f is set.
func screenSource(src Source, f func(Packet) bool) {
	if sc, ok := src.(Screener); ok && f != nil {
		sc.Screen(f)
	}
}

// detach closes src, which lost its interface, keeping its counters.
func (r *ResilientSniffer) detach(src Source) {
	r.mu.Lock()
	if r.cur == src {
		r.keepStats(src)
		r.cur = nil
	}
	r.mu.Unlock()
	src.Close()
}

// keepStats adds src's counters to r.base; r.mu must be held. A socket whose counters cannot
// be read any more loses them.
func (r *ResilientSniffer) keepStats(src Source) {
	if s, ok := src.(Statser); ok {
		if st, err := s.Stats(); err == nil {
			r.base.add(st)
		}
	}
}

// Stats returns the counters summed over every socket opened so far (sources without Stats
// count 0). If the open socket's counters cannot be read, it returns those of the closed ones
// with the error.
func (r *ResilientSniffer) Stats() (SourceStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.base
	if s, ok := r.cur.(Statser); ok && !r.closed {
		cs, err := s.Stats()
		if err != nil {
			return st, onInterface(r.name, err)
		}
		st.add(cs)
	}
	return st, nil
}

// Reattachments returns how many times the interface was lost and sniffed on again, and
// whether a socket is open on it now.
func (r *ResilientSniffer) Reattachments() (n uint64, attached bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reattach, r.cur != nil && !r.closed
}

// watch turns link events about the interface into kicks until Close. If the watcher fails,
// it falls back to a kick every pollEvery.
func (r *ResilientSniffer) watch() {
	defer close(r.watchDone)
	for {
		ev, err := r.links.Next()
		switch {
		case r.isClosed():
			return
		case err == nil:
			if ev.Name == r.name {
				r.poke()
			}
		case errors.Is(err, ErrLinkEventsLost):
			r.poke()
		default:
			r.log.Error(fmt.Sprintf("link events for interface %s failed; checking it every %v instead", r.name, r.pollEvery),
				"interface", r.name, "err", err)
			t := time.NewTicker(r.pollEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					r.poke()
				case <-r.done:
					return
				}
			}
		}
	}
}

func (r *ResilientSniffer) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *ResilientSniffer) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *ResilientSniffer) closedError() error {
	return &interfaceError{name: r.name, err: fmt.Errorf("sniff: %w", net.ErrClosed)}
}

// Close closes the socket and the link watcher, and unblocks Read. Closing twice is not an
// error.
func (r *ResilientSniffer) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		cur := r.cur
		if cur != nil {
			r.keepStats(cur)
			r.cur = nil
		}
		r.mu.Unlock()
		close(r.done)
		var errs []error
		if cur != nil {
			errs = append(errs, cur.Close())
		}
		if r.links != nil {
			errs = append(errs, r.links.Close())
		}
		<-r.watchDone
		errs = append(errs, r.ns.close())
		r.closeErr = onInterface(r.name, errors.Join(errs...))
	})
	return r.closeErr
}

// isLinkDown reports whether a capture error means the interface went down or away.
func isLinkDown(err error) bool {
	return errors.Is(err, ErrInterfaceDown) || errors.Is(err, unix.ENETDOWN) ||
		errors.Is(err, unix.ENXIO) || errors.Is(err, unix.ENODEV)
}

// downError is Read's error for ExitOnDown: it wraps ErrInterfaceDown and names the interface.
func downError(name string, err error) error {
	if !errors.Is(err, ErrInterfaceDown) {
		err = fmt.Errorf("%w: %w", ErrInterfaceDown, err)
	}
	return onInterface(name, err)
}

// Package ledger is the server's own record of the grants it has made, so it can restore them
// after a ruleset flush or a restart, list them, and hand them to other machines. The kernel
// holds the grants themselves (nftables set elements with timeouts); the ledger holds what
// those elements should be.
//
// # Merge rule
//
// One grant per Key: (source address, protocol, port), plus kind and target for NAT grants. A
// new grant for a key that has a live one
// keeps the later expiry, as fwknopd does: a shorter knock never cuts a longer grant. The
// stanza goes with the expiry that wins (the new one on a tie).
//
// # File format
//
// A text file, mode 0600, appended to one line per change:
//
//	# sesame grant ledger v1
//	+ <expires> <src> <proto> <port> <stanza>
//	+ <expires> <src> <proto> <port> <stanza> <kind> <nat> <snat> <opts>
//	+ <expires> <src> <proto> <port> <stanza> to <dst>
//	- <src> <proto> <port>
//	- <src> <proto> <port> <kind> <nat>
//	- <src> <proto> <port> to <dst>
//	*
//
// The longer forms are NAT grants: kind "forward" or "local-nat"; nat the target as
// netip.AddrPort text ("10.0.0.5:22", "[fd00::5]:22") or "-" for a forward of everything
// (FORWARD_ALL); snat an address, "masq" or "-"; opts "nodnat" (DisableDNAT) or "-". Lines of
// the short forms, all a file before NAT grants had, are access grants; the "to" forms are
// access grants to one destination address (Key.Dst, of the source's family), and lines
// without it have no destination (any), as every file before them.
// The first line is exactly the header; a file with any other first line is refused, never
// rewritten. "+" sets the entry for a key (expires in Unix milliseconds; src in netip text
// form, IPv4-mapped addresses unmapped; proto, port and stanza in decimal), "-" removes it,
// "*" removes all. Fields are separated by one space. Open replays the lines in order, skips
// (and counts) a line that does not parse, ignores empty lines, "#" comments and a last line
// without its newline (a write cut short), and drops what has expired. It then rewrites the
// file with the live entries only, sorted by expiry; the same rewrite happens when dead lines
// outnumber live entries more than twice over (and there are more than 1000).
//
// # Durability
//
// Each Record, Remove or Clear is one write(2) before it returns, so it survives the process
// being killed; it is not fsynced (a grant lost by a power cut is lost from the kernel too).
// Sync fsyncs; the caller calls it periodically. Rewrites are atomic (safefile.WriteAtomic) and
// every open goes through package safefile, so no planted link redirects the file.
package ledger

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// Key identifies a grant: for an access grant (Kind 0) its source, protocol and port; a NAT
// grant (firewall.Forward, firewall.LocalNAT) adds its kind and target, as firewall.Grant.Ident.
type Key struct {
	Src   netip.Addr // stored unmapped and without zone
	Proto uint8      // IP protocol number (6 tcp, 17 udp)
	Port  uint16
	Dst   netip.Addr // access only: the destination address (firewall.Grant.Dst); zero: any. Stored unmapped, no zone

	Kind       Kind       // 0 access, 1 forward, 2 local NAT (firewall.Kind's values)
	NATAddr    netip.Addr // stored unmapped and without zone
	NATPort    uint16
	ForwardAll bool // Kind forward without a target (FORWARD_ALL)
}

// Kind is a grant's kind, numbered as firewall.Kind.
type Kind uint8

// Kinds.
const (
	Access Kind = iota
	Forward
	LocalNAT
)

var kindNames = [...]string{"access", "forward", "local-nat"}

// norm normalises k: addresses unmapped without zone; no NAT fields on an access key and no
// Dst on a NAT key; a
// forward key without a NAT address, or with ForwardAll, is ForwardAll with no target.
func (k Key) norm() Key {
	k.Src = k.Src.Unmap().WithZone("")
	k.NATAddr = k.NATAddr.Unmap().WithZone("")
	k.Dst = k.Dst.Unmap().WithZone("")
	if k.Kind != Access {
		k.Dst = netip.Addr{}
	}
	switch {
	case k.Kind == Access:
		k.NATAddr, k.NATPort, k.ForwardAll = netip.Addr{}, 0, false
	case k.Kind == Forward && (k.ForwardAll || !k.NATAddr.IsValid()):
		k.NATAddr, k.NATPort, k.ForwardAll = netip.Addr{}, 0, true
	case k.Kind == LocalNAT:
		k.ForwardAll = false
	}
	return k
}

// storable reports whether a normalised key can be recorded (and written and read back).
func (k Key) storable() bool {
	return k.Src.IsValid() && int(k.Kind) < len(kindNames) && (k.Kind != LocalNAT || k.NATAddr.IsValid()) &&
		(!k.Dst.IsValid() || k.Dst.Is4() == k.Src.Is4())
}

// Entry is a grant and when it ends.
type Entry struct {
	Key
	Expires time.Time // absolute wall-clock time, kept to the millisecond (rounded up)
	Stanza  int       // the access.conf stanza that granted it

	// A forward grant's source rewriting (firewall.Grant's fields of the same names); they go
	// with the expiry that wins, like Stanza. Masquerade wins over SNAT.
	SNAT        netip.Addr
	Masquerade  bool
	DisableDNAT bool
}

// ErrClosed is returned by Sync after Close.
var ErrClosed = errors.New("ledger: closed")

const (
	compactMinDead = 1000 // dead lines the file may hold whatever the live count
	compactFactor  = 2    // ... and dead lines per live entry
	perm           = 0o600
)

// Ledger is the set of live grants, optionally persisted in a file. It is safe for concurrent
// use.
type Ledger struct {
	now  func() time.Time
	path string

	mu        sync.Mutex
	m         map[Key]rec
	f         *os.File // nil: memory only, or closed
	buf       []byte
	lines     int   // record lines in the file after the header
	sweepAt   int   // sweep expired entries when len(m) reaches this
	noCompact int   // after a failed rewrite, do not retry before lines reaches this
	werr      error // first write error since the last Sync
	closed    bool
	stats     LoadStats
}

// Open loads the ledger at path, rewrites it with the live entries (creating it if missing)
// and keeps it open for appending. path "" keeps the ledger in memory only. now is the clock
// (nil: time.Now). Errors: a file that is not a v1 ledger (left untouched), a path refused by
// package safefile (its directory must exist and be safe), or the failed I/O.
func Open(path string, now func() time.Time) (*Ledger, error) {
	if now == nil {
		now = time.Now
	}
	l := &Ledger{now: now, path: path, m: map[Key]rec{}}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		m, st, err := parse(data, now().UnixMilli())
		if err != nil {
			return nil, fmt.Errorf("ledger: %s: %w; move it away to start a new ledger", path, err)
		}
		l.m, l.stats = m, st
		if err := l.rewriteLocked(); err != nil {
			return nil, err
		}
	}
	l.sweepAt = 2*len(l.m) + 1024
	return l, nil
}

func readFile(path string) ([]byte, error) {
	f, err := safefile.OpenRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Stats returns what Open found in the file.
func (l *Ledger) Stats() LoadStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Record merges es into the ledger and returns the effective entries, the ones the kernel
// must hold, in the order of es: for each, the live entry with the later expiry of the one
// recorded and the one given (the given one on a tie), Src normalised as in Key. An entry that
// has already expired, or whose Src is invalid, is returned (merged) but not stored.
func (l *Ledger) Record(es []Entry) []Entry {
	out := make([]Entry, len(es))
	nowMs := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	n := 0
	for i, e := range es {
		k := e.Key.norm()
		r := recOf(k, e)
		if old, ok := l.m[k]; ok && old.exp > nowMs && (old.exp > r.exp || old == r) {
			out[i] = old.entry(k)
			continue
		}
		out[i] = r.entry(k)
		if r.exp <= nowMs || !k.storable() {
			continue
		}
		l.m[k] = r
		b = appendAdd(b, k, r)
		n++
	}
	l.buf = b
	l.appendLocked(b, n)
	return out
}

// Remove deletes the entries for keys (normalised as in Key); absent keys are ignored.
func (l *Ledger) Remove(keys ...Key) {
	nowMs := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	n := 0
	for _, k := range keys {
		k = k.norm()
		r, ok := l.m[k]
		if !ok {
			continue
		}
		delete(l.m, k)
		if r.exp > nowMs { // an expired entry needs no line: Open drops it anyway
			b = appendRemove(b, k)
			n++
		}
	}
	l.buf = b
	l.appendLocked(b, n)
}

// Clear deletes every entry.
func (l *Ledger) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) == 0 {
		return
	}
	clear(l.m)
	l.appendLocked([]byte("*\n"), 1)
}

// Live returns the entries that have not expired, by expiry then key. It drops expired ones.
// Unsorted is Live without the sort: the live entries in no particular order, for callers
// that restore them all (sorting 100,000 entries costs tens of milliseconds).
func (l *Ledger) Unsorted() []Entry {
	nowMs := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(nowMs)
	out := make([]Entry, 0, len(l.m))
	for k, r := range l.m {
		out = append(out, r.entry(k))
	}
	return out
}

func (l *Ledger) Live() []Entry {
	nowMs := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(nowMs)
	es := sorted(l.m)
	out := make([]Entry, len(es))
	for i, e := range es {
		out[i] = e.r.entry(e.k)
	}
	return out
}

// Len returns the number of live entries (O(n): it drops expired ones first).
func (l *Ledger) Len() int {
	nowMs := l.now().UnixMilli()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(nowMs)
	return len(l.m)
}

// Sync makes the file durable (fsync). It returns the first write error since the previous
// Sync, after rewriting the file from memory to repair what the failed write left, joined
// with any error of the repair or the fsync; ErrClosed after Close; nil for a memory ledger.
func (l *Ledger) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	return l.syncLocked()
}

func (l *Ledger) syncLocked() error {
	if l.f == nil {
		return nil
	}
	werr := l.werr
	l.werr = nil
	if werr != nil {
		if err := l.rewriteLocked(); err != nil {
			return errors.Join(werr, err)
		}
		return werr // the rewrite fsynced
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("ledger: fsync %s: %w", l.path, err)
	}
	return nil
}

// Close fsyncs and closes the file and returns the first error (as Sync does). The ledger
// still answers from memory afterwards but writes nothing. Closing twice returns nil.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	err := l.syncLocked()
	l.closed = true
	if l.f != nil {
		if errClose := l.f.Close(); errClose != nil {
			err = errors.Join(err, fmt.Errorf("ledger: close %s: %w", l.path, errClose))
		}
		l.f = nil
	}
	return err
}

// appendLocked writes b (n record lines) to the file and rewrites the file when dead lines
// pile up. A write error is kept for Sync. It also sweeps expired entries now and then.
func (l *Ledger) appendLocked(b []byte, n int) {
	if len(l.m) >= l.sweepAt { // amortised O(1): bounds memory when nobody calls Live
		l.sweepLocked(l.now().UnixMilli())
	}
	if n == 0 || l.f == nil {
		return
	}
	if _, err := l.f.Write(b); err != nil && l.werr == nil {
		l.werr = fmt.Errorf("ledger: append to %s: %w", l.path, err)
	}
	l.lines += n
	if l.deadLocked() && l.lines >= l.noCompact {
		l.sweepLocked(l.now().UnixMilli())
		if l.deadLocked() {
			if err := l.rewriteLocked(); err != nil {
				if l.werr == nil {
					l.werr = err
				}
				l.noCompact = 2 * l.lines
			}
		}
	}
}

func (l *Ledger) deadLocked() bool {
	dead := l.lines - len(l.m)
	return dead > compactMinDead && dead > compactFactor*len(l.m)
}

// sweepLocked drops expired entries from memory.
func (l *Ledger) sweepLocked(nowMs int64) {
	for k, r := range l.m {
		if r.exp <= nowMs {
			delete(l.m, k)
		}
	}
	l.sweepAt = 2*len(l.m) + 1024
}

// rewriteLocked replaces the file with the live entries and reopens it for appending. On
// error the old file stays open and valid.
func (l *Ledger) rewriteLocked() error {
	l.sweepLocked(l.now().UnixMilli())
	if err := safefile.WriteAtomic(l.path, snapshot(l.m), perm); err != nil {
		return fmt.Errorf("ledger: rewrite: %w", err)
	}
	f, err := safefile.OpenAppend(l.path, perm)
	if err != nil {
		return fmt.Errorf("ledger: reopen: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	l.lines = len(l.m)
	l.noCompact = 0
	return nil
}

type kr struct {
	k Key
	r rec
}

// sorted returns m's entries by expiry, then source, protocol and port.
func sorted(m map[Key]rec) []kr {
	es := make([]kr, 0, len(m))
	for k, r := range m {
		es = append(es, kr{k, r})
	}
	slices.SortFunc(es, func(a, b kr) int {
		return cmp.Or(cmp.Compare(a.r.exp, b.r.exp), a.k.Src.Compare(b.k.Src),
			cmp.Compare(a.k.Proto, b.k.Proto), cmp.Compare(a.k.Port, b.k.Port), cmp.Compare(a.k.Kind, b.k.Kind),
			a.k.NATAddr.Compare(b.k.NATAddr), cmp.Compare(a.k.NATPort, b.k.NATPort), a.k.Dst.Compare(b.k.Dst))
	})
	return es
}

// ceilMilli returns t in Unix milliseconds, rounded up.
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

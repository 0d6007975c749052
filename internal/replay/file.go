package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// SyncPolicy says when File calls fsync.
type SyncPolicy int

const (
	// SyncOnClose (the default) writes each fresh digest with one write(2) before
	// CheckAndAdd returns, so an entry survives the process being killed (even kill -9) but
	// not a power cut; the file is fsynced on compaction and Close. Debian keeps DIGEST_FILE
	// on tmpfs (/run) anyway.
	SyncOnClose SyncPolicy = iota
	// SyncEveryAdd also fsyncs after every fresh digest (survives power loss; costs a disk
	// flush per accepted packet).
	SyncEveryAdd
)

// FileOptions configure OpenFile. The zero value is usable.
type FileOptions struct {
	// Now is the clock for expiry (nil: time.Now).
	Now func() time.Time
	// LegacyKeep is how long to keep entries read from fwknopd's 7-field lines, counted from
	// their time field (0: forever, as fwknopd does).
	LegacyKeep time.Duration
	// Sync is the fsync policy.
	Sync SyncPolicy
	// CompactMin is the number of dead lines (expired, duplicate, corrupt) the file may hold
	// before it is rewritten, whatever the live count (0: 4096). The file is also rewritten
	// only once dead lines outnumber live entries, so compaction costs amortise to O(1).
	CompactMin int
}

// LoadStats describe what OpenFile found in the file.
type LoadStats struct {
	Lines   int // non-comment, non-empty lines
	Loaded  int // entries live after loading
	Legacy  int // lines in fwknopd's 7-field format
	Expired int // well-formed lines already expired
	Skipped int // corrupt lines skipped
}

// File is a replay cache persisted in a DIGEST_FILE. It keeps every entry in a Memory cache and
// appends one line per fresh digest:
//
//	<digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time> <expires>
//
// The first seven fields are fwknopd 2.6's digest.cache format, and fwknopd ignores the eighth,
// so each program can read the other's file (`fwknopd --exit-parse-digest-cache` counts
// sesame's lines). The packet fields come from the context given to CheckAndAdd (WithPacket):
// IPv4 addresses as they are, IPv6 ones as 0.0.0.0 (fwknopd drops a line with an IPv6
// address), zeros when the context carries none. expires is Unix seconds, 0 for never; a line without it (written by
// fwknopd) expires LegacyKeep after its time field. Corrupt lines are skipped and counted. The
// file is rewritten (to a temporary file, fsynced, renamed) when dead lines pile up. Every open
// goes through package safefile: the directory must be safe, and a link or a hard link at path
// is refused rather than written through.
type File struct {
	mem  *Memory
	path string
	opts FileOptions

	mu        sync.Mutex // guards everything below
	f         *os.File   // O_APPEND
	buf       []byte
	fileLines int // entry lines in the file
	stats     LoadStats
	closed    bool
}

var _ Cache = (*File)(nil)

const fileHeader = "# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time> <expires>\n"

// OpenFile loads path (creating it, mode 0600, if missing) and returns a cache that appends to
// it. It refuses (an error wrapping safefile.ErrUnsafe) a directory others can change, and a
// symbolic link, hard link or non-regular file at path.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CompactMin <= 0 {
		opts.CompactMin = 4096
	}
	c := &File{mem: NewMemory(opts.Now), path: path, opts: opts}
	data, release, err := readMapped(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("replay: read digest file: %w", err)
	}
	c.stats = load(c.mem, data, opts.Now(), opts.LegacyKeep)
	c.fileLines = c.stats.Lines
	torn := len(data) > 0 && data[len(data)-1] != '\n'
	empty := len(data) == 0
	release()
	if c.dead() > opts.CompactMin && c.dead() > c.mem.t.len() || empty {
		if err := c.compactLocked(); err != nil {
			return nil, err
		}
		return c, nil
	}
	f, err := safefile.OpenAppend(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("replay: open digest file: %w", err)
	}
	c.f = f
	if torn { // a torn last line: end it so appends start clean
		if _, err := f.Write([]byte{'\n'}); err != nil {
			f.Close()
			return nil, fmt.Errorf("replay: repair digest file: %w", err)
		}
	}
	return c, nil
}

// Stats returns what OpenFile found in the file.
func (c *File) Stats() LoadStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Seen implements Cache. It never touches the disk.
func (c *File) Seen(ctx context.Context, digest string) (bool, error) { return c.mem.Seen(ctx, digest) }

// Len implements Cache.
func (c *File) Len() int { return c.mem.Len() }

// CheckAndAdd implements Cache. A fresh digest is appended to the file with one write(2)
// (and an fsync with SyncEveryAdd) before CheckAndAdd returns; ctx is checked before it
// starts. When the write fails the entry stays in memory (a replay is still refused) and the
// error is returned, so the caller fails closed.
func (c *File) CheckAndAdd(ctx context.Context, digest string, now time.Time, keep time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("replay: check %q: %w", digest, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, ErrClosed
	}
	fresh, err := c.mem.CheckAndAdd(ctx, digest, now, keep)
	if err != nil || !fresh {
		return false, err
	}
	c.buf = appendLine(c.buf[:0], digest, PacketFrom(ctx), now.Unix(), expiry(now, keep))
	if _, err := c.f.Write(c.buf); err != nil {
		return false, fmt.Errorf("replay: append to %s: %w", c.path, err)
	}
	c.fileLines++
	if c.opts.Sync == SyncEveryAdd {
		if err := c.f.Sync(); err != nil {
			return false, fmt.Errorf("replay: fsync %s: %w", c.path, err)
		}
	}
	if d := c.dead(); d > c.opts.CompactMin && d > c.mem.Len() {
		c.mem.Sweep(c.opts.Now())
		if err := c.compactLocked(); err != nil {
			return false, err
		}
	}
	return true, nil
}

// Compact sweeps expired entries and rewrites the file with the live ones.
func (c *File) Compact() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.mem.Sweep(c.opts.Now())
	return c.compactLocked()
}

// Close implements Cache: it fsyncs and closes the file.
func (c *File) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	c.mem.Close()
	errSync := c.f.Sync()
	errClose := c.f.Close()
	if err := errors.Join(errSync, errClose); err != nil {
		return fmt.Errorf("replay: close %s: %w", c.path, err)
	}
	return nil
}

// dead is the number of lines in the file that hold no live entry.
func (c *File) dead() int { return c.fileLines - c.mem.Len() }

// compactLocked rewrites the file with one line per live entry (safefile.WriteAtomicFunc: a
// new file renamed over the old one, never through a link) and reopens it for appending. An
// entry keeps its own line from the current file, so the packet fields and time survive; an
// entry without one (its append failed, or the file cannot be read safely) gets a line with
// zero packet fields.
func (c *File) compactLocked() error {
	// The old lines are read through safefile like every open: a link planted at path is not
	// read (its entries then get zero packet fields, as they would without a file).
	prev, release, err := readMapped(c.path)
	defer release()
	if err != nil {
		prev = nil
	}
	n := 0
	err = safefile.WriteAtomicFunc(c.path, 0o600, func(w io.Writer) error {
		io.WriteString(w, fileHeader)
		c.mem.mu.Lock()
		defer c.mem.mu.Unlock()
		t := &c.mem.t
		written := make(map[key]bool, t.len())
		for data := prev; len(data) > 0; {
			var line []byte
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				line, data = data, nil
			}
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) == 0 || line[0] == '#' {
				continue
			}
			digest, exp, _, ok := parseLine(line, c.opts.LegacyKeep)
			if !ok {
				continue
			}
			k, _ := keyOf(digest)
			live, ok := t.get(k)
			if !ok || written[k] || expSecond(live) != expSecond(exp) {
				continue // gone, copied already, or an older line of a digest added again
			}
			written[k] = true
			w.Write(line) // a buffered writer: its error returns from the final flush
			w.Write([]byte{'\n'})
			n++
		}
		var line []byte
		t.each(func(k key, exp int64) {
			if written[k] {
				return
			}
			// The added time is not kept in memory; write the expiry's second (or 0) instead.
			line = appendLine(line[:0], c.mem.text(k), Packet{}, expSecond(exp), exp)
			w.Write(line)
			n++
		})
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay: compact %s: %w", c.path, err)
	}
	f, err := safefile.OpenAppend(c.path, 0o600)
	if err != nil {
		return fmt.Errorf("replay: reopen %s: %w", c.path, err)
	}
	old := c.f
	c.f = f
	if old != nil {
		// The old file was renamed over and fsynced by WriteAtomicFunc: its descriptor only
		// needs releasing, but a failure is still reported.
		if err := old.Close(); err != nil {
			return fmt.Errorf("replay: close the replaced %s: %w", c.path, err)
		}
	}
	c.fileLines = n
	return nil
}

// appendLine formats one cache line. exp is Unix ns or never.
func appendLine(b []byte, digest string, p Packet, added, exp int64) []byte {
	b = append(b, digest...)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(p.Proto), 10)
	b = append(b, ' ')
	b = appendAddr(b, p.Src)
	b = append(b, ' ')
	b = appendAddr(b, p.Dst)
	b = append(b, ' ')
	b = strconv.AppendInt(b, added, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, expSecond(exp), 10)
	return append(b, '\n')
}

// expSecond is the expires field of an expiry in Unix ns: rounded up to the second, 0 for never.
func expSecond(exp int64) int64 {
	if exp == never {
		return 0
	}
	return (exp + 1e9 - 1) / 1e9
}

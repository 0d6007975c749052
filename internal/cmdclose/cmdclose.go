// Package cmdclose keeps the pending CMD_CYCLE_CLOSE commands of fwknop command cycles in a
// file, so a close still runs at its time after the server restarts or is killed (fwknopd
// keeps them in memory only and loses them).
//
// The file is JSON, rewritten whole (safefile.WriteAtomic, mode 0600) on every change:
//
//	{"version":1,"closes":[{"id":3,"stanza":1,"src":"192.0.2.7","argv":["nft","delete",...],"due":"2026-..."}]}
//
// A missing file is an empty store. A file that does not parse is an error (Open), not an
// empty store: a close silently forgotten leaves access open.
package cmdclose

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// Version is the file format version written and the only one read.
const Version = 1

// maxFile bounds what Open reads.
const maxFile = 16 << 20

// Close is one pending close command.
type Close struct {
	ID     uint64    `json:"id"`     // unique in the store (Add assigns it)
	Stanza int       `json:"stanza"` // access stanza number, for the log
	Src    string    `json:"src"`    // the address the cycle opened ($IP), for the log
	Argv   []string  `json:"argv"`   // the expanded close command
	Due    time.Time `json:"due"`    // when to run it
}

type file struct {
	Version int     `json:"version"`
	Closes  []Close `json:"closes"`
}

// Store is the set of pending closes, kept in a file. It is safe for concurrent use.
type Store struct {
	path    string
	mu      sync.Mutex
	pending map[uint64]Close
	next    uint64
}

// Open reads the store at path (a missing file is an empty store) through safefile, which
// refuses a file or directory others could change. Errors: the read, or the parse, wrapped
// with the path.
func Open(path string) (*Store, error) {
	s := &Store{path: path, pending: map[uint64]Close{}, next: 1}
	f, err := safefile.OpenRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pending closes: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("pending closes %s: %w", path, err)
	}
	cs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("pending closes %s: %w", path, err)
	}
	for _, c := range cs {
		s.pending[c.ID] = c
		s.next = max(s.next, c.ID+1)
	}
	return s, nil
}

// Parse decodes a store file. Errors: not JSON of the format, another version, a close
// without argv or due time, or a repeated id.
func Parse(data []byte) ([]Close, error) {
	if len(data) > maxFile {
		return nil, fmt.Errorf("larger than %d bytes", maxFile)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	if f.Version != Version {
		return nil, fmt.Errorf("version %d, want %d", f.Version, Version)
	}
	seen := map[uint64]bool{}
	for _, c := range f.Closes {
		switch {
		case len(c.Argv) == 0 || c.Argv[0] == "":
			return nil, fmt.Errorf("close %d has no command", c.ID)
		case c.Due.IsZero():
			return nil, fmt.Errorf("close %d has no due time", c.ID)
		case seen[c.ID] || c.ID == 0:
			return nil, fmt.Errorf("close id %d repeated or zero", c.ID)
		}
		seen[c.ID] = true
	}
	return f.Closes, nil
}

// Pending returns the pending closes, earliest due first.
func (s *Store) Pending() []Close {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sorted()
}

func (s *Store) sorted() []Close {
	out := make([]Close, 0, len(s.pending))
	for _, c := range s.pending {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Close) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return int(a.ID) - int(b.ID)
	})
	return out
}

// Add assigns c an ID, records it and writes the file before returning it. On a write error
// nothing is recorded.
func (s *Store) Add(c Close) (Close, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.ID = s.next
	s.pending[c.ID] = c
	if err := s.write(); err != nil {
		delete(s.pending, c.ID)
		return Close{}, err
	}
	s.next++
	return c, nil
}

// Done removes the close id (after it ran) and writes the file. An unknown id is not an error.
func (s *Store) Done(id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[id]; !ok {
		return nil
	}
	delete(s.pending, id)
	return s.write()
}

func (s *Store) write() error {
	data, err := json.Marshal(file{Version: Version, Closes: s.sorted()})
	if err != nil {
		return err
	}
	if err := safefile.WriteAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("pending closes: %w", err)
	}
	return nil
}

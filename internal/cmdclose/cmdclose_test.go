package cmdclose

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStoreSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "closes")
	s, err := Open(path)
	if err != nil || len(s.Pending()) != 0 {
		t.Fatalf("missing file: %v %v", s, err)
	}
	due := time.Unix(1_900_000_000, 0).UTC()
	a, err := s.Add(Close{Stanza: 2, Src: "192.0.2.7", Argv: []string{"nft", "delete", "element"}, Due: due.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Add(Close{Stanza: 1, Src: "192.0.2.8", Argv: []string{"true"}, Due: due})
	if err != nil || a.ID == b.ID {
		t.Fatalf("ids %d %d: %v", a.ID, b.ID, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %v %v", fi, err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Pending(); !reflect.DeepEqual(got, []Close{b, a}) {
		t.Fatalf("reopened: %+v, want %+v", got, []Close{b, a})
	}
	if err := r.Done(b.ID); err != nil {
		t.Fatal(err)
	}
	c, err := r.Add(Close{Argv: []string{"x"}, Due: due})
	if err != nil || c.ID <= a.ID || c.ID <= b.ID {
		t.Fatalf("id after reopen %d: %v", c.ID, err)
	}
	r2, err := Open(path)
	if err != nil || !reflect.DeepEqual(r2.Pending(), []Close{c, a}) {
		t.Fatalf("after Done: %+v %v", r2.Pending(), err)
	}
}

func TestOpenRefusesBadFile(t *testing.T) {
	for _, text := range []string{"", "{", `{"version":2,"closes":[]}`,
		`{"version":1,"closes":[{"id":1,"argv":[],"due":"2030-01-01T00:00:00Z"}]}`,
		`{"version":1,"closes":[{"id":1,"argv":["x"]}]}`,
		`{"version":1,"closes":[{"id":1,"argv":["x"],"due":"2030-01-01T00:00:00Z"},{"id":1,"argv":["y"],"due":"2030-01-01T00:00:00Z"}]}`,
	} {
		path := filepath.Join(t.TempDir(), "closes")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); err == nil {
			t.Errorf("%q opened", text)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"closes":[{"id":1,"stanza":1,"src":"192.0.2.1","argv":["x","y"],"due":"2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := Parse(data)
		if err != nil {
			return
		}
		seen := map[uint64]bool{}
		for _, c := range cs {
			if len(c.Argv) == 0 || c.Due.IsZero() || seen[c.ID] || c.ID == 0 {
				t.Fatalf("accepted %+v", c)
			}
			seen[c.ID] = true
		}
	})
}

package replay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/safefile"
)

// TestFileRefusesPlantedLinks: a link named like the digest file is neither followed at open
// nor written through by a compaction, and a hard link is refused.
func TestFileRefusesPlantedLinks(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	untouched := func() {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != "precious\n" {
			t.Errorf("link target changed: %q, %v", b, err)
		}
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	path := filepath.Join(dir, "digest.cache")
	clk := &fakeClock{t0}

	os.Symlink(victim, path)
	if _, err := OpenFile(path, FileOptions{Now: clk.Now}); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("OpenFile through a symlink: %v", err)
	}
	untouched()
	os.Remove(path)
	os.Link(victim, path)
	if _, err := OpenFile(path, FileOptions{Now: clk.Now}); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("OpenFile of a hard link: %v", err)
	}
	untouched()
	os.Remove(path)

	// A link that appears at path while the cache is open is replaced by the next compaction.
	c := openT(t, path, clk, 0)
	defer closeT(t, c)
	os.Remove(path)
	os.Symlink(victim, path)
	if _, err := c.CheckAndAdd(ctx, dA, clk.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	untouched()
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("after compaction path is %v, %v; want the regular file", fi, err)
	}

	// A directory others can write is refused.
	os.Chmod(dir, 0o777)
	if _, err := OpenFile(filepath.Join(dir, "other.cache"), FileOptions{}); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("OpenFile in a world-writable directory: %v", err)
	}
}

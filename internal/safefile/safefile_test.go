package safefile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// safeDir returns a fresh directory that passes CheckDir whatever the umask.
func safeDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// victim writes a file outside the directory under test that a planted link points at.
func victim(t *testing.T) string {
	t.Helper()
	p := filepath.Join(safeDir(t), "victim")
	if err := os.WriteFile(p, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func untouched(t *testing.T, p string) {
	t.Helper()
	if b, err := os.ReadFile(p); err != nil || string(b) != "precious\n" {
		t.Errorf("link target %s changed: %q, %v", p, b, err)
	}
}

// wantUnsafe fails t unless err is an *UnsafeError naming path whose text contains each of want.
func wantUnsafe(t *testing.T, err error, path string, want ...string) {
	t.Helper()
	var ue *UnsafeError
	if !errors.As(err, &ue) || !errors.Is(err, ErrUnsafe) {
		t.Fatalf("got %v, want an *UnsafeError for %s", err, path)
	}
	if ue.Path != path {
		t.Errorf("error names %s, want %s: %v", ue.Path, path, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown to another uid")
	}
}

func TestCheckDirAccepts(t *testing.T) {
	d := safeDir(t)
	if err := CheckDir(d); err != nil {
		t.Fatal(err)
	}
	// A sticky shared directory (like /tmp) above ours is fine.
	shared := filepath.Join(d, "shared")
	os.Mkdir(shared, 0o700)
	os.Chmod(shared, os.ModeSticky|0o777)
	own := filepath.Join(shared, "own")
	os.Mkdir(own, 0o700)
	if err := CheckDir(own); err != nil {
		t.Errorf("own directory under a sticky one: %v", err)
	}
	// A link in a safe directory to a safe directory is followed, relative or absolute.
	os.Symlink("shared/own", filepath.Join(d, "rel"))
	os.Symlink(own, filepath.Join(d, "abs"))
	for _, p := range []string{filepath.Join(d, "rel"), filepath.Join(d, "abs"), d + "/rel/../own"} {
		if err := CheckDir(p); err != nil {
			t.Errorf("CheckDir(%s): %v", p, err)
		}
	}
}

func TestCheckDirRefuses(t *testing.T) {
	d := safeDir(t)
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(d, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	world := mk("world", 0o777)
	wantUnsafe(t, CheckDir(world), world, "writable by group or others", "drwxrwxrwx", "chmod 755 "+world)
	group := mk("group", 0o770)
	wantUnsafe(t, CheckDir(group), group, "chmod 750 "+group)
	// Writable parent: everything under it is refused.
	inner := filepath.Join(world, "inner")
	os.Mkdir(inner, 0o700)
	wantUnsafe(t, CheckDir(inner), world)
	// Sticky is fine above, not as the directory itself.
	sticky := mk("sticky", os.ModeSticky|0o777)
	wantUnsafe(t, CheckDir(sticky), sticky, "shared")
	// A link to an unsafe directory is judged by its target.
	os.Symlink(world, filepath.Join(d, "toworld"))
	wantUnsafe(t, CheckDir(filepath.Join(d, "toworld")), world)
	// A link through a writable directory is refused at that directory.
	os.Symlink(d, filepath.Join(world, "back"))
	wantUnsafe(t, CheckDir(filepath.Join(world, "back")), world)
	// Missing, and not a directory.
	if err := CheckDir(filepath.Join(d, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	os.WriteFile(filepath.Join(d, "file"), nil, 0o600)
	if err := CheckDir(filepath.Join(d, "file")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("file: %v", err)
	}
	// A link loop ends.
	os.Symlink("loop", filepath.Join(d, "loop"))
	if err := CheckDir(filepath.Join(d, "loop")); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("loop: %v", err)
	}
}

func TestCheckDirOwner(t *testing.T) {
	requireRoot(t)
	d := safeDir(t)
	other := filepath.Join(d, "other")
	os.Mkdir(other, 0o755)
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, CheckDir(other), other, "owner uid 65534", "chown root:root "+other+" && chmod 755 "+other)
	below := filepath.Join(other, "below")
	os.Mkdir(below, 0o700)
	wantUnsafe(t, CheckDir(below), other)
	// A link planted by another user in a sticky directory is not followed.
	shared := filepath.Join(d, "shared")
	os.Mkdir(shared, 0o700)
	os.Chmod(shared, os.ModeSticky|0o777)
	link := filepath.Join(shared, "link")
	os.Symlink(d, link)
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	wantUnsafe(t, CheckDir(link), link, "symbolic link owned by uid 65534")
}

func TestEnsureDir(t *testing.T) {
	d := safeDir(t)
	p := filepath.Join(d, "a", "b", "run")
	if err := EnsureDir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created %v, %v", fi, err)
	}
	if err := EnsureDir(p, 0o700); err != nil {
		t.Errorf("existing: %v", err)
	}
	// Nothing is created below an unsafe directory.
	world := filepath.Join(d, "world")
	os.Mkdir(world, 0o700)
	os.Chmod(world, 0o777)
	wantUnsafe(t, EnsureDir(filepath.Join(world, "x", "y"), 0o700), world)
	if _, err := os.Lstat(filepath.Join(world, "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("created below an unsafe directory: %v", err)
	}
}

func TestWriteAtomic(t *testing.T) {
	d := safeDir(t)
	p := filepath.Join(d, "f")
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteAtomic(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Errorf("content %q, want %q", b, content)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 whatever the umask", fi.Mode())
	}
	// A link at the target is replaced, never written through; links at likely temporary
	// names are never used.
	v := victim(t)
	os.Remove(p)
	os.Symlink(v, p)
	os.Symlink(v, p+".tmp")
	os.Symlink(v, filepath.Join(d, ".f.tmp"))
	if err := WriteAtomic(p, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	untouched(t, v)
	if fi, _ := os.Lstat(p); !fi.Mode().IsRegular() {
		t.Errorf("target is %v, want a regular file replacing the link", fi.Mode())
	}
	ents, _ := os.ReadDir(d)
	if len(ents) != 3 {
		t.Errorf("directory holds %d entries, want f and the two planted links (no temporary left)", len(ents))
	}
	// An unsafe directory is refused before anything is written.
	os.Chmod(d, 0o777)
	wantUnsafe(t, WriteAtomic(filepath.Join(d, "g"), []byte("x"), 0o600), d)
	if _, err := os.Lstat(filepath.Join(d, "g")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("file written into an unsafe directory")
	}
	os.Chmod(d, 0o700)
	// A failing writer leaves the old file and no temporary.
	boom := errors.New("boom")
	if err := WriteAtomicFunc(p, 0o600, func(w io.Writer) error { w.Write([]byte("partial")); return boom }); !errors.Is(err, boom) {
		t.Errorf("writer error: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new\n" {
		t.Errorf("failed write changed the file: %q", b)
	}
	if ents, _ := os.ReadDir(d); len(ents) != 3 {
		t.Errorf("temporary left behind: %d entries", len(ents))
	}
}

func TestOpenAppend(t *testing.T) {
	d := safeDir(t)
	p := filepath.Join(d, "log")
	for _, s := range []string{"a\n", "b\n"} {
		f, err := OpenAppend(p, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(s))
		f.Close()
	}
	if b, _ := os.ReadFile(p); string(b) != "a\nb\n" {
		t.Errorf("content %q", b)
	}
	v := victim(t)
	link := filepath.Join(d, "link")
	os.Symlink(v, link)
	_, err := OpenAppend(link, 0o600)
	wantUnsafe(t, err, link, "symbolic link", "rm "+link)
	dangling := filepath.Join(d, "dangling")
	os.Symlink(filepath.Join(filepath.Dir(v), "new"), dangling)
	_, err = OpenAppend(dangling, 0o600)
	wantUnsafe(t, err, dangling, "symbolic link")
	if _, err := os.Lstat(filepath.Join(filepath.Dir(v), "new")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a dangling link's target was created")
	}
	hard := filepath.Join(d, "hard")
	if err := os.Link(v, hard); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAppend(hard, 0o600)
	wantUnsafe(t, err, hard, "2 hard links")
	fifo := filepath.Join(d, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = OpenAppend(fifo, 0o600) // would block (or fail with ENXIO) if it were opened
	wantUnsafe(t, err, fifo, "named pipe")
	untouched(t, v)
	// An unsafe directory.
	world := filepath.Join(d, "world")
	os.Mkdir(world, 0o700)
	os.Chmod(world, 0o777)
	_, err = OpenAppend(filepath.Join(world, "log"), 0o600)
	wantUnsafe(t, err, world)
}

func TestOpenAppendOwner(t *testing.T) {
	requireRoot(t)
	d := safeDir(t)
	p := filepath.Join(d, "theirs")
	os.WriteFile(p, []byte("precious\n"), 0o666)
	os.Chown(p, 65534, 65534)
	_, err := OpenAppend(p, 0o600)
	wantUnsafe(t, err, p, "owned by uid 65534")
	untouched(t, p)
	// Reading a file owned by another user is refused too: its content is not ours.
	_, err = OpenRead(p)
	wantUnsafe(t, err, p, "owned by uid 65534")
}

func TestOpenRead(t *testing.T) {
	d := safeDir(t)
	p := filepath.Join(d, "f")
	os.WriteFile(p, []byte("data"), 0o600)
	f, err := OpenRead(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(f)
	f.Close()
	if err != nil || string(b) != "data" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, err := OpenRead(filepath.Join(d, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: %v", err)
	}
	fifo := filepath.Join(d, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	_, err = OpenRead(fifo)
	wantUnsafe(t, err, fifo, "named pipe")
	link := filepath.Join(d, "link")
	os.Symlink(p, link)
	_, err = OpenRead(link)
	wantUnsafe(t, err, link, "symbolic link")
	_, err = OpenRead(d)
	if err == nil {
		t.Error("opened a directory as a file")
	}
}

package ledger

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/safefile"
)

var t0 = time.UnixMilli(1795432102000)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func key(src string, port uint16) Key {
	return Key{Src: netip.MustParseAddr(src), Proto: 6, Port: port}
}

func entry(src string, port uint16, exp time.Time, stanza int) Entry {
	return Entry{Key: key(src, port), Expires: exp, Stanza: stanza}
}

func dir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	os.Chmod(d, 0o700)
	return d
}

func open(t testing.TB, path string, clk *clock) *Ledger {
	t.Helper()
	l, err := Open(path, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// reload opens path as a restarted server would and returns its live entries.
func reload(t *testing.T, path string, clk *clock) []Entry {
	t.Helper()
	l := open(t, path, clk)
	defer l.Close()
	return l.Live()
}

// same fails t unless got and want hold the same entries in the same order.
func same(t *testing.T, what string, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i].Key != want[i].Key || !got[i].Expires.Equal(want[i].Expires) || got[i].Stanza != want[i].Stanza {
			t.Errorf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestMergeLaterWins(t *testing.T) {
	short, long := t0.Add(30*time.Second), t0.Add(time.Hour)
	for _, order := range [][2]Entry{
		{entry("10.0.0.1", 22, long, 1), entry("10.0.0.1", 22, short, 2)},
		{entry("10.0.0.1", 22, short, 2), entry("10.0.0.1", 22, long, 1)},
	} {
		l := open(t, "", &clock{t: t0})
		l.Record(order[:1])
		got := l.Record(order[1:])
		same(t, "effective", got, []Entry{entry("10.0.0.1", 22, long, 1)})
		same(t, "live", l.Live(), []Entry{entry("10.0.0.1", 22, long, 1)})
	}
	// Within one call, in input order; a tie gives the new stanza; other keys are separate.
	l := open(t, "", &clock{t: t0})
	got := l.Record([]Entry{
		entry("10.0.0.1", 22, long, 1),
		entry("10.0.0.2", 22, short, 5),
		entry("10.0.0.1", 22, short, 2),
		entry("10.0.0.1", 443, short, 3),
		entry("10.0.0.1", 22, long, 4),
	})
	same(t, "effective", got, []Entry{
		entry("10.0.0.1", 22, long, 1),
		entry("10.0.0.2", 22, short, 5),
		entry("10.0.0.1", 22, long, 1),
		entry("10.0.0.1", 443, short, 3),
		entry("10.0.0.1", 22, long, 4),
	})
	same(t, "live", l.Live(), []Entry{
		entry("10.0.0.1", 443, short, 3),
		entry("10.0.0.2", 22, short, 5),
		entry("10.0.0.1", 22, long, 4),
	})
}

func TestKeyNormalised(t *testing.T) {
	l := open(t, "", &clock{t: t0})
	exp := t0.Add(time.Minute + 500*time.Microsecond)
	got := l.Record([]Entry{entry("::ffff:10.0.0.1", 22, exp, 1), {Expires: exp}})
	if got[0].Src != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("Src %v, want unmapped", got[0].Src)
	}
	if want := t0.Add(time.Minute + time.Millisecond); !got[0].Expires.Equal(want) {
		t.Errorf("Expires %v, want rounded up to %v", got[0].Expires, want)
	}
	if l.Len() != 1 {
		t.Errorf("Len %d: an invalid Src was stored", l.Len())
	}
	l.Remove(key("::ffff:10.0.0.1", 22))
	if l.Len() != 0 {
		t.Error("Remove by the mapped form missed")
	}
}

func TestExpiry(t *testing.T) {
	clk := &clock{t: t0}
	l := open(t, "", clk)
	l.Record([]Entry{entry("10.0.0.1", 22, t0.Add(10*time.Second), 1), entry("10.0.0.2", 22, t0.Add(20*time.Second), 1)})
	clk.Advance(10*time.Second - time.Millisecond)
	if l.Len() != 2 {
		t.Errorf("Len %d before expiry", l.Len())
	}
	clk.Advance(time.Millisecond)
	same(t, "live at 10 s", l.Live(), []Entry{entry("10.0.0.2", 22, t0.Add(20*time.Second), 1)})
	// An expired grant no longer holds a later one back, whatever its stanza.
	got := l.Record([]Entry{entry("10.0.0.1", 22, t0.Add(15*time.Second), 7)})
	same(t, "after expiry", got, []Entry{entry("10.0.0.1", 22, t0.Add(15*time.Second), 7)})
	// An already expired entry is returned, merged, not stored.
	got = l.Record([]Entry{entry("10.0.0.3", 22, t0, 1), entry("10.0.0.2", 22, t0, 9)})
	same(t, "expired input", got, []Entry{entry("10.0.0.3", 22, t0, 1), entry("10.0.0.2", 22, t0.Add(20*time.Second), 1)})
	if l.Len() != 2 {
		t.Errorf("Len %d, want 2", l.Len())
	}
	clk.Advance(time.Hour)
	if l.Len() != 0 || len(l.Live()) != 0 {
		t.Error("entries outlived their expiry")
	}
}

func TestRestart(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	l := open(t, path, clk)
	a := entry("10.0.0.1", 22, t0.Add(time.Hour), 1)
	b := entry("2001:db8::1", 22, t0.Add(2*time.Hour), 2)
	c := entry("10.0.0.3", 443, t0.Add(time.Minute), 3)
	d := entry("10.0.0.4", 22, t0.Add(time.Minute), 4)
	l.Record([]Entry{a, b, c, d})
	l.Record([]Entry{entry("10.0.0.1", 22, t0.Add(time.Second), 9)}) // shorter: no change
	l.Remove(d.Key)
	// Without Close (a killed process): every change is already in the file.
	same(t, "reopened", reload(t, path, clk), []Entry{c, a, b})
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Errorf("Sync after Close: %v", err)
	}
	clk.Advance(30 * time.Minute) // c has expired
	l = open(t, path, clk)
	same(t, "after restart", l.Live(), []Entry{a, b})
	if st := l.Stats(); st.Loaded != 2 || st.Expired != 1 || st.Malformed != 0 || st.Torn {
		t.Errorf("stats %+v", st)
	}
	l.Clear()
	l.Record([]Entry{d})
	l.Close()
	l = open(t, path, clk)
	defer l.Close()
	same(t, "after clear", l.Live(), []Entry{})
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestLoadTornAndMalformed(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	exp := t0.Add(time.Hour).UnixMilli()
	lines := []string{
		header,
		fmt.Sprintf("+ %d 10.0.0.1 6 22 1", exp),
		fmt.Sprintf("+ %d 10.0.0.2 6 22 1", exp),
		fmt.Sprintf("+ %d 10.0.0.3 6 22", exp),      // missing stanza
		fmt.Sprintf("+ %d 10.0.0.3 6 70000 1", exp), // port out of range
		fmt.Sprintf("+ %d 10.0.0.3 6 22 1 x", exp),  // extra field
		"- 10.0.0.2 6 22",
		"- nonsense",
		"",
		"# a comment",
		fmt.Sprintf("+ %d 10.0.0.5 17 53 2", exp),
		"+ 12",
	}
	os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600) // the last line is torn
	l := open(t, path, clk)
	same(t, "loaded", l.Live(), []Entry{entry("10.0.0.1", 22, time.UnixMilli(exp), 1),
		{Key: Key{Src: netip.MustParseAddr("10.0.0.5"), Proto: 17, Port: 53}, Expires: time.UnixMilli(exp), Stanza: 2}})
	if st := l.Stats(); st.Lines != 8 || st.Malformed != 4 || !st.Torn || st.Loaded != 2 {
		t.Errorf("stats %+v, want 8 lines, 4 malformed, torn, 2 loaded", st)
	}
	// Open rewrote the file: the torn tail cannot swallow the next append.
	l.Record([]Entry{entry("10.0.0.9", 22, time.UnixMilli(exp), 3)})
	l.Close()
	l = open(t, path, clk)
	defer l.Close()
	if st := l.Stats(); st.Lines != 3 || st.Malformed != 0 || st.Torn || st.Loaded != 3 {
		t.Errorf("stats after rewrite %+v", st)
	}
}

func TestRefusesForeignFile(t *testing.T) {
	d := dir(t)
	for _, content := range []string{"# sesame grant ledger v2\n", "digest 0 0.0.0.0 0 0.0.0.0 0 1\n", "junk"} {
		path := filepath.Join(d, "grants")
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := Open(path, nil); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("Open of %q: %v", content, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("foreign file rewritten: %q", b)
		}
	}
}

func TestRefusesPlantedLink(t *testing.T) {
	victim := filepath.Join(dir(t), "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	path := filepath.Join(dir(t), "grants")
	os.Symlink(victim, path)
	if _, err := Open(path, nil); !errors.Is(err, safefile.ErrUnsafe) {
		t.Errorf("Open through a symlink: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("link target changed: %q", b)
	}
}

func TestCompaction(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	l := open(t, path, clk)
	defer l.Close()
	l.Record([]Entry{entry("10.0.0.2", 22, t0.Add(time.Hour), 1)})
	for i := 1; i <= 3000; i++ { // the same key, later each time: one line each
		l.Record([]Entry{entry("10.0.0.1", 22, t0.Add(time.Duration(i)*time.Second), 1)})
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n > compactMinDead+3 {
		t.Errorf("file has %d lines for 2 live entries; no compaction", n)
	}
	same(t, "after compaction", reload(t, path, clk), []Entry{
		entry("10.0.0.1", 22, t0.Add(3000*time.Second), 1), entry("10.0.0.2", 22, t0.Add(time.Hour), 1)})
}

func TestConcurrentRecord(t *testing.T) {
	clk := &clock{t: t0}
	path := filepath.Join(dir(t), "grants")
	l := open(t, path, clk)
	const workers, per = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				// Shared keys (port i%50) with expiries that rise and fall across workers.
				exp := t0.Add(time.Duration(1+(i*7+w*13)%1000) * time.Second)
				src := netip.AddrFrom4([4]byte{10, 0, byte(w), 1})
				l.Record([]Entry{{Key: Key{Src: netip.MustParseAddr("10.9.9.9"), Proto: 6, Port: uint16(i % 50)}, Expires: exp, Stanza: w},
					{Key: Key{Src: src, Proto: 6, Port: uint16(i)}, Expires: exp, Stanza: w}})
				if i%100 == 0 {
					l.Live()
					l.Sync()
				}
			}
		}()
	}
	wg.Wait()
	// The shared keys end with the latest expiry any worker gave them.
	want := map[uint16]time.Time{}
	for w := range workers {
		for i := range per {
			exp := t0.Add(time.Duration(1+(i*7+w*13)%1000) * time.Second)
			if p := uint16(i % 50); exp.After(want[p]) {
				want[p] = exp
			}
		}
	}
	live := l.Live()
	if len(live) != 50+workers*per {
		t.Fatalf("%d live entries, want %d", len(live), 50+workers*per)
	}
	for _, e := range live {
		if e.Src == netip.MustParseAddr("10.9.9.9") && !e.Expires.Equal(want[e.Port]) {
			t.Errorf("port %d expires %v, want the latest %v", e.Port, e.Expires, want[e.Port])
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	same(t, "reloaded", reload(t, path, clk), live)
}

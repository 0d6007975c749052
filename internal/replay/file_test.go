package replay

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// closeT closes c and fails t if that fails (for File, the digest file's last fsync).
func closeT(t testing.TB, c Cache) {
	t.Helper()
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

func openT(t *testing.T, path string, clk *fakeClock, legacyKeep time.Duration) *File {
	t.Helper()
	c, err := OpenFile(path, FileOptions{Now: clk.Now, LegacyKeep: legacyKeep, CompactMin: 10})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFilePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	clk := &fakeClock{t0}
	c := openT(t, path, clk, 0)
	if _, err := c.CheckAndAdd(ctx, dA, clk.Now(), 300*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CheckAndAdd(ctx, dB, clk.Now(), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}

	clk.Advance(299 * time.Second)
	c = openT(t, path, clk, 0)
	for _, d := range []string{dA, dB} {
		if seen, _ := c.Seen(ctx, d); !seen {
			t.Errorf("%s not seen after reopen", d)
		}
	}
	closeT(t, c)

	clk.Advance(2 * time.Second)
	c = openT(t, path, clk, 0)
	defer closeT(t, c)
	if seen, _ := c.Seen(ctx, dA); seen {
		t.Error("expired entry loaded")
	}
	if seen, _ := c.Seen(ctx, dB); !seen {
		t.Error("forever entry lost")
	}
	if st := c.Stats(); st.Expired != 1 || st.Loaded != 1 || st.Skipped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestFileLegacyAndCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	// A line written by fwknopd 2.6.10 (fwknop-run.md), sesame lines, and junk.
	content := "# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n" +
		dA + " 17 10.99.0.2 55383 0.0.0.0 62201 1795432102\n" +
		"garbage line\n" +
		dB + " 0 0.0.0.0 0 0.0.0.0 0 1795432102 1795432402\n" +
		"x 0 0.0.0.0 0 0.0.0.0 0 notanumber\n" +
		"\n" +
		"torn 0 0.0.0.0 0 0.0"
	os.WriteFile(path, []byte(content), 0o600)
	clk := &fakeClock{t0.Add(time.Minute)}
	c := openT(t, path, clk, time.Hour)
	st := c.Stats()
	if st.Loaded != 2 || st.Legacy != 1 || st.Skipped != 3 || st.Lines != 5 {
		t.Errorf("stats %+v, want 2 loaded, 1 legacy, 3 skipped of 5", st)
	}
	// The torn last line must not swallow the next append.
	dC := digestN(7)
	if _, err := c.CheckAndAdd(ctx, dC, clk.Now(), time.Hour); err != nil {
		t.Fatal(err)
	}
	closeT(t, c)
	c = openT(t, path, clk, time.Hour)
	defer closeT(t, c)
	for _, d := range []string{dA, dB, dC} {
		if seen, _ := c.Seen(ctx, d); !seen {
			t.Errorf("%s not seen", d)
		}
	}
	// Legacy entries expire LegacyKeep after their time field.
	clk.t = t0.Add(time.Hour + time.Second)
	if seen, _ := c.Seen(ctx, dA); seen {
		t.Error("legacy entry outlived LegacyKeep")
	}
}

func TestFileCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	clk := &fakeClock{t0}
	c := openT(t, path, clk, 0)
	for i := 0; i < 100; i++ {
		if _, err := c.CheckAndAdd(ctx, digestN(i), clk.Now(), time.Second); err != nil {
			t.Fatal(err)
		}
		clk.Advance(100 * time.Millisecond)
	}
	closeT(t, c)
	lines := countLines(t, path)
	if lines > 40 {
		t.Errorf("file has %d entry lines after 100 adds with ~10 live; compaction did not run", lines)
	}
	c = openT(t, path, clk, 0)
	defer closeT(t, c)
	for i := 91; i < 100; i++ {
		if seen, _ := c.Seen(ctx, digestN(i)); !seen {
			t.Errorf("live digest %d lost by compaction", i)
		}
	}
	if err := c.Compact(); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, path); n != c.Len() {
		t.Errorf("after Compact file has %d lines, cache %d", n, c.Len())
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	s := bufio.NewScanner(f)
	for s.Scan() {
		if l := s.Text(); l != "" && !strings.HasPrefix(l, "#") {
			n++
		}
	}
	return n
}

// TestFileSurvivesKill9 adds a digest in a child process that is SIGKILLed as soon as Add
// returns, then reloads the file.
func TestFileSurvivesKill9(t *testing.T) {
	if os.Getenv("REPLAY_KILL_CHILD") != "" {
		c, err := OpenFile(os.Getenv("REPLAY_KILL_CHILD"), FileOptions{})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		if _, err := c.CheckAndAdd(ctx, dA, time.Now(), time.Hour); err != nil {
			fmt.Println("add:", err)
			os.Exit(1)
		}
		fmt.Println("added")
		time.Sleep(time.Minute) // killed before this ends
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "digest.cache")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileSurvivesKill9$")
	cmd.Env = append(os.Environ(), "REPLAY_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	cmd.Process.Kill() // SIGKILL, by PID
	cmd.Wait()
	if line != "added\n" {
		t.Fatalf("child said %q", line)
	}
	c, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeT(t, c)
	if seen, _ := c.Seen(ctx, dA); !seen {
		t.Fatal("digest added just before kill -9 was lost")
	}
}

func BenchmarkFileCheckAndAdd(b *testing.B) {
	c, err := OpenFile(filepath.Join(b.TempDir(), "digest.cache"), FileOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer closeT(b, c)
	now := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.CheckAndAdd(ctx, digestN(i), now, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad1M measures OpenFile on a file of one million live entries.
func BenchmarkLoad1M(b *testing.B) {
	path := filepath.Join(b.TempDir(), "digest.cache")
	now := time.Now()
	var buf []byte
	buf = append(buf, fileHeader...)
	for i := 0; i < 1_000_000; i++ {
		buf = appendLine(buf, digestN(i), Packet{}, now.Unix(), now.Add(time.Hour).UnixNano())
	}
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		c, err := OpenFile(path, FileOptions{Now: func() time.Time { return now }})
		if err != nil {
			b.Fatal(err)
		}
		if c.Len() != 1_000_000 {
			b.Fatalf("loaded %d", c.Len())
		}
		closeT(b, c)
	}
	// CPU time is steadier than wall time on a shared machine.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

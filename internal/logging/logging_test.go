package logging

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reject logs the server's rejection line as internal/server's logReject does.
func reject(l *slog.Logger) {
	l.LogAttrs(context.Background(), slog.LevelWarn, "SPA packet rejected",
		slog.String("src", "192.0.2.7"), slog.String("reason", "HMAC mismatch"), slog.Int("stanza", 1))
}

func TestPlainIsTextHandler(t *testing.T) {
	var got, want bytes.Buffer
	fixed := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.String(slog.TimeKey, "T")
		}
		return a
	}
	opts := &slog.HandlerOptions{ReplaceAttr: fixed}
	reject(slog.New(NewHandler(&got, opts, false)))
	reject(slog.New(slog.NewTextHandler(&want, opts)))
	if got.String() != want.String() || !strings.HasPrefix(got.String(), `time=T level=WARN msg="SPA packet rejected" src=192.0.2.7 reason="HMAC mismatch" stanza=1`) {
		t.Errorf("plain handler wrote %q, TextHandler %q", got.String(), want.String())
	}
}

func TestJournaldPriorities(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}, true))
	l.Debug("d")
	l.Info("i", "k", "v")
	reject(l)
	l.Error("e", "err", "boom")
	l.Log(context.Background(), slog.LevelInfo+2, "notice-ish")
	l.Log(context.Background(), slog.LevelError+4, "fatal-ish")
	l.With("table", "sesame").WithGroup("g").Warn("w", "n", 1)
	want := []string{
		`<7>level=DEBUG msg=d`,
		`<6>level=INFO msg=i k=v`,
		`<4>level=WARN msg="SPA packet rejected" src=192.0.2.7 reason="HMAC mismatch" stanza=1`,
		`<3>level=ERROR msg=e err=boom`,
		`<6>level=INFO+2 msg=notice-ish`,
		`<3>level=ERROR+4 msg=fatal-ish`,
		`<4>level=WARN msg=w table=sesame g.n=1`,
	}
	if got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("journald lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestJournaldLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}, true))
	l.Info("dropped")
	l.Warn("kept")
	if buf.String() != "<4>level=WARN msg=kept\n" {
		t.Errorf("got %q", buf.String())
	}
	if l.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Enabled(INFO) with level WARN")
	}
}

// TestJournaldConcurrent logs from many goroutines at every level: each line must carry
// exactly one prefix, the one of its own level (run with -race).
func TestJournaldConcurrent(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}, true))
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				lv := levels[(g+i)%4]
				l.Log(context.Background(), lv, "m", "pri", Priority(lv), "pad", strings.Repeat("x", i))
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*200 {
		t.Fatalf("%d lines, want %d", len(lines), 8*200)
	}
	for _, ln := range lines {
		var pri, field int
		if _, err := fmt.Sscanf(ln, "<%d>", &pri); err != nil {
			t.Fatalf("line without prefix: %q", ln)
		}
		i := strings.Index(ln, " pri=")
		if i < 0 || strings.Count(ln, "<") != 1 {
			t.Fatalf("mangled line: %q", ln)
		}
		fmt.Sscanf(ln[i:], " pri=%d", &field)
		if pri != field {
			t.Fatalf("prefix <%d> on a line logged at priority %d: %q", pri, field, ln)
		}
	}
}

// The detection tests run this test binary again with stderr on a file and JOURNAL_STREAM set,
// as systemd starts a unit with StandardError=journal.
const childEnv = "SESAME_LOGGING_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		l := New(os.Stderr, slog.LevelInfo)
		reject(l)
		l.Error("failed", "err", "x")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, journalStream func(st *syscall.Stat_t) string) string {
	t.Helper()
	f, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "JOURNAL_STREAM="+journalStream(&st))
	cmd.Stderr = f
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDetectJournal(t *testing.T) {
	got := runChild(t, func(st *syscall.Stat_t) string { return fmt.Sprintf("%d:%d", st.Dev, st.Ino) })
	want := "<4>level=WARN msg=\"SPA packet rejected\" src=192.0.2.7 reason=\"HMAC mismatch\" stanza=1\n<3>level=ERROR msg=failed err=x\n"
	if got != want {
		t.Errorf("stderr on the journal stream:\n%q\nwant\n%q", got, want)
	}
}

// TestNewOtherWriter checks that only stderr is taken for the journal: New on another
// writer keeps the plain format even when JOURNAL_STREAM matches stderr.
func TestNewOtherWriter(t *testing.T) {
	var st syscall.Stat_t
	if err := syscall.Fstat(2, &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !StderrIsJournal() {
		t.Fatal("StderrIsJournal is false with JOURNAL_STREAM naming stderr")
	}
	var buf bytes.Buffer
	reject(New(&buf, slog.LevelInfo))
	if !strings.HasPrefix(buf.String(), "time=") {
		t.Errorf("New on a buffer: %q", buf.String())
	}
}

func TestDetectNotJournal(t *testing.T) {
	for name, js := range map[string]func(*syscall.Stat_t) string{
		"other inode": func(st *syscall.Stat_t) string { return fmt.Sprintf("%d:%d", st.Dev, st.Ino+1) },
		"malformed":   func(*syscall.Stat_t) string { return "junk" },
		"empty":       func(*syscall.Stat_t) string { return "" },
	} {
		got := runChild(t, js)
		lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "time=") ||
			!strings.HasSuffix(lines[0], ` level=WARN msg="SPA packet rejected" src=192.0.2.7 reason="HMAC mismatch" stanza=1`) ||
			!strings.HasSuffix(lines[1], " level=ERROR msg=failed err=x") {
			t.Errorf("%s: stderr not the plain text format:\n%s", name, got)
			continue
		}
		ts := strings.TrimPrefix(strings.Fields(lines[0])[0], "time=")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("%s: time=%q: %v", name, ts, err)
		}
	}
}

// FuzzJournaldLine checks that, whatever the message and attributes, the journald handler
// writes one line: the prefix of the level, then exactly the text handler's line without time.
func FuzzJournaldLine(f *testing.F) {
	f.Add("SPA packet rejected", "src", "192.0.2.7", 4)
	f.Add("multi\nline", "k e y", "v\r\nx<3>", -4)
	f.Add("", "", "", 12)
	f.Fuzz(func(t *testing.T, msg, key, val string, level int) {
		lv := slog.Level(level)
		if lv < -100 {
			return // below the handlers' level: nothing is written
		}
		var got, want bytes.Buffer
		slog.New(NewHandler(&got, &slog.HandlerOptions{Level: slog.Level(-100)}, true)).Log(context.Background(), lv, msg, key, val)
		noTime := func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		slog.New(slog.NewTextHandler(&want, &slog.HandlerOptions{Level: slog.Level(-100), ReplaceAttr: noTime})).Log(context.Background(), lv, msg, key, val)
		prefix := fmt.Sprintf("<%d>", Priority(lv))
		if got.String() != prefix+want.String() {
			t.Fatalf("got %q, want %q", got.String(), prefix+want.String())
		}
		if strings.Count(got.String(), "\n") != 1 {
			t.Fatalf("not one line: %q", got.String())
		}
	})
}

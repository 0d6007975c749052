package demo

import (
	"strings"
	"testing"
)

func TestGrantLines(t *testing.T) {
	out := "# 1 live grant(s) in table inet sesame (server pid 7)\n  10.99.0.2 tcp/22 expires in 3s\n# guarded by table inet sesame: tcp/22\n"
	if got := grantLines(out); len(got) != 1 || got[0] != "10.99.0.2 tcp/22 expires in 3s" {
		t.Errorf("grantLines = %q", got)
	}
	if got := grantLines("# 0 live grant(s)\n# expires in the comment\n"); len(got) != 0 {
		t.Errorf("comment lines taken for grants: %q", got)
	}
}

func TestLogLine(t *testing.T) {
	c := &child{out: &syncBuffer{}}
	c.out.Write([]byte("a reason=replay src=1\nb reason=replay src=2\n"))
	if l, ok := logLine(c, 0, "reason=replay", "src=2"); !ok || l != "b reason=replay src=2" {
		t.Errorf("logLine = %q, %v", l, ok)
	}
	if _, ok := logLine(c, len("a reason=replay src=1\n"), "src=1"); ok {
		t.Error("logLine found a line before the offset")
	}
	if _, ok := logLine(c, 1000, "b"); ok {
		t.Error("logLine past the end found a line")
	}
}

func FuzzGrantLines(f *testing.F) {
	f.Add("# 1 live grant(s)\n10.99.0.2 tcp/22 expires in 3s\n")
	f.Fuzz(func(t *testing.T, out string) {
		for _, g := range grantLines(out) {
			if strings.HasPrefix(g, "#") || !strings.Contains(g, " expires in ") || strings.Contains(g, "\n") {
				t.Errorf("grant line %q", g)
			}
		}
	})
}

func FuzzLogLine(f *testing.F) {
	f.Add("x reason=replay\ny", 3, "reason=replay")
	f.Fuzz(func(t *testing.T, out string, skip int, want string) {
		c := &child{out: &syncBuffer{}}
		c.out.Write([]byte(out))
		if l, ok := logLine(c, skip, want); ok && (!strings.Contains(l, want) || strings.Contains(l, "\n") || l == "") {
			t.Errorf("logLine(%q, %d, %q) = %q", out, skip, want, l)
		}
	})
}

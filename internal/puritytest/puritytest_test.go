package puritytest

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that collects what Check reports.
type recorder struct {
	testing.TB
	errs  []string
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) { r.Fatalf("skipped: "+format, args...) }

// check runs Check with a recorder (in its own goroutine, so that Fatalf can end it).
func check(t *testing.T, dir string, r Rules) *recorder {
	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); Check(rec, dir, r) }()
	<-done
	if rec.fatal != "" {
		t.Fatalf("Check %s: %s", dir, rec.fatal)
	}
	return rec
}

var rules = Rules{
	StdOnly:   true,
	NoDeps:    []string{"net", "golang.org/x/sys/..."},
	NoImports: []string{"os", "time", "golang.org/x/..."},
}

// Each rule reports the package that breaks it; a package that keeps them gets no error.
func TestCheck(t *testing.T) {
	const impure = "github.com/sesame-spa/sesame/internal/puritytest/testdata/impure"
	got := check(t, "testdata/impure", rules).errs
	for _, want := range []string{
		impure + " depends on non-standard package golang.org/x/sys/cpu",
		impure + " depends (transitively) on net",
		impure + " depends (transitively) on golang.org/x/sys/cpu",
		impure + " imports os",
		impure + " imports golang.org/x/sys/cpu",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, strings.Join(got, "\n"))
		}
	}
	if len(got) != 5 {
		t.Errorf("%d errors, want 5:\n%s", len(got), strings.Join(got, "\n"))
	}
	if got := check(t, "testdata/pure", rules).errs; len(got) != 0 {
		t.Errorf("pure package: %q", got)
	}
	if got := check(t, "testdata/impure", Rules{}).errs; len(got) != 0 {
		t.Errorf("no rules: %q", got)
	}
}

func TestMatchAny(t *testing.T) {
	pats := []string{"net", "golang.org/x/sys/..."}
	for path, want := range map[string]bool{
		"net": true, "net/http": false, "netx": false,
		"golang.org/x/sys": true, "golang.org/x/sys/unix": true, "golang.org/x/sysfoo": false, "golang.org/x/net": false,
	} {
		if got := matchAny(pats, path); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
}

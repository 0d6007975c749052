// Package puritytest checks, from a package's own test, that a pure package keeps out of I/O:
// which packages it may import directly and which may appear anywhere in its dependency graph,
// as reported by "go list" (build dependencies only, not test ones).
package puritytest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Rules are what a package must not depend on. A pattern is an import path, or P/... for P
// and every package below it (as in go list).
type Rules struct {
	// StdOnly forbids every dependency outside the standard library but the package itself.
	StdOnly bool
	// NoDeps may appear nowhere in the dependency graph.
	NoDeps []string
	// NoImports may not be imported directly (they may appear transitively, through the
	// standard library's own imports).
	NoImports []string
}

// Check reports, as errors of t, each dependency of the package in dir that r forbids. It
// runs "go list" in dir; without the go tool it skips t, or fails it under CI=true.
func Check(t testing.TB, dir string, r Rules) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH: %v", err)
		}
		t.Skipf("go tool not on PATH: %v", err)
	}
	list := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(goBin, append(append([]string{"list"}, args...), ".")...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v in %s: %v\n%s", args, dir, err, out)
		}
		return strings.Fields(string(out))
	}
	self := strings.Join(list("-f", "{{.ImportPath}}"), " ")
	if r.StdOnly {
		for _, p := range list("-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}") {
			if p != self {
				t.Errorf("%s depends on non-standard package %s", self, p)
			}
		}
	}
	if len(r.NoDeps) > 0 {
		for _, p := range list("-deps") {
			if matchAny(r.NoDeps, p) {
				t.Errorf("%s depends (transitively) on %s", self, p)
			}
		}
	}
	for _, p := range list("-f", `{{join .Imports " "}}`) {
		if matchAny(r.NoImports, p) {
			t.Errorf("%s imports %s", self, p)
		}
	}
}

// matchAny reports whether path matches one of patterns.
func matchAny(patterns []string, path string) bool {
	for _, pat := range patterns {
		if base, ok := strings.CutSuffix(pat, "/..."); ok {
			if path == base || strings.HasPrefix(path, base+"/") {
				return true
			}
		} else if path == pat {
			return true
		}
	}
	return false
}

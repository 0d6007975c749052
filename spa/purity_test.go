package spa

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPurity keeps spa a pure protocol package: standard library only, no I/O packages
// imported, and no network or process packages anywhere in its dependency graph. (os and
// syscall do appear transitively, through fmt and the crypto packages' internals, so for
// those only direct imports are checked.)
func TestPurity(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH: %v", err)
		}
		t.Skipf("go tool not on PATH: %v", err)
	}
	list := func(args ...string) []string {
		out, err := exec.Command(goBin, append([]string{"list"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %v: %v\n%s", args, err, out)
		}
		return strings.Fields(string(out))
	}
	const self = "github.com/sesame-spa/sesame/spa"
	for _, p := range list("-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".") {
		if p != self {
			t.Errorf("spa depends on non-standard package %s", p)
		}
	}
	neverDeps := map[string]bool{"net": true, "os/exec": true, "net/http": true, "unsafe": false}
	for _, p := range list("-deps", ".") {
		if neverDeps[p] || strings.HasPrefix(p, "golang.org/x/sys") {
			t.Errorf("spa depends (transitively) on %s", p)
		}
	}
	noDirect := map[string]bool{"os": true, "os/exec": true, "net": true, "syscall": true,
		"unsafe": true, "io/fs": true, "time": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true}
	for _, p := range list("-f", `{{join .Imports " "}}`, ".") {
		if noDirect[p] || strings.HasPrefix(p, "golang.org/x/") {
			t.Errorf("spa imports %s", p)
		}
	}
}

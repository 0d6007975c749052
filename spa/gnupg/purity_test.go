package gnupg

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestPurity keeps gnupg pure like spa: no I/O, clock or randomness packages imported
// directly (keys, the clock and the random source are passed in), and no network or process
// packages anywhere in its dependencies.
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
	for _, p := range list("-deps", ".") {
		if p == "net" || p == "os/exec" || p == "net/http" {
			t.Errorf("gnupg depends (transitively) on %s", p)
		}
	}
	noDirect := map[string]bool{"os": true, "os/exec": true, "net": true, "syscall": true,
		"unsafe": true, "io/fs": true, "math/rand": true, "math/rand/v2": true, "crypto/rand": true}
	for _, p := range list("-f", `{{join .Imports " "}}`, ".") {
		if noDirect[p] {
			t.Errorf("gnupg imports %s", p)
		}
	}
}

package spa

import (
	"testing"

	"github.com/sesame-spa/sesame/internal/puritytest"
)

// TestPurity keeps spa a pure protocol package: standard library only, no I/O packages
// imported, and no network or process packages anywhere in its dependency graph. (os and
// syscall do appear transitively, through fmt and the crypto packages' internals, so for
// those only direct imports are checked.)
func TestPurity(t *testing.T) {
	puritytest.Check(t, ".", puritytest.Rules{
		StdOnly: true,
		NoDeps:  []string{"net", "os/exec", "net/http", "golang.org/x/sys/..."},
		NoImports: []string{"os", "os/exec", "net", "syscall", "unsafe", "io/fs", "time",
			"math/rand", "math/rand/v2", "crypto/rand", "golang.org/x/..."},
	})
}

package gnupg

import (
	"testing"

	"github.com/sesame-spa/sesame/internal/puritytest"
)

// TestPurity keeps gnupg pure like spa: no I/O, clock or randomness packages imported
// directly (keys, the clock and the random source are passed in), and no network or process
// packages anywhere in its dependencies.
func TestPurity(t *testing.T) {
	puritytest.Check(t, ".", puritytest.Rules{
		NoDeps: []string{"net", "os/exec", "net/http"},
		NoImports: []string{"os", "os/exec", "net", "syscall", "unsafe", "io/fs",
			"math/rand", "math/rand/v2", "crypto/rand"},
	})
}

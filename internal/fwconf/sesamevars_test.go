package fwconf

import (
	"strings"
	"testing"
)

// TestSesameVarsMatchVariables: SesameVars documents every SESAME_* variable of Variables once,
// and nothing else, with the default Variables has where Variables has one.
func TestSesameVarsMatchVariables(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range SesameVars {
		v, ok := Variables[d.Name]
		switch {
		case !ok:
			t.Errorf("SesameVars has %s, Variables does not", d.Name)
		case seen[d.Name]:
			t.Errorf("SesameVars has %s twice", d.Name)
		case v.Default != "" && v.Default != d.Default:
			t.Errorf("%s: default %q in SesameVars, %q in Variables", d.Name, d.Default, v.Default)
		case strings.TrimSpace(d.Meaning) == "":
			t.Errorf("%s: no meaning", d.Name)
		}
		seen[d.Name] = true
	}
	for name := range Variables {
		if strings.HasPrefix(name, "SESAME_") && !seen[name] {
			t.Errorf("Variables has %s, SesameVars does not document it", name)
		}
	}
}

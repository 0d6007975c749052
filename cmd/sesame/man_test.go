package main

import (
	"testing"

	"github.com/sesame-spa/sesame/internal/manpage"
)

// TestManPagesCoverEveryCommand: the man pages (internal/manpage) document exactly the
// registered commands, with the summaries "sesame help" prints.
func TestManPagesCoverEveryCommand(t *testing.T) {
	cmds, err := manpage.Commands()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range cmds {
		reg, ok := commands[c.Name]
		switch {
		case !ok:
			t.Errorf("the man pages document %q, which is not registered", c.Name)
		case reg.usage != c.Summary:
			t.Errorf("%s: summary %q in the man pages, %q registered", c.Name, c.Summary, reg.usage)
		}
		seen[c.Name] = true
	}
	for name := range commands {
		if !seen[name] {
			t.Errorf("command %q is registered but not in the man pages (internal/manpage/commands.go)", name)
		}
	}
}

// Package decode implements the "sesame decode" subcommand.
package decode

import (
	"fmt"
	"io"
)

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sesame decode: not implemented yet")
	return 2
}

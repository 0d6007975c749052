// Package keygen implements the "sesame keygen" subcommand.
package keygen

import (
	"fmt"
	"io"
)

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "sesame keygen: not implemented yet")
	return 2
}

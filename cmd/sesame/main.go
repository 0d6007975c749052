// Command sesame hides network services behind Single Packet Authorization (fwknop 2.6
// compatible) and TCP-MD5 signatures. See README.md.
//
// Invoked as "fwknop" it behaves as "sesame knock"; invoked as "fwknopd" it behaves as
// "sesame server", so it can be symlinked in place of Debian's binaries.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/sesame-spa/sesame/internal/version"
)

// A command runs one subcommand with the arguments after its name and returns the exit code.
type command struct {
	run   func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
	usage string
}

var commands = map[string]command{}

func register(name, usage string, run func([]string, io.Reader, io.Writer, io.Writer) int) {
	commands[name] = command{run: run, usage: usage}
}

func main() {
	os.Exit(dispatch(filepath.Base(os.Args[0]), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(argv0 string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch argv0 {
	case "fwknop":
		return commands["knock"].run(args, stdin, stdout, stderr)
	case "fwknopd":
		return commands["server"].run(args, stdin, stdout, stderr)
	}
	if len(args) > 0 && (args[0] == "--version" || args[0] == "version") {
		fmt.Fprintln(stdout, version.String("sesame"))
		return 0
	}
	// "sesame CMD --version" for the subcommands whose own flags have no version.
	if len(args) == 2 && args[1] == "--version" && args[0] != "server" && args[0] != "knock" {
		if _, ok := commands[args[0]]; ok {
			fmt.Fprintln(stdout, version.String("sesame "+args[0]))
			return 0
		}
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sesame: unknown command %q (run 'sesame help' for the list)\n", args[0])
		return 2
	}
	return c.run(args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: sesame COMMAND [ARGS]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(w, "\nInvoked as fwknop or fwknopd, sesame acts as 'sesame knock' or 'sesame server'.")
}

// Package manpage renders sesame's manual pages in roff (man(7) macros) from the command
// definitions themselves: each subcommand's real pflag.FlagSet and --help text, and the
// configuration variable tables of internal/fwconf. Nothing in the pages is a second copy of a
// flag or a variable: a flag added to a command appears in sesame(1) the next time the pages
// are generated.
//
// The pages are sesame(1) (every subcommand with its synopsis, description and flags),
// sesame-server(8) (the server) and sesame.conf(5) (the fwknopd.conf and access.conf variables
// with what sesame does with each, and sesame's own SESAME_* variables). Generate them with
//
//	go run ./internal/manpage/gen -version VERSION -date YYYY-MM-DD DIR
//
// The output depends only on its inputs (no clock), so packages built from one commit are
// reproducible.
package manpage

package sshproxy

import "github.com/spf13/pflag"

// FlagSet returns a new copy of the flags Main accepts, defined by the same code, with their
// defaults (for the man pages).
func FlagSet() *pflag.FlagSet {
	fs, _, _, _, _, _, _ := flagSet()
	return fs
}

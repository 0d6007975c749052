package knock

import "github.com/spf13/pflag"

// FlagSet returns a new copy of the flags Main accepts, defined by the same code, with their
// defaults (for the man pages). fwknop options sesame does not implement are hidden flags.
func FlagSet() *pflag.FlagSet { return newFlags().fs }

package connect

import (
	"io"

	"github.com/spf13/pflag"
)

// FlagSet returns a new copy of the flags Main accepts, defined by the same code, with their
// defaults (for the man pages). Its usage output is discarded.
func FlagSet() *pflag.FlagSet { return flagSet(&options{}, io.Discard) }

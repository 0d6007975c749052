// Package pure keeps every rule of puritytest's test.
package pure

import "strings"

var _ = strings.ToUpper

// Package impure breaks every rule of puritytest's test.
package impure

import (
	"net"
	"os"

	"golang.org/x/sys/cpu"
)

var _, _, _ = net.IPv4len, os.Args, cpu.X86

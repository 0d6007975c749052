package shield

import (
	"fmt"
	"net"
	"net/netip"
)

// ListenNetwork returns the network ("tcp4", "tcp6" or "tcp") to listen on addr
// ("HOST:PORT") with, so that the address means what an operator reads in it:
// "0.0.0.0:PORT" (or any IPv4 address) is IPv4 only, "[::]:PORT" and ":PORT" are both
// IPv4 and IPv6 (one dual-stack socket), and another IPv6 address is IPv6 only. A host
// name is left to the resolver ("tcp"). Go alone would make "0.0.0.0:PORT" a dual-stack
// socket too.
func ListenNetwork(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if host == "" {
		return "tcp", nil
	}
	a, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return "tcp", nil
	case a.Is4() || a.Is4In6():
		return "tcp4", nil
	case a.IsUnspecified():
		return "tcp", nil
	}
	return "tcp6", nil
}

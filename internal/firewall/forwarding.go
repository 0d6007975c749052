package firewall

import (
	"fmt"
	"os"
	"strings"
)

// Forwarding sysctls (Documentation/networking/ip-sysctl.rst). They are per network namespace;
// /proc/sys/net shows the namespace of the calling thread.
const (
	sysctlForward4 = "/proc/sys/net/ipv4/ip_forward"
	sysctlForward6 = "/proc/sys/net/ipv6/conf/all/forwarding"
)

// ForwardingOff reports whether the kernel forwards IPv4 and IPv6 in the calling thread's
// network namespace: v4off is true when net.ipv4.ip_forward is 0, v6off when
// net.ipv6.conf.all.forwarding is 0 (or IPv6 is disabled, so the file is missing). Forward grants
// of a family whose forwarding is off DNAT packets that the kernel then drops; the server warns
// at start. The error reports an unreadable net.ipv4.ip_forward.
func ForwardingOff() (v4off, v6off bool, err error) {
	return forwardingOff(os.ReadFile)
}

func forwardingOff(read func(string) ([]byte, error)) (v4off, v6off bool, err error) {
	b, err := read(sysctlForward4)
	if err != nil {
		return false, false, fmt.Errorf("read net.ipv4.ip_forward: %w", err)
	}
	v4off = strings.TrimSpace(string(b)) == "0"
	b, err = read(sysctlForward6)
	v6off = err != nil || strings.TrimSpace(string(b)) == "0"
	return v4off, v6off, nil
}

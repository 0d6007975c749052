// Package firewall opens and closes access for SPA grants. The nftables backend keeps grants as
// set elements with per-element timeouts, so the kernel closes access on time even if sesame dies.
package firewall

import (
	"context"
	"net/netip"
	"time"
)

// Grant is access for one source address to one protocol and port, for Timeout from now.
type Grant struct {
	Src     netip.Addr    // the address allowed (IPv4 or IPv6)
	Proto   uint8         // 6 (tcp) or 17 (udp)
	Port    uint16        // destination port
	Timeout time.Duration // how long from now
}

// Entry is a live grant as read back from the firewall.
type Entry struct {
	Grant
	Expires time.Duration // time left
}

// Backend is a firewall that sesame can grant access through.
type Backend interface {
	// Init creates or adopts sesame's firewall state. It is idempotent and keeps live grants.
	Init(ctx context.Context) error
	// Grant adds access, or refreshes the timeout of an existing identical grant.
	Grant(ctx context.Context, g Grant) error
	// Revoke removes a grant before it expires.
	Revoke(ctx context.Context, g Grant) error
	// List returns the live grants with their time left.
	List(ctx context.Context) ([]Entry, error)
	// Flush removes everything sesame created: tables, sets, and hooks in the host's chains.
	Flush(ctx context.Context) error
	// Close releases the backend without removing grants (they expire in the kernel).
	Close() error
}

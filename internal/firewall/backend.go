package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Grant is access for one source address to one protocol and port, for Timeout from now.
type Grant struct {
	Src     netip.Addr    // the address allowed (IPv4 or IPv6)
	Proto   uint8         // 6 (tcp) or 17 (udp)
	Port    uint16        // destination port
	Timeout time.Duration // how long from now
	Stanza  int           // the access.conf stanza that granted it (0: none); recorded, not sent to the kernel
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
	// Grant adds access, leaving it exactly g.Timeout to live.
	Grant(ctx context.Context, g Grant) error
	// GrantMany is Grant for many grants, in as few transactions as the backend can.
	GrantMany(ctx context.Context, gs []Grant) error
	// Revoke removes a grant before it expires. Revoking a grant that does not exist (or has
	// already expired) is not an error.
	Revoke(ctx context.Context, g Grant) error
	// RevokeAll removes every grant; the guard and the hooks stay.
	RevokeAll(ctx context.Context) error
	// List returns the live grants with their time left.
	List(ctx context.Context) ([]Entry, error)
	// Check lists what is missing from the backend's state in the kernel (none: intact).
	Check(ctx context.Context) ([]string, error)
	// Heal re-creates what Check finds missing, keeping live grants.
	Heal(ctx context.Context) error
	// Remove deletes everything sesame created: tables, sets, and hooks in the host's chains.
	// It is the uninstall step: afterwards the guarded ports are no longer guarded.
	Remove(ctx context.Context) error
	// Close releases the backend. Guard, hooks and grants stay (grants expire in the kernel).
	Close() error
}

// Protocol numbers a Grant or Port may carry.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// ErrInvalidGrant is returned (wrapped) for a grant with a bad address, protocol, port or
// timeout.
var ErrInvalidGrant = errors.New("invalid grant")

// ErrNotInitialized is returned by the Fake when a grant is used before Init.
var ErrNotInitialized = errors.New("firewall not initialized")

// MaxTimeout is the longest grant accepted; the kernel stores element timeouts in
// milliseconds, and a day is far beyond any SPA access window.
const MaxTimeout = 24 * time.Hour

// Validate reports whether g can be granted: a valid address (an IPv4-mapped IPv6 address
// counts as IPv4), TCP or UDP, a non-zero port, and a timeout from 1 ms to MaxTimeout.
// Revoke ignores the timeout.
func (g Grant) Validate() error {
	if err := g.validateKey(); err != nil {
		return err
	}
	if g.Timeout < time.Millisecond || g.Timeout > MaxTimeout {
		return fmt.Errorf("%w: timeout %v not in [1ms, %v]", ErrInvalidGrant, g.Timeout, MaxTimeout)
	}
	return nil
}

func (g Grant) validateKey() error {
	if !g.Src.IsValid() {
		return fmt.Errorf("%w: no source address", ErrInvalidGrant)
	}
	if g.Proto != ProtoTCP && g.Proto != ProtoUDP {
		return fmt.Errorf("%w: protocol %d is not tcp (6) or udp (17)", ErrInvalidGrant, g.Proto)
	}
	if g.Port == 0 {
		return fmt.Errorf("%w: port 0", ErrInvalidGrant)
	}
	return nil
}

// String formats g as "src proto/port".
func (g Grant) String() string {
	return fmt.Sprintf("%s %s/%d", g.Src.Unmap(), protoName(g.Proto), g.Port)
}

func protoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

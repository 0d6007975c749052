package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Grant is access for one source address to one protocol and port, for Timeout from now. The
// zero Kind is Access; Forward and LocalNAT grants (fwknopd's NAT message types) also use the
// NAT fields, see Kind. An access grant with Dst opens the port only for packets to that
// address (fwknopd's ENABLE_DESTINATION_RULE); the zero Dst is any destination. A grant's
// identity (what Revoke, the ledger and the kernel's elements key on) is Src, Dst, Proto, Port,
// Kind, NATAddr, NATPort and ForwardAll; SNAT, Masquerade and
// DisableDNAT are values that a later grant of the same identity replaces.
type Grant struct {
	Src     netip.Addr    // the address allowed (IPv4 or IPv6)
	Proto   uint8         // 6 (tcp) or 17 (udp); 0 for ForwardAll
	Port    uint16        // destination port on this host (the access port of a NAT grant); 0 for ForwardAll
	Timeout time.Duration // how long from now
	Stanza  int           // the access.conf stanza that granted it (0: none); recorded, not sent to the kernel
	Dst     netip.Addr    // Access only: the destination address allowed, of Src's family; zero: any

	Kind        Kind
	NATAddr     netip.Addr // Forward: the host forwarded to; LocalNAT: this host's address to DNAT to
	NATPort     uint16     // the port on NATAddr
	SNAT        netip.Addr // Forward: rewrite the forwarded flow's source to this address
	Masquerade  bool       // Forward: rewrite the source to the outgoing interface's address
	DisableDNAT bool       // Forward: no DNAT; the client connects to NATAddr:NATPort itself (Port must equal NATPort)
	ForwardAll  bool       // Forward: forward everything from Src (no Proto, Port or NAT target)
}

// Kind is what a Grant opens.
type Kind uint8

const (
	// Access (fwknopd message types 1 and 3) lets Src reach Proto/Port on this host.
	Access Kind = iota
	// Forward (types 2 and 4, ENABLE_IPT_FORWARDING) lets Src's packets to Proto/Port on this host
	// be DNATed to NATAddr:NATPort (unless DisableDNAT) and forwarded there, optionally with
	// their source rewritten (SNAT or Masquerade). With ForwardAll it forwards everything from
	// Src instead (FORWARD_ALL), with no DNAT.
	Forward
	// LocalNAT (types 5 and 6, ENABLE_IPT_LOCAL_NAT) DNATs Src's packets for Proto/Port to
	// NATAddr:NATPort on this host and lets them in there (only through that DNAT).
	LocalNAT
)

// String returns "access", "forward" or "local-nat".
func (k Kind) String() string {
	switch k {
	case Access:
		return "access"
	case Forward:
		return "forward"
	case LocalNAT:
		return "local-nat"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind parses what Kind.String returns.
func ParseKind(s string) (Kind, bool) {
	for k := Access; k <= LocalNAT; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// Ident returns g's identity: g without its timeout, stanza and values (SNAT, Masquerade,
// DisableDNAT), with Src unmapped. Two grants with the same Ident are the same grant.
func (g Grant) Ident() Grant {
	g.Src = g.Src.Unmap().WithZone("")
	g.Dst = g.Dst.Unmap().WithZone("")
	g.NATAddr = g.NATAddr.Unmap().WithZone("")
	g.Timeout, g.Stanza = 0, 0
	g.SNAT, g.Masquerade, g.DisableDNAT = netip.Addr{}, false, false
	return g
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

// Host is the firewall a server runs on a host: a Backend that may own its table, hooks the
// host's own chains that would drop granted packets, and can see other sesame servers' tables.
type Host interface {
	Backend
	// Owned reports whether Init made the table owned (no other process can change it).
	Owned() bool
	// HostChains returns the host chains Init and Heal hook.
	HostChains() []HostChain
	// SetHostChains replaces them (taking effect at the next Init or Heal).
	SetHostChains([]HostChain)
	// PeerTables returns the guarded ports of other sesame servers' tables, by table name.
	PeerTables(ctx context.Context) (map[string][]Port, error)
}

var _ Host = (*Nftables)(nil)

// Open returns the firewall cfg describes. There is one kind today, nftables (NewNftables);
// wrappers and other kinds are chosen here, so the commands never name a concrete type.
func Open(cfg Config) (Host, error) {
	n, err := NewNftables(cfg)
	if err != nil {
		return nil, err // not a Host holding a nil *Nftables
	}
	return n, nil
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
// counts as IPv4), a Dst (if any) of the same family and not unspecified, TCP or UDP, a non-zero port, and a timeout from 1 ms to MaxTimeout. NAT
// kinds also need: a NATAddr of Src's family and a non-zero NATPort (Forward without
// ForwardAll, LocalNAT); Port == NATPort with DisableDNAT; no Proto, Port or NAT target with
// ForwardAll; SNAT of Src's family and not with Masquerade (Forward only). Revoke ignores the
// timeout and the values.
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
	if err := g.validateNAT(); err != nil {
		return err
	}
	if g.Dst.IsValid() {
		if g.Kind != Access {
			return fmt.Errorf("%w: %s grant with a destination address", ErrInvalidGrant, g.Kind)
		}
		if d := g.Dst.Unmap(); d.Is4() != isV4(g.Src) || d.IsUnspecified() {
			return fmt.Errorf("%w: destination %s is not a specified address of the source's family", ErrInvalidGrant, g.Dst)
		}
	}
	if g.ForwardAll {
		return nil
	}
	if g.Proto != ProtoTCP && g.Proto != ProtoUDP {
		return fmt.Errorf("%w: protocol %d is not tcp (6) or udp (17)", ErrInvalidGrant, g.Proto)
	}
	if g.Port == 0 {
		return fmt.Errorf("%w: port 0", ErrInvalidGrant)
	}
	return nil
}

// validateNAT checks the NAT fields against the kind.
func (g Grant) validateNAT() error {
	bad := func(why string) error { return fmt.Errorf("%w: %s grant: %s", ErrInvalidGrant, g.Kind, why) }
	v4 := isV4(g.Src)
	switch g.Kind {
	case Access:
		if g.NATAddr.IsValid() || g.NATPort != 0 || g.SNAT.IsValid() || g.Masquerade || g.DisableDNAT || g.ForwardAll {
			return bad("NAT fields set")
		}
		return nil
	case Forward, LocalNAT:
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrInvalidGrant, g.Kind)
	}
	if g.Kind == LocalNAT && (g.SNAT.IsValid() || g.Masquerade || g.DisableDNAT || g.ForwardAll) {
		return bad("SNAT, Masquerade, DisableDNAT or ForwardAll set")
	}
	if g.SNAT.IsValid() {
		a := g.SNAT.Unmap()
		if a.Is4() != v4 || a.IsUnspecified() || a == allOnes(v4) {
			return bad("SNAT address " + g.SNAT.String() + " is not a usable address of the source's family")
		}
		if g.Masquerade {
			return bad("both SNAT and Masquerade")
		}
	}
	if g.ForwardAll {
		if g.Proto != 0 || g.Port != 0 || g.NATAddr.IsValid() || g.NATPort != 0 || g.DisableDNAT {
			return bad("ForwardAll with a protocol, port or NAT target")
		}
		return nil
	}
	if !g.NATAddr.IsValid() || g.NATAddr.Unmap().Is4() != v4 || g.NATAddr.IsUnspecified() {
		return bad("NAT address " + g.NATAddr.String() + " missing or not of the source's family")
	}
	if g.NATPort == 0 {
		return bad("NAT port 0")
	}
	if g.DisableDNAT && g.Port != g.NATPort {
		return bad("DisableDNAT with a port other than the NAT port")
	}
	return nil
}

// allOnes is 255.255.255.255 or ffff:...:ffff, the SNAT value that means masquerade.
func allOnes(v4 bool) netip.Addr {
	if v4 {
		return netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	var b [16]byte
	for i := range b {
		b[i] = 0xff
	}
	return netip.AddrFrom16(b)
}

// String formats g as "src proto/port", with the kind and NAT target for NAT grants
// ("src tcp/55000 forward 10.0.0.5:22 masquerade"), and " to DST" for a grant with Dst.
func (g Grant) String() string {
	s := fmt.Sprintf("%s %s/%d", g.Src.Unmap(), protoName(g.Proto), g.Port)
	if g.Kind == Access {
		if g.Dst.IsValid() {
			s += " to " + g.Dst.Unmap().String()
		}
		return s
	}
	if g.ForwardAll {
		s = g.Src.Unmap().String() + " forward all"
	} else {
		s += " " + g.Kind.String() + " " + netip.AddrPortFrom(g.NATAddr.Unmap(), g.NATPort).String()
	}
	switch {
	case g.DisableDNAT:
		s += " no-dnat"
	}
	switch {
	case g.Masquerade:
		s += " masquerade"
	case g.SNAT.IsValid():
		s += " snat " + g.SNAT.Unmap().String()
	}
	return s
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

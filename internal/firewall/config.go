package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Defaults for Config.
const (
	DefaultTableName = "sesame"
	// DefaultMark is the packet-mark bit sesame sets on granted packets. It is one bit, so it
	// coexists with other users of the mark that use other bits (tailscale 0xff0000, kube-proxy
	// 0x4000/0x8000).
	DefaultMark uint32 = 0x10000000
)

// Port is a protocol and destination port, such as tcp/22.
type Port struct {
	Proto uint8  // ProtoTCP or ProtoUDP
	Port  uint16 // 1-65535
}

// String formats p as "tcp/22".
func (p Port) String() string { return protoName(p.Proto) + "/" + strconv.Itoa(int(p.Port)) }

// ErrBadConfig is returned (wrapped) for unparsable or inconsistent configuration.
var ErrBadConfig = errors.New("bad firewall config")

// ParsePort parses "tcp/22" or "udp/53" (protocol names are case-insensitive).
func ParsePort(s string) (Port, error) {
	proto, port, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Port{}, fmt.Errorf("%w: port %q is not PROTO/PORT", ErrBadConfig, s)
	}
	var p Port
	switch strings.ToLower(proto) {
	case "tcp":
		p.Proto = ProtoTCP
	case "udp":
		p.Proto = ProtoUDP
	default:
		return Port{}, fmt.Errorf("%w: port %q: protocol is not tcp or udp", ErrBadConfig, s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Port{}, fmt.Errorf("%w: port %q: number not in 1-65535", ErrBadConfig, s)
	}
	p.Port = uint16(n)
	return p, nil
}

// ParsePorts parses a list such as "tcp/22, tcp/5432" (separated by commas and/or spaces, as
// SESAME_GUARD_PORTS is written). Duplicates are dropped; an empty string gives no ports.
func ParsePorts(s string) ([]Port, error) {
	var ports []Port
	seen := map[Port]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		p, err := ParsePort(f)
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// HostKind says how sesame hooks into a host firewall that drops by itself.
type HostKind int

const (
	HostNone     HostKind = iota // no host chain: only sesame's own table
	HostIPTables                 // a rule at the top of iptables' and ip6tables' INPUT chains
	HostNft                      // a rule at the top of an nftables chain, via netlink
)

// HostChain is a parsed Config.HostChain.
type HostChain struct {
	Kind   HostKind
	Legacy bool   // HostIPTables: through iptables-legacy and ip6tables-legacy
	Family string // HostNft: "ip", "ip6" or "inet"
	Table  string // HostNft
	Chain  string // HostNft
}

// binaries are the programs a HostIPTables hook runs.
func (h HostChain) binaries() []string {
	if h.Legacy {
		return []string{"iptables-legacy", "ip6tables-legacy"}
	}
	return []string{"iptables", "ip6tables"}
}

// ParseHostChain parses Config.HostChain: "" (none), "iptables", "iptables-legacy", or "nft
// FAMILY TABLE CHAIN" (for example "nft inet filter input"). "nft:inet filter input" is
// accepted too.
func ParseHostChain(s string) (HostChain, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return HostChain{}, nil
	}
	if s == "iptables" {
		return HostChain{Kind: HostIPTables}, nil
	}
	if s == "iptables-legacy" {
		return HostChain{Kind: HostIPTables, Legacy: true}, nil
	}
	f := strings.Fields(strings.Replace(s, ":", " ", 1))
	if len(f) != 4 || f[0] != "nft" {
		return HostChain{}, fmt.Errorf("%w: host chain %q is not \"iptables\" or \"nft FAMILY TABLE CHAIN\"", ErrBadConfig, s)
	}
	switch f[1] {
	case "ip", "ip6", "inet":
	default:
		return HostChain{}, fmt.Errorf("%w: host chain %q: family must be ip, ip6 or inet", ErrBadConfig, s)
	}
	for _, name := range f[2:] {
		if !validName(name) {
			return HostChain{}, fmt.Errorf("%w: host chain %q: bad name %q", ErrBadConfig, s, name)
		}
	}
	return HostChain{Kind: HostNft, Family: f[1], Table: f[2], Chain: f[3]}, nil
}

// String formats h the way ParseHostChain reads it.
func (h HostChain) String() string {
	switch h.Kind {
	case HostIPTables:
		if h.Legacy {
			return "iptables-legacy"
		}
		return "iptables"
	case HostNft:
		return "nft " + h.Family + " " + h.Table + " " + h.Chain
	}
	return ""
}

// ValidTableName returns an error (ErrBadConfig) unless s can name sesame's table.
func ValidTableName(s string) error {
	if !validName(s) {
		return fmt.Errorf("%w: table name %q: 1-255 letters, digits, '_', '-' or '.'", ErrBadConfig, s)
	}
	return nil
}

// validName accepts nftables table/chain names: 1-255 bytes of letters, digits, '_', '-', '.'.
func validName(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Config configures the nftables backend. The zero value is usable: table "sesame", no guarded
// ports, no host chain, mark DefaultMark, the caller's network namespace.
type Config struct {
	// TableName is sesame's inet table (default "sesame").
	TableName string
	// GuardPorts are dropped in sesame's guard chain unless granted (SESAME_GUARD_PORTS). With
	// none, sesame adds no guard chain and only opens ports in a host that drops by itself.
	GuardPorts []Port
	// GuardLoopback also guards connections arriving on lo. By default loopback is exempt: a
	// local client cannot send an SPA packet that names 127.0.0.1 usefully, and guarding lo
	// breaks local services (ssh from the host to itself, health checks).
	GuardLoopback bool
	// HostChain hooks grants into the host's own dropping firewall: "" (none), "iptables", or
	// "nft FAMILY TABLE CHAIN". See ParseHostChain.
	HostChain string
	// HostChains are more host chains to hook (for example those internal/hostfw detected).
	HostChains []HostChain
	// NoOwner keeps the table unowned even where the kernel supports owned, persistent tables
	// (the fallback path of older kernels, for tests; see the package doc).
	NoOwner bool
	// Mark is the packet-mark bits set on granted packets (default DefaultMark). The host hook
	// accepts packets with mark&Mark == Mark.
	Mark uint32
	// NAT adds the NAT and forwarding sets and chains (package doc, "NAT and forwarding"), so
	// Forward and LocalNAT grants can be made (ENABLE_IPT_FORWARDING, ENABLE_IPT_LOCAL_NAT).
	// Without it such grants fail with ErrNATDisabled, and Init removes NAT objects a previous
	// run left. It needs Linux 6.3 (ErrNATUnsupported).
	NAT bool
	// ForwardGuard (with NAT) drops forwarded new connections to these destinations unless
	// granted (a Forward grant marks them), in sesame's chain fwd_guard: without it, whether
	// ungranted traffic is forwarded to a NAT target directly is the host's forwarding policy.
	ForwardGuard []netip.Prefix
	// NetNSFd, if non-zero, is an open network-namespace file descriptor to work in instead of
	// the caller's namespace (for netlink and for the iptables binaries).
	NetNSFd int
}

func (c Config) withDefaults() (Config, []HostChain, error) {
	if c.TableName == "" {
		c.TableName = DefaultTableName
	}
	if !validName(c.TableName) {
		return c, nil, fmt.Errorf("%w: table name %q", ErrBadConfig, c.TableName)
	}
	if c.Mark == 0 {
		c.Mark = DefaultMark
	}
	for _, p := range c.GuardPorts {
		if (p.Proto != ProtoTCP && p.Proto != ProtoUDP) || p.Port == 0 {
			return c, nil, fmt.Errorf("%w: guard port %v", ErrBadConfig, p)
		}
	}
	for _, p := range c.ForwardGuard {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "" || !c.NAT {
			return c, nil, fmt.Errorf("%w: forward guard %v (needs a valid prefix and NAT)", ErrBadConfig, p)
		}
	}
	h, err := ParseHostChain(c.HostChain)
	if err != nil {
		return c, nil, err
	}
	hosts := dedupHosts(append([]HostChain{h}, c.HostChains...))
	for _, h := range hosts {
		if h.Kind == HostNft && h.Table == c.TableName && h.Family == "inet" {
			return c, nil, fmt.Errorf("%w: host chain %q is inside sesame's own table", ErrBadConfig, h)
		}
	}
	return c, hosts, nil
}

// dedupHosts drops HostNone entries and duplicates, keeping the order.
func dedupHosts(hs []HostChain) []HostChain {
	var out []HostChain
	seen := map[HostChain]bool{}
	for _, h := range hs {
		if h.Kind == HostNone || seen[h] {
			continue
		}
		seen[h] = true
		out = append(out, h)
	}
	return out
}

package knock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrResolve: the server name does not resolve (in the requested family).
var ErrResolve = errors.New("cannot resolve SPA server")

// Transports (-P).
const (
	ProtoUDP    = "udp"
	ProtoTCP    = "tcp"
	ProtoHTTP   = "http"
	ProtoICMP   = "icmp"
	ProtoUDPRaw = "udpraw"
	ProtoTCPRaw = "tcpraw"
)

// Target says where and how to send a packet.
type Target struct {
	Server     string // -D as given (name or address); also the HTTP Host header
	Port       int    // destination port (not used by icmp)
	Proto      string // ProtoUDP (default), ProtoTCP, ProtoHTTP, ProtoICMP, ProtoUDPRaw, ProtoTCPRaw
	SourcePort int    // -S; 0 = any (udpraw, tcpraw: random)
	// SpoofSource is -Q: the IPv4 source address written into raw packets (ProtoUDPRaw,
	// ProtoTCPRaw, ProtoICMP); invalid: the kernel's choice.
	SpoofSource netip.Addr
	Family      int    // 4, 6 or 0 (prefer IPv4, as fwknop)
	HTTPProxy   string // -H host[:port] (default port 8080)
	UserAgent   string // -u; "" = "Fwknop/2.6.10"
	ICMPType    int
	ICMPCode    int
}

// Sender sends one SPA packet. NetSender is the real one; tests may use a fake.
type Sender interface {
	Send(ctx context.Context, t Target, wire string) (Sent, error)
}

// Sent describes what went out.
type Sent struct {
	Dest  netip.AddrPort // resolved destination (port 0 for ICMP, the proxy for -H)
	Bytes int            // payload bytes written
}

// NetSender sends over the host's network stack. The zero value is ready to use.
type NetSender struct {
	Resolver    *net.Resolver // nil: net.DefaultResolver
	DialTimeout time.Duration // TCP/HTTP connect timeout; 0 = 5 s
}

// DefaultUserAgent is the HTTP User-Agent fwknop 2.6.10 sends (fwknopd requires it to start
// with "Fwknop").
const DefaultUserAgent = "Fwknop/2.6.10"

// ResolveServer turns host into one address of the wanted family (4, 6, or 0: the first IPv4
// address, else the first IPv6 one).
func ResolveServer(ctx context.Context, r *net.Resolver, host string, family int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		a = a.Unmap()
		if (family == 4 && !a.Is4()) || (family == 6 && !a.Is6()) {
			return netip.Addr{}, fmt.Errorf("%w: %s is not an IPv%d address; drop -%d", ErrResolve, host, family, family)
		}
		return a, nil
	}
	if r == nil {
		r = net.DefaultResolver
	}
	network := "ip"
	if family != 0 {
		network = "ip" + strconv.Itoa(family)
	}
	addrs, err := r.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		why := "no addresses"
		if err != nil {
			why = err.Error()
		}
		return netip.Addr{}, fmt.Errorf("%w %q: %s; check -D/SPA_SERVER or give an IP address", ErrResolve, host, why)
	}
	for _, a := range addrs {
		if a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return addrs[0], nil
}

// Send implements Sender.
func (s NetSender) Send(ctx context.Context, t Target, wire string) (Sent, error) {
	if s.DialTimeout == 0 {
		s.DialTimeout = 5 * time.Second
	}
	proto := strings.ToLower(t.Proto)
	if proto == "" {
		proto = ProtoUDP
	}
	if proto == ProtoHTTP && t.HTTPProxy != "" {
		return s.sendHTTP(ctx, t, wire)
	}
	if t.SpoofSource.IsValid() && proto != ProtoUDPRaw && proto != ProtoTCPRaw && proto != ProtoICMP {
		return Sent{}, fmt.Errorf("%w: -Q (spoofed source) needs -P udpraw, tcpraw or icmp", ErrBadOption)
	}
	dst, err := ResolveServer(ctx, s.Resolver, t.Server, t.Family)
	if err != nil {
		return Sent{}, err
	}
	ap := netip.AddrPortFrom(dst, uint16(t.Port))
	switch proto {
	case ProtoUDP:
		return s.sendStream(ctx, "udp", ap, t.SourcePort, []byte(wire))
	case ProtoTCP:
		return s.sendStream(ctx, "tcp", ap, t.SourcePort, []byte(wire))
	case ProtoHTTP:
		return s.sendStream(ctx, "tcp", ap, t.SourcePort, httpRequest(t, wire, false))
	case ProtoICMP, ProtoUDPRaw, ProtoTCPRaw:
		return sendRaw(proto, ap, t, []byte(wire))
	}
	return Sent{}, fmt.Errorf("%w: -P %q: want udp, tcp, http, udpraw, tcpraw or icmp", ErrBadOption, t.Proto)
}

// sendStream dials network ("udp" or "tcp") and writes payload once.
func (s NetSender) sendStream(ctx context.Context, network string, ap netip.AddrPort, srcPort int, payload []byte) (Sent, error) {
	d := net.Dialer{Timeout: s.DialTimeout}
	if srcPort != 0 {
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{Port: srcPort}
		} else {
			d.LocalAddr = &net.TCPAddr{Port: srcPort}
		}
	}
	c, err := d.DialContext(ctx, network, ap.String())
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over %s to %s: %w", network, ap, err)
	}
	defer c.Close()
	n, err := c.Write(payload)
	if err != nil {
		return Sent{Dest: ap, Bytes: n}, fmt.Errorf("send SPA packet over %s to %s: %w", network, ap, err)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Let the server read the data before we go; fwknopd's TCP helper closes first.
		tc.CloseWrite()
		c.SetReadDeadline(time.Now().Add(s.DialTimeout))
		io.Copy(io.Discard, c)
	}
	return Sent{Dest: ap, Bytes: n}, nil
}

// httpRequest renders fwknop's SPA-over-HTTP request: the wire string in the path with '+'
// as '-' and '/' as '_'. Through a proxy the request line carries the absolute URL.
func httpRequest(t Target, wire string, proxy bool) []byte {
	path := strings.NewReplacer("+", "-", "/", "_").Replace(wire)
	ua := t.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	host := t.Server
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	target := "/" + path
	if proxy {
		hp := host
		if t.Port != 80 && t.Port != 0 {
			hp += ":" + strconv.Itoa(t.Port)
		}
		target = "http://" + hp + "/" + path
	}
	return []byte("GET " + target + " HTTP/1.0\r\nUser-Agent: " + ua + "\r\nAccept: */*\r\nHost: " + host +
		"\r\nConnection: close\r\n\r\n")
}

func (s NetSender) sendHTTP(ctx context.Context, t Target, wire string) (Sent, error) {
	host, port := splitHostPort(t.HTTPProxy)
	if port == "" {
		port = "8080"
	}
	pn, err := strconv.Atoi(port)
	if err != nil || pn < 1 || pn > 65535 {
		return Sent{}, fmt.Errorf("%w: -H %q: want HOST[:PORT]", ErrBadOption, t.HTTPProxy)
	}
	pa, err := ResolveServer(ctx, s.Resolver, host, t.Family)
	if err != nil {
		return Sent{}, fmt.Errorf("HTTP proxy: %w", err)
	}
	return s.sendStream(ctx, "tcp", netip.AddrPortFrom(pa, uint16(pn)), t.SourcePort, httpRequest(t, wire, true))
}

func setTTL(c net.PacketConn, dst netip.Addr) {
	if dst.Is4() {
		ipv4.NewPacketConn(c).SetTTL(255)
	} else {
		ipv6.NewPacketConn(c).SetHopLimit(255)
	}
}

func checksumAdd(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

// checksum finishes the Internet checksum of b on top of a partial sum.
func checksum(sum uint32, b []byte) uint16 {
	sum = checksumAdd(sum, b)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

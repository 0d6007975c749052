package knock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
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
)

// Target says where and how to send a packet.
type Target struct {
	Server     string // -D as given (name or address); also the HTTP Host header
	Port       int    // destination port (not used by icmp)
	Proto      string // ProtoUDP (default), ProtoTCP, ProtoHTTP, ProtoICMP, ProtoUDPRaw
	SourcePort int    // -S; 0 = any (udpraw: random)
	Family     int    // 4, 6 or 0 (prefer IPv4, as fwknop)
	HTTPProxy  string // -H host[:port] (default port 8080)
	UserAgent  string // -u; "" = "Fwknop/2.6.10"
	ICMPType   int
	ICMPCode   int
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
	case ProtoICMP:
		return sendICMP(dst, t, []byte(wire))
	case ProtoUDPRaw:
		return sendUDPRaw(ap, t.SourcePort, []byte(wire))
	}
	return Sent{}, fmt.Errorf("%w: -P %q: want udp, tcp, http, icmp or udpraw", ErrBadOption, t.Proto)
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

// sendICMP sends the packet as the payload of an ICMP message (default type 0, echo reply,
// id 0, seq 0) with TTL 255 over a raw socket (needs CAP_NET_RAW).
func sendICMP(dst netip.Addr, t Target, payload []byte) (Sent, error) {
	msg := make([]byte, 8+len(payload))
	typ := t.ICMPType
	if dst.Is6() && typ == 0 {
		typ = 129 // ICMPv6 echo reply
	}
	msg[0], msg[1] = byte(typ), byte(t.ICMPCode)
	copy(msg[8:], payload)
	network := "ip4:icmp"
	if dst.Is6() {
		network = "ip6:ipv6-icmp" // the kernel computes the ICMPv6 checksum
	} else {
		binary.BigEndian.PutUint16(msg[2:], checksum(0, msg))
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over ICMP (needs root or CAP_NET_RAW): %w", err)
	}
	defer c.Close()
	setTTL(c, dst)
	n, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()})
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over ICMP to %s: %w", dst, err)
	}
	return Sent{Dest: netip.AddrPortFrom(dst, 0), Bytes: n - 8}, nil
}

// sendUDPRaw builds the UDP header itself (random source port unless srcPort, TTL 255) and
// sends it over a raw IP socket, as fwknop's "udpraw" (needs CAP_NET_RAW).
func sendUDPRaw(ap netip.AddrPort, srcPort int, payload []byte) (Sent, error) {
	dst := ap.Addr()
	if srcPort == 0 {
		var b [2]byte
		rand.Read(b[:])
		srcPort = 10000 + int(binary.BigEndian.Uint16(b[:]))%55535
	}
	// Learn the source address the kernel will use, for the checksum's pseudo-header.
	probe, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over raw UDP to %s: %w", ap, err)
	}
	src := probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	probe.Close()

	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], uint16(srcPort))
	binary.BigEndian.PutUint16(seg[2:], ap.Port())
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	var pseudo []byte
	pseudo = append(pseudo, src.AsSlice()...)
	pseudo = append(pseudo, dst.AsSlice()...)
	pseudo = append(pseudo, 0, 17, byte(len(seg)>>8), byte(len(seg)))
	sum := checksum(checksumAdd(0, pseudo), seg)
	if sum == 0 {
		sum = 0xffff
	}
	binary.BigEndian.PutUint16(seg[6:], sum)

	network := "ip4:udp"
	if dst.Is6() {
		network = "ip6:udp"
	}
	c, err := net.ListenPacket(network, "")
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over raw UDP (needs root or CAP_NET_RAW): %w", err)
	}
	defer c.Close()
	setTTL(c, dst)
	n, err := c.WriteTo(seg, &net.IPAddr{IP: dst.AsSlice()})
	if err != nil {
		return Sent{}, fmt.Errorf("send SPA packet over raw UDP to %s: %w", ap, err)
	}
	return Sent{Dest: ap, Bytes: n - 8}, nil
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

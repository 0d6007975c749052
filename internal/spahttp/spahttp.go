// Package spahttp takes an SPA packet out of an HTTP request, as fwknopd 2.6 does when
// ENABLE_SPA_OVER_HTTP is Y and a client sent `fwknop -P http`.
//
// The client sends, over TCP (the server sees it by capture, as any other payload):
//
//	GET /<wire> HTTP/1.0\r\n
//	User-Agent: Fwknop/2.6.10\r\n
//	...
//
// where <wire> is the SPA wire string with '+' written as '-' and '/' as '_' (URL-safe). The
// server, in this order: requires the payload to begin with "GET /"; requires the bytes
// "User-Agent: Fwknop" somewhere in it unless AllowAnyUserAgent (fwknop 2.6.11's
// ALLOW_ANY_USER_AGENT; 2.6.10 has no such switch); with ENABLE_X_FORWARDED_FOR, takes the
// address of an X-Forwarded-For header as the packet's source; and takes the text after
// "GET /" up to the first blank, mapping '-' to '+' and '_' to '/'. The result then goes
// through the usual checks (length, base64 alphabet, stanzas), so nothing here grants anything.
//
// X-Forwarded-For differs from fwknopd on purpose: fwknopd takes the first "X-Forwarded-For: "
// anywhere in the request, so a client can put one before its proxy's; sesame takes only a
// header line (name in any case) and, of several, the last, which is the one the nearest
// proxy added. Its value must be one IP address that is not unspecified, loopback, multicast
// or broadcast, else the packet is dropped. The header's address is still the sender's choice
// when no proxy adds one: a stanza's SOURCE then matches an address the sender wrote. Only
// enable ENABLE_X_FORWARDED_FOR behind a proxy that adds the header.
package spahttp

import (
	"bytes"
	"errors"
	"net/netip"
)

// Options are the fwknopd.conf switches that shape the extraction.
type Options struct {
	AllowAnyUserAgent bool // ALLOW_ANY_USER_AGENT (fwknop 2.6.11)
	XForwardedFor     bool // ENABLE_X_FORWARDED_FOR
}

// Errors Extract returns; each drops the packet.
var (
	// ErrNotHTTP: the payload does not begin with "GET /"; it is not an HTTP request, and the
	// caller treats it as a plain SPA payload.
	ErrNotHTTP = errors.New("not an HTTP SPA request")
	// ErrUserAgent: no "User-Agent: Fwknop" in the request, and AllowAnyUserAgent is off.
	ErrUserAgent = errors.New("HTTP request without a Fwknop User-Agent")
	// ErrForwardedFor: the X-Forwarded-For header does not hold one IP address.
	ErrForwardedFor = errors.New("X-Forwarded-For value is not an IP address")
	// ErrEmpty: nothing follows "GET /".
	ErrEmpty = errors.New("HTTP request without SPA data")
)

var (
	prefix    = []byte("GET /")
	userAgent = []byte("User-Agent: Fwknop")
	forwarded = []byte("x-forwarded-for:")
)

// IsRequest reports whether payload begins as an HTTP SPA request ("GET /").
func IsRequest(payload []byte) bool { return bytes.HasPrefix(payload, prefix) }

// Extract returns the SPA wire string carried by the HTTP request in payload, in a new slice,
// and the X-Forwarded-For address when opts.XForwardedFor is set and the header is present
// (the zero Addr otherwise). The errors are the package's sentinels.
func Extract(payload []byte, opts Options) (wire []byte, forwardedFor netip.Addr, err error) {
	if !IsRequest(payload) {
		return nil, netip.Addr{}, ErrNotHTTP
	}
	if !opts.AllowAnyUserAgent && !bytes.Contains(payload, userAgent) {
		return nil, netip.Addr{}, ErrUserAgent
	}
	if opts.XForwardedFor {
		if v, ok := lastHeader(payload, forwarded); ok {
			a, perr := netip.ParseAddr(string(bytes.TrimSpace(v)))
			if perr != nil || a.Zone() != "" {
				return nil, netip.Addr{}, ErrForwardedFor
			}
			a = a.Unmap()
			if a.IsUnspecified() || a.IsLoopback() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				return nil, netip.Addr{}, ErrForwardedFor
			}
			forwardedFor = a
		}
	}
	data := payload[len(prefix):]
	if end := bytes.IndexAny(data, " \t\r\n\v\f"); end >= 0 {
		data = data[:end]
	}
	if len(data) == 0 {
		return nil, netip.Addr{}, ErrEmpty
	}
	wire = make([]byte, len(data))
	for i, c := range data {
		switch c {
		case '-':
			c = '+'
		case '_':
			c = '/'
		}
		wire[i] = c
	}
	return wire, forwardedFor, nil
}

// lastHeader returns the value (up to the end of its line) of the last header line of the
// request whose name, compared without case, is name (lower case, with its colon).
func lastHeader(req, name []byte) (value []byte, ok bool) {
	lines := bytes.Split(req, []byte("\n"))
	for _, l := range lines[1:] { // line 0 is the request line
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 {
			break // end of the headers
		}
		if len(l) >= len(name) && bytes.EqualFold(l[:len(name)], name) {
			value, ok = l[len(name):], true
		}
	}
	return value, ok
}

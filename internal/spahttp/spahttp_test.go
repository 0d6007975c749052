package spahttp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

const wire = "8Ak+b/9x" // stands for a wire string: the mapping is what matters here

func request(path string, headers ...string) []byte {
	b := []byte("GET /" + path + " HTTP/1.0\r\n")
	for _, h := range headers {
		b = append(b, h+"\r\n"...)
	}
	return append(b, "\r\n"...)
}

func TestExtract(t *testing.T) {
	ua := "User-Agent: Fwknop/2.6.10"
	cases := []struct {
		name    string
		payload []byte
		opts    Options
		want    string
		fwd     string
		err     error
	}{
		{"fwknop client", request("8Ak-b_9x", ua, "Accept: */*", "Connection: close"), Options{}, wire, "", nil},
		{"no user agent", request("8Ak-b_9x", "Accept: */*"), Options{}, "", "", ErrUserAgent},
		{"other user agent", request("8Ak-b_9x", "User-Agent: curl/8"), Options{}, "", "", ErrUserAgent},
		{"any user agent allowed", request("8Ak-b_9x", "User-Agent: curl/8"), Options{AllowAnyUserAgent: true}, wire, "", nil},
		{"forwarded for", request("8Ak-b_9x", ua, "X-Forwarded-For: 192.0.2.7"), Options{XForwardedFor: true}, wire, "192.0.2.7", nil},
		{"forwarded for v6", request("8Ak-b_9x", ua, "X-Forwarded-For: 2001:db8::7"), Options{XForwardedFor: true}, wire, "2001:db8::7", nil},
		{"forwarded for ignored when off", request("8Ak-b_9x", ua, "X-Forwarded-For: junk"), Options{}, wire, "", nil},
		{"forwarded for junk", request("8Ak-b_9x", ua, "X-Forwarded-For: junk"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for list", request("8Ak-b_9x", ua, "X-Forwarded-For: 192.0.2.7,198.51.100.1"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for, last header wins", request("8Ak-b_9x", ua, "X-Forwarded-For: 192.0.2.7", "X-Forwarded-For: 198.51.100.1"), Options{XForwardedFor: true}, wire, "198.51.100.1", nil},
		{"forwarded for inside another header", request("8Ak-b_9x", ua, "X-Note: X-Forwarded-For: 192.0.2.9", "X-Forwarded-For: 198.51.100.1"), Options{XForwardedFor: true}, wire, "198.51.100.1", nil},
		{"forwarded for lower case", request("8Ak-b_9x", ua, "x-forwarded-for:192.0.2.7"), Options{XForwardedFor: true}, wire, "192.0.2.7", nil},
		{"forwarded for after the headers", append(request("8Ak-b_9x", ua), "X-Forwarded-For: 192.0.2.7\r\n"...), Options{XForwardedFor: true}, wire, "", nil},
		{"forwarded for unspecified", request("8Ak-b_9x", ua, "X-Forwarded-For: 0.0.0.0"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for loopback", request("8Ak-b_9x", ua, "X-Forwarded-For: 127.0.0.1"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for multicast", request("8Ak-b_9x", ua, "X-Forwarded-For: 224.0.0.1"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for broadcast", request("8Ak-b_9x", ua, "X-Forwarded-For: 255.255.255.255"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for v6 unspecified", request("8Ak-b_9x", ua, "X-Forwarded-For: ::"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"forwarded for zone", request("8Ak-b_9x", ua, "X-Forwarded-For: fe80::1%eth0"), Options{XForwardedFor: true}, "", "", ErrForwardedFor},
		{"no header with forwarding on", request("8Ak-b_9x", ua), Options{XForwardedFor: true}, wire, "", nil},
		{"empty path", request("", ua), Options{}, "", "", ErrEmpty},
		{"not GET", []byte("POST /8Ak HTTP/1.0\r\n" + ua + "\r\n"), Options{}, "", "", ErrNotHTTP},
		{"plain SPA", []byte("8Ak+b/9x"), Options{}, "", "", ErrNotHTTP},
		{"no version", []byte("GET /8Ak-b_9x\n" + ua), Options{}, wire, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, fwd, err := Extract(c.payload, c.opts)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if string(got) != c.want {
				t.Errorf("wire = %q, want %q", got, c.want)
			}
			var want netip.Addr
			if c.fwd != "" {
				want = netip.MustParseAddr(c.fwd)
			}
			if fwd != want {
				t.Errorf("forwarded for = %v, want %v", fwd, want)
			}
		})
	}
}

func TestExtractDoesNotModifyPayload(t *testing.T) {
	p := request("a-b_c", "User-Agent: Fwknop/2.6.10")
	orig := bytes.Clone(p)
	if _, _, err := Extract(p, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, orig) {
		t.Errorf("payload changed: %q", p)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add(request("8Ak-b_9x", "User-Agent: Fwknop/2.6.10", "X-Forwarded-For: 10.0.0.1"), true, true)
	f.Add([]byte("GET /"), false, false)
	f.Fuzz(func(t *testing.T, p []byte, anyUA, xff bool) {
		wire, fwd, err := Extract(p, Options{AllowAnyUserAgent: anyUA, XForwardedFor: xff})
		if err != nil {
			if wire != nil || fwd.IsValid() {
				t.Fatalf("error %v with results %q %v", err, wire, fwd)
			}
			return
		}
		if len(wire) == 0 || len(wire) > len(p) || bytes.ContainsAny(wire, "-_ \t\r\n") {
			t.Fatalf("wire %q from %q", wire, p)
		}
		if fwd.IsValid() && !xff {
			t.Fatalf("forwarded address without the switch")
		}
	})
}

//go:build !linux

package tcpmd5

import (
	"context"
	"errors"
	"net"
	"testing"
)

// TestNotSupported checks that every entry point says ErrNotSupported off Linux.
func TestNotSupported(t *testing.T) {
	ctx := context.Background()
	key, err := ParseKey("k")
	if err != nil {
		t.Fatal(err)
	}
	if l, err := Listen(ctx, "tcp", "127.0.0.1:0", Any(key)); !errors.Is(err, ErrNotSupported) {
		if l != nil {
			l.Close()
		}
		t.Errorf("Listen: %v, want ErrNotSupported", err)
	}

	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	if _, err := FromListener(tl, Any(key)); !errors.Is(err, ErrNotSupported) {
		t.Errorf("FromListener: %v, want ErrNotSupported", err)
	}
	if c, err := Dial(ctx, "tcp", tl.Addr().String(), key); !errors.Is(err, ErrNotSupported) {
		if c != nil {
			c.Close()
		}
		t.Errorf("Dial: %v, want ErrNotSupported", err)
	}
}

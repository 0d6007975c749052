package md5grant

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// echo runs a line echo server on loopback and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	return sesametest.Listen(t, nil, "127.0.0.1:0", sesametest.Echo).String()
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// dialKey connects to TCP addr with nd, signing with key (zero: no signature).
func dialKey(nd net.Dialer, addr string, key tcpmd5.Key) (net.Conn, error) {
	if key.IsZero() {
		return nd.Dial("tcp", addr)
	}
	return (&tcpmd5.Dialer{Dialer: nd, Key: key}).DialContext(context.Background(), "tcp", addr)
}

// talk dials addr from local (an IP, "" for any) with key (zero: no signature) and checks
// a line comes back. It returns the dial or echo error.
func talk(addr, local string, key tcpmd5.Key) error {
	nd := net.Dialer{Timeout: 300 * time.Millisecond}
	if local != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := dialKey(nd, addr, key)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		return io.ErrUnexpectedEOF
	}
	return err
}

// TestServiceLoopback runs the real kernel's TCP-MD5 on loopback (no privileges needed):
// 127.0.0.2 is granted with stanza A's key; 127.0.0.3 is not.
func TestServiceLoopback(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", Upstream: echo(t), Now: clock.now,
		ExpireEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("TCP-MD5 listener: %v", err)
	}
	defer s.Close()
	addr := s.Addr().String()
	keyA, _ := Derive(keysA)
	keyB, _ := Derive(keysB)
	stA := &fwconf.Stanza{Num: 1, Keys: keysA, MD5: true}

	if err := talk(addr, "127.0.0.2", keyA); err == nil {
		t.Fatal("connected before any grant")
	}
	if err := talk(addr, "127.0.0.2", tcpmd5.Key{}); err == nil {
		t.Fatal("unsigned connection before any grant")
	}
	if err := s.OnGrant(stA, []firewall.Grant{{Src: netip.MustParseAddr("127.0.0.2"), Proto: 6, Port: 22, Timeout: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	if s.Live() != 1 {
		t.Errorf("%d live grants", s.Live())
	}
	if err := talk(addr, "127.0.0.2", keyA); err != nil {
		t.Fatalf("granted address with the derived key: %v", err)
	}
	for _, tc := range []struct {
		name, local string
		key         tcpmd5.Key
	}{
		{"granted address, no signature", "127.0.0.2", tcpmd5.Key{}},
		{"granted address, other stanza's key", "127.0.0.2", keyB},
		{"other address, the granted key", "127.0.0.3", keyA},
		{"other address, no signature", "127.0.0.3", tcpmd5.Key{}},
	} {
		if err := talk(addr, tc.local, tc.key); err == nil {
			t.Errorf("%s: connected", tc.name)
		}
	}
	// A stanza without SESAME_MD5 installs nothing.
	s.OnGrant(&fwconf.Stanza{Keys: keysB}, []firewall.Grant{{Src: netip.MustParseAddr("127.0.0.3"), Timeout: time.Minute}})
	if err := talk(addr, "127.0.0.3", keyB); err == nil {
		t.Error("stanza without SESAME_MD5 granted a key")
	}

	// An established connection outlives the grant; new ones fail after it.
	nd := &tcpmd5.Dialer{Dialer: net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}, Key: keyA}
	held, err := nd.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	clock.add(31 * time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for s.Live() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Live() != 0 {
		t.Fatal("grant did not expire")
	}
	if err := talk(addr, "127.0.0.2", keyA); err == nil {
		t.Error("derived key still connects after the grant expired")
	}
	held.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(held, "still\n")
	if line, err := bufio.NewReader(held).ReadString('\n'); err != nil || line != "still\n" {
		t.Errorf("established connection after expiry: %q, %v", line, err)
	}
}

// Two stanzas granting the same address: one key per address, so the last grant wins.
func TestServiceLastGrantWins(t *testing.T) {
	s, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", Upstream: echo(t)})
	if err != nil {
		t.Fatalf("TCP-MD5 listener: %v", err)
	}
	defer s.Close()
	addr := s.Addr().String()
	keyA, _ := Derive(keysA)
	keyB, _ := Derive(keysB)
	g := []firewall.Grant{{Src: netip.MustParseAddr("127.0.0.2"), Proto: 6, Port: 22, Timeout: time.Minute}}
	s.OnGrant(&fwconf.Stanza{Num: 1, Keys: keysA, MD5: true}, g)
	if err := talk(addr, "127.0.0.2", keyA); err != nil {
		t.Fatalf("first grant: %v", err)
	}
	s.OnGrant(&fwconf.Stanza{Num: 2, Keys: keysB, MD5: true}, g)
	if err := talk(addr, "127.0.0.2", keyB); err != nil {
		t.Errorf("second grant: %v", err)
	}
	if err := talk(addr, "127.0.0.2", keyA); err == nil {
		t.Error("the first stanza's key still connects after the second grant for the same address")
	}
	if s.Live() != 1 {
		t.Errorf("%d live grants, want 1", s.Live())
	}
}

package server

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestBatchUDP(t *testing.T) {
	pc, err := listenUDP("127.0.0.1:0", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b := newBatchUDP(pc.(*net.UDPConn))
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := []string{"one", "two", "three"}
	for _, w := range want {
		c.Write([]byte(w))
	}
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	for _, w := range want {
		p, err := b.Read()
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Payload) != w || p.Src != local || p.Dst != netip.AddrPortFrom(netip.IPv4Unspecified(), port) || p.Proto != 17 {
			t.Errorf("got %+v, want %q from %v", p, w, local)
		}
	}
	done := make(chan error)
	go func() { _, err := b.Read(); done <- err }()
	b.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
}

func TestBatchUDPIPv6(t *testing.T) {
	pc, err := listenUDP("[::1]:0", 1<<20)
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	b := newBatchUDP(pc.(*net.UDPConn))
	defer b.Close()
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("v6"))
	p, err := b.Read()
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Payload) != "v6" || p.Src.Addr() != netip.IPv6Loopback() || !p.Dst.Addr().Is6() {
		t.Errorf("got %+v", p)
	}
}

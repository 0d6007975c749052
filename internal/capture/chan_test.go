package capture

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestChan(t *testing.T) {
	c := NewChan(2)
	var src Source = c
	p1 := Packet{Src: netip.MustParseAddrPort("10.0.0.2:1000"), Proto: ProtoUDP, Payload: []byte("a")}
	p2 := Packet{Src: netip.MustParseAddrPort("[fd00::2]:1000"), Proto: ProtoTCP, Payload: []byte("b")}
	for _, p := range []Packet{p1, p2} {
		if err := c.Push(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []Packet{p1, p2} {
		got, err := src.Read()
		if err != nil || got.Src != want.Src || string(got.Payload) != string(want.Payload) {
			t.Fatalf("Read = %+v, %v; want %+v", got, err, want)
		}
	}
	errc := make(chan error, 1)
	go func() { _, err := src.Read(); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read after Close: %v", err)
	}
	if err := c.Push(p1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if _, err := src.Read(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestChanPushBlocksUntilClose(t *testing.T) {
	c := NewChan(0)
	errc := make(chan error, 1)
	go func() { errc <- c.Push(Packet{}) }()
	select {
	case err := <-errc:
		t.Fatalf("Push on a full Chan returned %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
}

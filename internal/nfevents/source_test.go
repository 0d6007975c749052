package nfevents

import (
	"errors"
	"net"
	"testing"
)

func TestFake(t *testing.T) {
	var f Fake
	f.Push() // no batch
	f.Push(Event{Kind: DelTable, Table: "sesame"}, Event{Kind: NewGen, Gen: 2})
	f.Push(Event{Kind: Overrun})
	evs, err := f.Next()
	if err != nil || !sameKinds(evs, DelTable, NewGen) || evs[0].Table != "sesame" {
		t.Fatalf("first batch: %v, %v", evs, err)
	}
	evs, err = f.Next()
	if err != nil || !sameKinds(evs, Overrun) {
		t.Fatalf("second batch: %v, %v", evs, err)
	}
	errc := make(chan error)
	go func() { _, err := f.Next(); errc <- err }()
	f.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	f.Push(Event{Kind: NewGen}) // dropped, does not block
	if _, err := f.Next(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Next after Close and Push: %v", err)
	}
}

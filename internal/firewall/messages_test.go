package firewall

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// recorder is a fake netlink socket: it records requests and acknowledges each one.
type recorder struct{ reqs []netlink.Message }

func (r *recorder) dial(req []netlink.Message) ([]netlink.Message, error) {
	r.reqs = append(r.reqs, req...)
	var acks []netlink.Message
	for _, m := range req {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks = append(acks, netlink.Message{
				Header: netlink.Header{Length: 4, Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID},
				Data:   []byte{0, 0, 0, 0},
			})
		}
	}
	return acks, nil
}

// types returns the recorded message types, nftables ones as NFT_MSG_* numbers and batch
// delimiters as 'B'/'E'.
func (r *recorder) types() []int {
	var ts []int
	for _, m := range r.reqs {
		switch t := int(m.Header.Type); t {
		case unix.NFNL_MSG_BATCH_BEGIN:
			ts = append(ts, 'B')
		case unix.NFNL_MSG_BATCH_END:
			ts = append(ts, 'E')
		default:
			ts = append(ts, t&0xff)
		}
	}
	return ts
}

func newRecorded(t *testing.T) (*Nftables, *recorder) {
	t.Helper()
	r := &recorder{}
	cfg, host, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	n, err := newNftables(cfg, host, nftables.WithTestDial(r.dial))
	if err != nil {
		t.Fatal(err)
	}
	return n, r
}

func TestGrantMessages(t *testing.T) {
	n, r := newRecorded(t)
	ctx := context.Background()
	g := Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: 1500 * time.Millisecond}
	if err := n.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	want := []int{'B', unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, unix.NFT_MSG_NEWSETELEM, 'E'}
	if got := r.types(); !equalInts(got, want) {
		t.Fatalf("Grant sent %v, want %v (add, delete, add in one batch)", got, want)
	}
	for _, m := range r.reqs[1:4] {
		if !bytes.Contains(m.Data, []byte("grants4\x00")) || !bytes.Contains(m.Data, []byte("sesame\x00")) {
			t.Fatalf("element message does not name inet sesame grants4: %x", m.Data)
		}
		if !bytes.Contains(m.Data, grantKey(g)) {
			t.Fatalf("element message lacks key %x: %x", grantKey(g), m.Data)
		}
	}
	// 1500 ms as a big-endian uint64 timeout attribute, in the add messages only.
	ms := []byte{0, 0, 0, 0, 0, 0, 0x05, 0xdc}
	if !bytes.Contains(r.reqs[1].Data, ms) || bytes.Contains(r.reqs[2].Data, ms) {
		t.Fatalf("timeout attribute misplaced")
	}

	r.reqs = nil
	if err := n.Revoke(ctx, Grant{Src: mustAddr("2001:db8::1"), Proto: ProtoUDP, Port: 53}); err != nil {
		t.Fatal(err)
	}
	want = []int{'B', unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM, 'E'}
	if got := r.types(); !equalInts(got, want) || !bytes.Contains(r.reqs[2].Data, []byte("grants6\x00")) {
		t.Fatalf("Revoke sent %v, want %v on grants6", got, want)
	}

	r.reqs = nil
	gs := append(synthGrants(grantsPerBatch+1, 22), Grant{Src: mustAddr("2001:db8::1"), Proto: ProtoTCP, Port: 22, Timeout: time.Second})
	if err := n.GrantMany(ctx, gs); err != nil {
		t.Fatal(err)
	}
	batches := 0
	for _, ty := range r.types() {
		if ty == 'B' {
			batches++
		}
	}
	if batches != 2 {
		t.Fatalf("GrantMany of %d grants sent %d batches, want 2", len(gs), batches)
	}

	r.reqs = nil
	if err := n.GrantMany(ctx, []Grant{g, {Src: g.Src, Proto: 1, Port: 1, Timeout: time.Second}}); err == nil || len(r.reqs) != 0 {
		t.Fatalf("GrantMany with an invalid grant = %v after sending %d messages; want an error, nothing sent", err, len(r.reqs))
	}
	n.Close()
	if err := n.Grant(ctx, g); err != ErrClosed {
		t.Fatalf("Grant after Close = %v, want ErrClosed", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

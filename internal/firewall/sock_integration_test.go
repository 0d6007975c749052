package firewall

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationTransactionErrors: a transaction the kernel refuses comes back as the kernel's
// error (a netlink OpError carrying the errno) and changes nothing, even when a message before
// the refused one was valid (the transaction is atomic); its answers are all read, so the next
// transaction on the socket gets its own answer and succeeds.
func TestIntegrationTransactionErrors(t *testing.T) {
	ns := nstest.New(t)
	n := newBackend(t, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}}})
	ctx := context.Background()
	good := Grant{Src: mustAddr("10.99.0.5"), Proto: ProtoTCP, Port: 22, Timeout: time.Minute}
	elem := func(set *nftables.Set, g Grant) netlink.Message {
		m, err := expiringMsg(set, []nftables.SetElement{{Key: grantKey(g), Timeout: g.Timeout}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	missing := &nftables.Set{Table: n.obj.table, Name: "nosuchset"}
	for _, msgs := range [][]netlink.Message{
		{elem(missing, good)},
		{elem(n.obj.accessSet(good), good), elem(missing, good)},
	} {
		n.mu.Lock()
		err := n.s.send(msgs)
		n.mu.Unlock()
		var oe *netlink.OpError
		if !errors.As(err, &oe) || !errors.Is(err, unix.ENOENT) || !isReply(err) {
			t.Fatalf("%d messages, one into a missing set: %v, want the kernel's ENOENT", len(msgs), err)
		}
		if es, err := n.List(ctx); err != nil || len(es) != 0 {
			t.Fatalf("after the refused transaction: %v, %v; want no grant", es, err)
		}
	}
	if err := n.Grant(ctx, good); err != nil {
		t.Fatalf("Grant after refused transactions: %v", err)
	}
	if es, err := n.List(ctx); err != nil || len(es) != 1 || es[0].Src != good.Src {
		t.Fatalf("List: %v, %v; want the one grant", es, err)
	}
}

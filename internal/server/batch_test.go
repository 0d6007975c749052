package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
)

// slowMany is a ManyGranter whose commits take a while (a cost model of a netlink
// transaction), so concurrent grants pile up.
type slowMany struct {
	fakeFirewall
	mu      sync.Mutex
	batches []int
	bad     netip.Addr // a batch containing this source fails
}

func (f *slowMany) GrantMany(ctx context.Context, gs []firewall.Grant) error {
	time.Sleep(2 * time.Millisecond)
	f.mu.Lock()
	f.batches = append(f.batches, len(gs))
	f.mu.Unlock()
	for _, g := range gs {
		if g.Src == f.bad {
			return errors.New("refused")
		}
	}
	for _, g := range gs {
		f.fakeFirewall.Grant(ctx, g)
	}
	return nil
}

func TestGroupCommit(t *testing.T) {
	fw := &slowMany{bad: netip.MustParseAddr("10.99.1.7")}
	codec := newFakeCodec()
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: fw, Cache: newFakeCache(), NewOpener: codec.opener,
		Workers: 8, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	src := newChanSource()
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), src) }()
	const n = 64
	for i := 0; i < n; i++ {
		m := baseMessage()
		m.Message = fmt.Sprintf("10.99.1.%d,tcp/22", i)
		src.ch <- pkt("10.99.0.2", codec.add(m, keysA))
	}
	close(src.ch) // end of input: Run returns once every packet is settled
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("Run: %v, want the source's io.EOF", err)
	}
	st := s.Stats()
	if st.Handled != n || st.ByReason[Granted] != n-1 || st.ByReason[FirewallError] != 1 || len(fw.list()) != n-1 {
		t.Errorf("stats %+v, %d grants", st, len(fw.list()))
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.batches) >= n {
		t.Errorf("%d commits for %d grants: no batching (%v)", len(fw.batches), n, fw.batches)
	}
	t.Logf("commit sizes: %v", fw.batches)
}

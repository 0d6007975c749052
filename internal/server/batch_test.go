package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
)

// slowMany is a ManyGranter whose commits take a while, so concurrent grants pile up.
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
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: fw, Cache: newFakeCache(), Codec: codec,
		Workers: 8, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	src := newChanSource()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, src) }()
	const n = 64
	for i := 0; i < n; i++ {
		m := baseMessage()
		m.Message = fmt.Sprintf("10.99.1.%d,tcp/22", i)
		src.ch <- pkt("10.99.0.2", codec.add(m, keysA))
	}
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Packets < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.ByReason[Granted] != n-1 || st.ByReason[FirewallError] != 1 || len(fw.list()) != n-1 {
		t.Errorf("stats %+v, %d grants", st, len(fw.list()))
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.batches) >= n {
		t.Errorf("%d commits for %d grants: no batching (%v)", len(fw.batches), n, fw.batches)
	}
	t.Logf("commit sizes: %v", fw.batches)
}

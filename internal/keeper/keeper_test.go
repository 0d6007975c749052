package keeper

import (
	"context"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nfevents"
)

// clock is a settable time source shared by the keeper, the ledger and the fake firewall.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type rig struct {
	clk *clock
	fw  *firewall.Fake
	led *ledger.Ledger
	k   *Keeper
}

func newRig(t *testing.T) *rig {
	t.Helper()
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	fw := &firewall.Fake{Now: clk.Now}
	led, err := ledger.Open("", clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	k := New(Config{Backend: fw, Ledger: led, Table: "sesame", Now: clk.Now, CheckEvery: time.Hour})
	return &rig{clk, fw, led, k}
}

var (
	cli  = netip.MustParseAddr("192.0.2.7")
	cli6 = netip.MustParseAddr("2001:db8::7")
)

func grant(src netip.Addr, port uint16, d time.Duration) firewall.Grant {
	return firewall.Grant{Src: src, Proto: firewall.ProtoTCP, Port: port, Timeout: d}
}

// left returns the time the fake firewall gives src's grant on port, 0 if none.
func (r *rig) left(t *testing.T, src netip.Addr, port uint16) time.Duration {
	t.Helper()
	es, err := r.fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Src == src && e.Port == port {
			return e.Expires
		}
	}
	return 0
}

func TestShorterKnockKeepsLongerGrant(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.Grant(ctx, grant(cli, 22, 100*time.Second)); err != nil {
		t.Fatal(err)
	}
	r.clk.Add(10 * time.Second)
	if err := r.k.Grant(ctx, grant(cli, 22, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := r.left(t, cli, 22); got != 90*time.Second {
		t.Fatalf("after -f 100 then -f 5: %v left, want 90s (the later expiry wins)", got)
	}
	// A longer knock extends.
	if err := r.k.Grant(ctx, grant(cli, 22, 200*time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := r.left(t, cli, 22); got != 200*time.Second {
		t.Fatalf("after -f 200: %v left, want 200s", got)
	}
}

func TestStartReconciles(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	// The ledger knows a grant the kernel lost (a flush while stopped, a reboot) ...
	r.led.Record([]ledger.Entry{{Key: ledger.Key{Src: cli, Proto: firewall.ProtoTCP, Port: 22}, Expires: r.clk.Now().Add(30 * time.Second)}})
	// ... and the kernel holds one the ledger missed (a crash between the two writes).
	if err := r.fw.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.Grant(ctx, grant(cli6, 443, 40*time.Second)); err != nil {
		t.Fatal(err)
	}
	restored, adopted, err := r.k.Start(ctx, false)
	if err != nil || restored != 1 || adopted != 1 {
		t.Fatalf("Start = %d restored, %d adopted, %v; want 1, 1", restored, adopted, err)
	}
	if got := r.left(t, cli, 22); got != 30*time.Second {
		t.Fatalf("restored grant has %v left, want 30s", got)
	}
	if n := len(r.led.Live()); n != 2 {
		t.Fatalf("ledger holds %d grants after Start, want 2", n)
	}
	// FLUSH_IPT_AT_INIT Y revokes both, kernel and ledger.
	restored, _, err = r.k.Start(ctx, true)
	if err != nil || restored != 0 || r.left(t, cli, 22) != 0 || r.left(t, cli6, 443) != 0 || r.led.Len() != 0 {
		t.Fatalf("Start(revokeAll) = %d, %v; kernel %v/%v, ledger %d", restored, err, r.left(t, cli, 22), r.left(t, cli6, 443), r.led.Len())
	}
}

// run starts k.Run on events and returns a stop function that waits for it.
func run(t *testing.T, k *Keeper, events nfevents.Source) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, events) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

// waitHeals waits until the keeper has healed n times.
func waitHeals(t *testing.T, k *Keeper, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := k.Heals(); got >= n {
			return
		}
		if time.Now().After(deadline) {
			got, _ := k.Heals()
			t.Fatalf("%d heals, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestHealAfterForeignFlush(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.Grant(ctx, grant(cli, 22, time.Minute)); err != nil {
		t.Fatal(err)
	}
	ev := &nfevents.Fake{}
	stop := run(t, r.k, ev)
	defer stop()

	r.clk.Add(15 * time.Second)
	r.fw.Tamper() // `nft flush ruleset` on a kernel without owned tables
	ev.Push(nfevents.Event{Kind: nfevents.DelTable, Family: 1, Table: "sesame"},
		nfevents.Event{Kind: nfevents.NewGen, Gen: 7, PID: 1, ProcName: "nft"})
	waitHeals(t, r.k, 1)
	if got := r.left(t, cli, 22); got != 45*time.Second {
		t.Fatalf("after the heal the grant has %v left, want its remaining 45s", got)
	}
	if m, _ := r.fw.Check(ctx); len(m) != 0 {
		t.Fatalf("Check after heal: %v", m)
	}
}

func TestOwnAndUnrelatedEventsIgnored(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	ev := &nfevents.Fake{}
	stop := run(t, r.k, ev)
	// sesame's own transaction (its thread id), and another program's change to another table.
	ev.Push(nfevents.Event{Kind: nfevents.DelRule, Family: 1, Table: "sesame", Chain: "guard"},
		nfevents.Event{Kind: nfevents.NewGen, PID: uint32(os.Getpid())})
	ev.Push(nfevents.Event{Kind: nfevents.DelRule, Family: 2, Table: "filter", Chain: "INPUT"},
		nfevents.Event{Kind: nfevents.NewGen, PID: 1})
	// A lost-events marker forces a check (which finds the ruleset intact).
	ev.Push(nfevents.Event{Kind: nfevents.Overrun})
	deadline := time.Now().Add(5 * time.Second)
	for r.fw.Count("Check") == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stop()
	if r.fw.Count("Check") != 1 || r.fw.Count("Heal") != 0 {
		t.Fatalf("Check %d, Heal %d times; want one check (the overrun), no heal", r.fw.Count("Check"), r.fw.Count("Heal"))
	}
}

func TestGrantHealsMissingTable(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.Grant(ctx, grant(cli6, 22, time.Minute)); err != nil {
		t.Fatal(err)
	}
	r.fw.Tamper()
	if err := r.k.Grant(ctx, grant(cli, 22, time.Minute)); err != nil {
		t.Fatalf("grant into a flushed ruleset: %v, want heal and retry", err)
	}
	if r.left(t, cli, 22) == 0 || r.left(t, cli6, 22) == 0 {
		t.Fatal("after heal-and-retry both grants must be live")
	}
}

func TestForeignElementDeletionRestored(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if _, _, err := r.k.Start(ctx, false); err != nil {
		t.Fatal(err)
	}
	if err := r.k.Grant(ctx, grant(cli, 22, time.Minute)); err != nil {
		t.Fatal(err)
	}
	ev := &nfevents.Fake{}
	stop := run(t, r.k, ev)
	defer stop()
	// `nft flush set inet sesame grants4` by another program: the table is intact (Check sees
	// nothing missing) but the grant is gone, and must come back from the ledger.
	if err := r.fw.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	ev.Push(nfevents.Event{Kind: nfevents.DelSetElem, Family: 1, Table: "sesame", Set: "grants4"})
	ev.Push(nfevents.Event{Kind: nfevents.NewGen, PID: 1, ProcName: "nft"}) // NewGen in a later read
	waitHeals(t, r.k, 1)
	if got := r.left(t, cli, 22); got != time.Minute {
		t.Fatalf("after a foreign flush of the grant set the grant has %v left, want 1m", got)
	}
}

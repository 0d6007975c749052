package firewall

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// prober dials addr:port from ns every 10 ms until stopped and counts completed handshakes: an
// outsider that never knocked, attacking while something happens to the ruleset.
type prober struct {
	ok, tries atomic.Int64
	stop      chan struct{}
	wg        sync.WaitGroup
}

func probe(t *testing.T, ns *nstest.NS, addr string, port uint16) *prober {
	t.Helper()
	p := &prober{stop: make(chan struct{})}
	target := net.JoinHostPort(addr, strconv.Itoa(int(port)))
	p.wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			p.tries.Add(1)
			ns.Do(t, func() error {
				c, err := net.DialTimeout("tcp", target, 8*time.Millisecond)
				if err == nil {
					p.ok.Add(1)
					c.Close()
				}
				return nil
			})
		}
	})
	t.Cleanup(p.halt)
	return p
}

func (p *prober) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.wg.Wait()
}

// TestIntegrationOwnedTable: with an owned, persistent table (Linux 6.9), an outsider probing
// every 10 ms never connects while the ruleset is flushed, the table deletion is refused, the
// daemon's socket closes (exit or crash) and the next daemon takes the table over; the granted
// client keeps access throughout.
func TestIntegrationOwnedTable(t *testing.T) {
	nstest.Require(t, "nft")
	if !kernelAtLeast(t, 6, 9) {
		t.Skip("owned persistent tables need Linux 6.9")
	}
	tp := newTopology(t)
	const port = 2201
	listen(t, tp.srv, port)
	ctx := context.Background()
	cfg := Config{GuardPorts: []Port{{ProtoTCP, port}}}
	fw := newBackend(t, tp.srv, cfg)
	if !fw.Owned() {
		t.Fatal("table not owned on a kernel with NFT_TABLE_F_PERSIST")
	}
	g := Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: port, Timeout: time.Minute}
	if err := fw.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	out := probe(t, tp.out, srvOut4, port)

	tp.srv.Run(t, "nft", "flush", "ruleset")
	if !hasTable(t, tp.srv, DefaultTableName) {
		t.Fatal("nft flush ruleset removed the owned table")
	}
	if b, err := tp.srv.Command("nft", "delete", "table", "inet", DefaultTableName).CombinedOutput(); err == nil {
		t.Fatalf("nft delete table of an owned table succeeded: %s", b)
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted client after flush").Close()

	// A second backend meets the live owner.
	cfg2 := cfg
	cfg2.NetNSFd = int(tp.srv.Handle(t))
	second, err := NewNftables(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Init(ctx); !errors.Is(err, ErrOwned) {
		t.Fatalf("second Init = %v, want ErrOwned", err)
	}
	if err := second.Remove(ctx); !errors.Is(err, ErrOwned) {
		t.Fatalf("second Remove = %v, want ErrOwned", err)
	}
	second.Close()

	// The daemon exits: the table stays, ownerless, and the grant with it.
	fw.Close()
	if !hasTable(t, tp.srv, DefaultTableName) {
		t.Fatal("table gone when its owner closed")
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted client after the owner exited").Close()
	// The next daemon takes it over.
	fw = newBackend(t, tp.srv, cfg)
	if !fw.Owned() {
		t.Fatal("restarted backend does not own the table")
	}
	if got := listMap(t, fw); len(got) != 1 {
		t.Fatalf("after takeover List = %v, want the one grant", got)
	}
	tp.srv.Run(t, "nft", "flush", "ruleset")
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted client after takeover and flush").Close()
	out.halt()
	if n := out.ok.Load(); n != 0 || out.tries.Load() < 5 {
		t.Fatalf("outsider connected %d times in %d tries", n, out.tries.Load())
	}
}

// TestIntegrationTakeover: an unowned table from an older sesame (or the fallback path) is
// swapped for an owned one in one transaction: its live grants keep their time left, and an
// outsider probing throughout never connects.
func TestIntegrationTakeover(t *testing.T) {
	nstest.Require(t, "nft")
	if !kernelAtLeast(t, 6, 9) {
		t.Skip("owned persistent tables need Linux 6.9")
	}
	tp := newTopology(t)
	const port = 2202
	listen(t, tp.srv, port)
	ctx := context.Background()
	cfg := Config{GuardPorts: []Port{{ProtoTCP, port}}, NoOwner: true}
	old := newBackend(t, tp.srv, cfg)
	g := Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: port, Timeout: 40 * time.Second}
	g6 := Grant{Src: mustAddr(nstest.CliIP6), Proto: ProtoTCP, Port: port, Timeout: 50 * time.Second}
	if err := old.GrantMany(ctx, []Grant{g, g6}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	out := probe(t, tp.out, srvOut4, port)
	cfg.NoOwner = false
	fw := newBackend(t, tp.srv, cfg)
	out.halt()
	if !fw.Owned() {
		t.Fatal("takeover did not make the table owned")
	}
	if l := tp.srv.Run(t, "nft", "list", "table", "inet", DefaultTableName); !strings.Contains(l, "flags owner,persist") && !strings.Contains(l, "flags owner") {
		t.Fatalf("table after takeover:\n%s", l)
	}
	got := listMap(t, fw)
	if e := got[key(g)]; e.Expires < 35*time.Second || e.Expires > 40*time.Second {
		t.Fatalf("v4 grant after takeover = %+v, want 35-40 s left", e)
	}
	if e := got[key(g6)]; e.Expires < 45*time.Second || e.Expires > 50*time.Second {
		t.Fatalf("v6 grant after takeover = %+v, want 45-50 s left", e)
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted client after takeover").Close()
	if n := out.ok.Load(); n != 0 {
		t.Fatalf("outsider connected %d times during the takeover", n)
	}
}

// TestIntegrationFallbackHeal: without ownership (older kernels; forced here) a flush removes the
// table; Check names what is missing and Heal plus a re-grant restores guard and access.
func TestIntegrationFallbackHeal(t *testing.T) {
	nstest.Require(t, "nft")
	tp := newTopology(t)
	const port = 2203
	listen(t, tp.srv, port)
	ctx := context.Background()
	fw := newBackend(t, tp.srv, Config{GuardPorts: []Port{{ProtoTCP, port}}, NoOwner: true})
	if fw.Owned() {
		t.Fatal("NoOwner backend owns its table")
	}
	if m, err := fw.Check(ctx); err != nil || len(m) != 0 {
		t.Fatalf("Check on an intact ruleset = %v, %v", m, err)
	}
	tp.srv.Run(t, "nft", "flush", "ruleset")
	wantOpen(t, tp.out, srvOut4, port, "outsider after a flush, before the heal (the hole the daemon heals)").Close()
	m, err := fw.Check(ctx)
	if err != nil || len(m) == 0 || !strings.Contains(strings.Join(m, ","), "table") {
		t.Fatalf("Check after flush = %v, %v; want the table named", m, err)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fw.Grant(ctx, Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: port, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	wantShut(t, tp.out, srvOut4, port, "outsider after heal")
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "client after heal").Close()
	// Deleting only the guard chain is found too.
	tp.srv.Run(t, "nft", "delete", "chain", "inet", DefaultTableName, chainGuard)
	if m, _ := fw.Check(ctx); !strings.Contains(strings.Join(m, ","), "chain guard") {
		t.Fatalf("Check after deleting the guard chain = %v", m)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := fw.Check(ctx); len(m) != 0 {
		t.Fatalf("Check after heal = %v", m)
	}
	// RevokeAll keeps the guard.
	if err := fw.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	wantShut(t, tp.cli, nstest.SrvIP4, port, "client after RevokeAll")
}

// TestIntegrationTakeoverMany: the takeover transaction carries every live grant, so with
// thousands of them it is larger than a netlink socket's default send buffer (it failed with
// EMSGSIZE from about 4,400 grants); the buffer grows to fit.
func TestIntegrationTakeoverMany(t *testing.T) {
	nstest.Require(t, "nft")
	if !kernelAtLeast(t, 6, 9) {
		t.Skip("owned persistent tables need Linux 6.9")
	}
	ns := nstest.New(t)
	ctx := context.Background()
	const n = 20000
	old := newBackend(t, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}}, NoOwner: true})
	if err := old.GrantMany(ctx, synthGrants(n, 22)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	fw := newBackend(t, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}}})
	if !fw.Owned() {
		t.Fatal("not owned after takeover")
	}
	if got := len(listMap(t, fw)); got != n {
		t.Fatalf("%d grants after takeover, want %d", got, n)
	}
}

package firewall

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// Second server addresses on the client's veth, for destination grants.
const (
	srvAlt4 = "10.99.0.11"
	srvAlt6 = "fd99::11"
)

// dstTopology is newTopology with a second address on the server's veth to the client.
func dstTopology(t *testing.T) topology {
	t.Helper()
	tp := newTopology(t)
	tp.srv.Run(t, "ip", "addr", "add", srvAlt4+"/24", "dev", tp.srv.Ifc)
	tp.srv.Run(t, "ip", "addr", "add", srvAlt6+"/64", "dev", tp.srv.Ifc, "nodad")
	waitLink(t, tp.cli, srvAlt4, readyPort)
	waitLink(t, tp.cli, srvAlt6, readyPort)
	return tp
}

// TestIntegrationDestination: a grant with Dst opens the guarded port on that address only, over
// IPv4 and IPv6; List shows the destination; the kernel closes it at the timeout.
func TestIntegrationDestination(t *testing.T) {
	tp := dstTopology(t)
	const port = 2231
	listen(t, tp.srv, port)
	fw := newBackend(t, tp.srv, Config{GuardPorts: []Port{{ProtoTCP, port}}})
	ctx := context.Background()
	for _, fam := range []struct{ name, srv, alt, cli string }{
		{"ipv4", nstest.SrvIP4, srvAlt4, nstest.CliIP4},
		{"ipv6", nstest.SrvIP6, srvAlt6, nstest.CliIP6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			wantShut(t, tp.cli, fam.srv, port, "before grant")
			g := Grant{Src: mustAddr(fam.cli), Dst: mustAddr(fam.srv), Proto: ProtoTCP, Port: port, Timeout: 1500 * time.Millisecond}
			start := time.Now()
			if err := fw.Grant(ctx, g); err != nil {
				t.Fatal(err)
			}
			c := wantOpen(t, tp.cli, fam.srv, port, "granted destination")
			wantShut(t, tp.cli, fam.alt, port, "the other address of the same host")
			if e, ok := listMap(t, fw)[key(g)]; !ok || e.Dst != mustAddr(fam.srv) {
				t.Fatalf("List lacks %v (with its destination): %v", g, listMap(t, fw))
			}
			time.Sleep(time.Until(start.Add(g.Timeout + 300*time.Millisecond)))
			wantShut(t, tp.cli, fam.srv, port, "after the timeout")
			echo(t, c, "established connection after expiry")
		})
	}
}

// TestIntegrationDestinationHeal: destination grants survive the swap of an unowned table and
// are restored by Heal and a re-grant after a flush (the fallback), still on their address only.
func TestIntegrationDestinationHeal(t *testing.T) {
	nstest.Require(t, "nft")
	tp := dstTopology(t)
	const port = 2232
	listen(t, tp.srv, port)
	ctx := context.Background()
	cfg := Config{GuardPorts: []Port{{ProtoTCP, port}}, NoOwner: true}
	fw := newBackend(t, tp.srv, cfg)
	g := Grant{Src: mustAddr(nstest.CliIP4), Dst: mustAddr(nstest.SrvIP4), Proto: ProtoTCP, Port: port, Timeout: time.Minute}
	if err := fw.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	tp.srv.Run(t, "nft", "flush", "ruleset")
	if m, err := fw.Check(ctx); err != nil || !strings.Contains(strings.Join(m, ","), "table") {
		t.Fatalf("Check after flush = %v, %v", m, err)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	wantShut(t, tp.cli, nstest.SrvIP4, port, "after heal, before the re-grant")
	if err := fw.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "re-granted destination after heal").Close()
	wantShut(t, tp.cli, srvAlt4, port, "other address after heal")
	// Deleting one destination set is found and healed.
	// (The mark chain uses it; nft's parser cannot name a chain "mark", so tamper over netlink.)
	fw.mu.Lock()
	fw.s.rec.DelChain(fw.obj.mark)
	fw.s.rec.DelSet(fw.obj.grantsd6)
	err := fw.write()
	fw.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := fw.Check(ctx); !strings.Contains(strings.Join(m, ","), "set "+setGrantsD6) {
		t.Fatalf("Check after deleting grantsd6 = %v", m)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := fw.Check(ctx); len(m) != 0 {
		t.Fatalf("Check after heal = %v", m)
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted destination after the second heal").Close()

	if !kernelAtLeast(t, 6, 9) {
		return
	}
	// Takeover of the unowned table keeps the destination grant with its time left.
	fw.Close()
	cfg.NoOwner = false
	owned := newBackend(t, tp.srv, cfg)
	if !owned.Owned() {
		t.Fatal("takeover did not make the table owned")
	}
	if e, ok := listMap(t, owned)[key(g)]; !ok || e.Expires < 30*time.Second {
		t.Fatalf("destination grant after takeover = %+v, %v; want it with its time left", e, ok)
	}
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted destination after takeover").Close()
	wantShut(t, tp.cli, srvAlt4, port, "other address after takeover")
	tp.srv.Run(t, "nft", "flush", "ruleset")
	wantShut(t, tp.cli, srvAlt4, port, "other address after a flush of the owned table")
	wantOpen(t, tp.cli, nstest.SrvIP4, port, "granted destination after a flush of the owned table").Close()
}

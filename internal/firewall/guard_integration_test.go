package firewall

import (
	"context"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationGuard: a host with no firewall of its own, protected by sesame's guard chain
// alone. A grant opens the guarded port to the granted client only, over IPv4 and IPv6, and
// the kernel closes it again when the timeout runs out.
func TestIntegrationGuard(t *testing.T) {
	tp := newTopology(t)
	const port, free = 2222, 2223
	listen(t, tp.srv, port)
	listen(t, tp.srv, free)
	fw := newBackend(t, tp.srv, Config{GuardPorts: []Port{{ProtoTCP, port}}})
	ctx := context.Background()

	for _, fam := range []struct {
		name             string
		srv, cli         string
		srvOut, outsider string
	}{
		{"ipv4", nstest.SrvIP4, nstest.CliIP4, srvOut4, outIP4},
		{"ipv6", nstest.SrvIP6, nstest.CliIP6, srvOut6, outIP6},
	} {
		t.Run(fam.name, func(t *testing.T) {
			wantShut(t, tp.cli, fam.srv, port, "before grant")
			wantOpen(t, tp.cli, fam.srv, free, "unguarded port")
			// Grants for another port, another protocol, or another address do not open it.
			for _, g := range []Grant{
				{Src: mustAddr(fam.cli), Proto: ProtoTCP, Port: free, Timeout: 10 * time.Second},
				{Src: mustAddr(fam.cli), Proto: ProtoUDP, Port: port, Timeout: 10 * time.Second},
				{Src: mustAddr(fam.outsider), Proto: ProtoTCP, Port: port + 10, Timeout: 10 * time.Second},
			} {
				if err := fw.Grant(ctx, g); err != nil {
					t.Fatalf("Grant(%v): %v", g, err)
				}
			}
			wantShut(t, tp.cli, fam.srv, port, "unrelated grants only")

			g := Grant{Src: mustAddr(fam.cli), Proto: ProtoTCP, Port: port, Timeout: 1500 * time.Millisecond}
			start := time.Now()
			if err := fw.Grant(ctx, g); err != nil {
				t.Fatalf("Grant: %v", err)
			}
			c := wantOpen(t, tp.cli, fam.srv, port, "after grant")
			if testing.Verbose() {
				logRuleset(t, tp.srv, "granted")
			}
			wantShut(t, tp.out, fam.srvOut, port, "outsider, not granted")

			time.Sleep(time.Until(start.Add(g.Timeout + 300*time.Millisecond)))
			wantShut(t, tp.cli, fam.srv, port, "after the timeout")
			// A connection opened while granted lives on (ct state established).
			echo(t, c, "established connection after expiry")
		})
	}
}

// TestIntegrationGuardLoopback: loopback clients pass the guard by default and are guarded with
// GuardLoopback.
func TestIntegrationGuardLoopback(t *testing.T) {
	ns := nstest.New(t)
	const port = 2222
	listen(t, ns, port)
	cfg := Config{GuardPorts: []Port{{ProtoTCP, port}}}
	first := newBackend(t, ns, cfg)
	wantOpen(t, ns, "127.0.0.1", port, "loopback, default")
	wantOpen(t, ns, "::1", port, "loopback v6, default")
	first.Close()
	cfg.GuardLoopback = true
	fw := newBackend(t, ns, cfg)
	wantShut(t, ns, "127.0.0.1", port, "loopback with GuardLoopback")
	if err := fw.Grant(context.Background(), Grant{Src: mustAddr("127.0.0.1"), Proto: ProtoTCP, Port: port, Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, ns, "127.0.0.1", port, "loopback with GuardLoopback, granted")
}

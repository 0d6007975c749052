package server

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// Grants limited to a destination (ENABLE_DESTINATION_RULE) open only this gateway's address:
// OnGrant does not publish them to the fleet.
func TestFleetOnGrantSkipsDestination(t *testing.T) {
	l := &fleetLink{queue: make(chan []ledger.Entry, 2), log: slog.New(slog.DiscardHandler)}
	st := &fwconf.Stanza{Num: 1}
	src := netip.MustParseAddr("10.0.0.7")
	acc := firewall.Grant{Src: src, Proto: 6, Port: 22, Timeout: 30 * time.Second}
	dst := acc
	dst.Dst = netip.MustParseAddr("10.0.0.1")
	if err := l.OnGrant(st, []firewall.Grant{dst}); err != nil {
		t.Fatal(err)
	}
	if n := len(l.queue); n != 0 {
		t.Fatalf("%d batches queued for a destination grant, want none", n)
	}
	if err := l.OnGrant(st, []firewall.Grant{dst, acc}); err != nil {
		t.Fatal(err)
	}
	es := <-l.queue
	if len(es) != 1 || es[0].Key != (ledger.Key{Src: src, Proto: 6, Port: 22}) {
		t.Errorf("queued %+v, want the grant without destination only", es)
	}
}

// ENABLE_DESTINATION_RULE Y end to end: the real client knocks 10.99.0.1; the server, which
// also has 10.99.0.11 on the same interface, opens tcp/22 on 10.99.0.1 only, until the grant
// expires.
func TestIntegrationDestinationRule(t *testing.T) {
	nstest.Require(t, "fwknop", "nft", "ip")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	const alt = "10.99.0.11"
	srv.Run(t, "ip", "addr", "add", alt+"/24", "dev", srv.Ifc)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	sesametest.Listen(t, srv, ":7", sesametest.Banner) // unguarded: to wait for the second address
	sesametest.WaitDial(t, cli, alt+":7", sesametest.Open, 10*time.Second)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{
		Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\nENABLE_DESTINATION_RULE Y;\n",
		Access: accessStanza("10.99.0.0/24")})
	altSSH := alt + ":22"
	for _, a := range []string{sshAddr4, altSSH} {
		if r := sesametest.Dial(t, cli, a, 300*time.Millisecond); r != sesametest.Timeout {
			t.Fatalf("%s before the knock: %v, want timeout", a, r)
		}
	}
	fwknop(t, cli, "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	sesametest.WaitDial(t, cli, sshAddr4, sesametest.Open, 3*time.Second)
	d.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP4, "dst="+nstest.SrvIP4)
	if r := sesametest.Dial(t, cli, altSSH, 300*time.Millisecond); r != sesametest.Timeout {
		t.Errorf("%s after a knock to %s: %v, want timeout", altSSH, nstest.SrvIP4, r)
	}
	if fl := d.Ctl(t, "--fw-list"); !strings.Contains(fl, nstest.CliIP4+" tcp/22 to "+nstest.SrvIP4) {
		t.Errorf("--fw-list does not show the destination:\n%s", fl)
	}
	sesametest.WaitDial(t, cli, sshAddr4, sesametest.Timeout, 8*time.Second)
}

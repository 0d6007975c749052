package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationReloadGuardsNewPorts: a SIGHUP that adds a port to a stanza's OPEN_PORTS
// guards it at once; a host that never knocked, reaching it before the reload, is shut out after.
func TestIntegrationReloadGuardsNewPorts(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	sesametest.Listen(t, srv, ":2222", sesametest.Banner)
	access := func(ports string) string {
		return fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nOPEN_PORTS %s\n", testKey, testHMAC, ports)
	}
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n", Access: access("tcp/22")})
	other := nstest.SrvIP4 + ":2222"
	sesametest.WaitDial(t, cli, other, sesametest.Open, 10*time.Second) // not guarded yet
	sesametest.WriteFile(t, d.Access, access("tcp/22, tcp/2222"))
	d.Ctl(t, "-R")
	d.WaitLog(t, 1, 3*time.Second, "guarded ports changed", "tcp/2222")
	if r := sesametest.Dial(t, cli, other, 300*time.Millisecond); r != sesametest.Timeout {
		t.Fatalf("after the reload tcp/2222 is %v to a host that never knocked, want timeout", r)
	}
}

// TestIntegrationRestartChecksConfig: -R with a broken access.conf says so and exits 1 without
// signalling the server, which keeps running with its configuration.
func TestIntegrationRestartChecksConfig(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srv, _ := nstest.Pair(t)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n",
		Access: fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nOPEN_PORTS tcp/22\n", testKey, testHMAC)})
	sesametest.WriteFile(t, d.Access, "SOURCE ANY\nOPEN_PORTS tcp/22\n") // no key
	out, err := d.NS.Command(nstest.Binary(t), "server", "-c", d.Conf, "-a", d.Access, "-R").CombinedOutput()
	if err == nil || !strings.Contains(string(out), d.Access) {
		t.Fatalf("-R with a broken access.conf: err %v, output:\n%s", err, out)
	}
	if strings.Contains(d.Log(), "SIGHUP") {
		t.Errorf("the server was signalled:\n%s", d.Log())
	}
	if d.Exited() {
		t.Errorf("the server stopped")
	}
}

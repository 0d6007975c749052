package failclosed

import (
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationInterfaceMissingAtStart: a server told to sniff an interface that does not
// exist yet starts with a WARN naming it, guards from its start, and grants a knock once the
// interface appears (every sniff row).
func TestIntegrationInterfaceMissingAtStart(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	for _, h := range hosts {
		if h.udp {
			continue
		}
		t.Run(h.name, func(t *testing.T) {
			nstest.Require(t, h.needs...)
			t.Parallel()
			defer func() { record(h.name, "iface-missing-at-start", !t.Failed()) }()
			srv, cli := nstest.New(t), nstest.New(t)
			out := outsider(t, srv)
			sesametest.Listen(t, srv, ":22", sesametest.Banner)
			if h.setup != nil {
				h.setup(t, srv)
			}
			d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: h.captureConf("late0") + h.conf,
				Access: stanza(grantSecs, h.open)})
			p := startProbe(t, out, outAddr)
			if ls := d.LogLines("level=WARN", "interface late0 does not exist yet"); len(ls) == 0 {
				t.Errorf("no WARN naming the missing interface:\n%s", d.Log())
			}
			link(t, srv, "late0", nstest.SrvIP4+"/24", cli, "late1", nstest.CliIP4+"/24")
			d.WaitLog(t, 1, 5*time.Second, "attached to interface late0")
			knock(t, cli, nstest.SrvIP4, nstest.CliIP4)
			d.WaitLog(t, 1, 3*time.Second, "access granted", "src="+nstest.CliIP4)
			waitDial(t, cli, sshAddr, true, 3*time.Second)
			p.settle(t, 10)
			p.wantShut(t)
		})
	}
}

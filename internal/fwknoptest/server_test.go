package fwknoptest

import (
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationServerHarness checks the harness itself with the real client and server:
// a packet from fwknop is decoded by fwknopd (field dump equal to the client's) and opens an
// iptables rule; a garbage datagram is rejected before any stanza.
func TestIntegrationServerHarness(t *testing.T) {
	nstest.Require(t, "fwknop", "fwknopd", "iptables")
	c := Matrix()[0]
	ns := nstest.New(t)
	srv := StartServer(t, ns, ServerOptions{Access: c.Stanza(), Config: MatrixServerConfig})
	res := Client(t, c.ClientArgs()...)
	srv.Send(t, []byte("garbage"), []byte(res.Wire))
	ev := srv.WaitEvents(t, 5*time.Second, func(ev []Event) bool {
		return len(Filter(ev, EventDecoded)) == 1 && len(Filter(ev, EventRule)) >= 1
	})
	if r := Filter(ev, EventRejected); len(r) != 1 || r[0].Size != len("garbage") {
		t.Errorf("rejected events %+v", r)
	}
	d := Filter(ev, EventDecoded)[0]
	if d.Wire != res.Wire || d.Stanza != 1 || d.Dump == nil {
		t.Fatalf("decoded event %+v", d)
	}
	if got, want := d.Dump.SPAMessage(), res.Dump.SPAMessage(); got != want {
		t.Errorf("server dump %+v, client dump %+v", got, want)
	}
	rules := srv.InputRules(t)
	if len(rules) == 0 || !strings.Contains(strings.Join(rules, "\n"), "-s "+c.AllowIP+"/32") {
		t.Errorf("FWKNOP_INPUT rules %q, want one for %s", rules, c.AllowIP)
	}
	srv.Stop(t)
	if !srv.Exited() {
		t.Fatal("fwknopd still running after Stop")
	}
	// fwknopd removes its chains on SIGTERM.
	if rules := srv.InputRules(t); rules != nil {
		t.Errorf("rules left after stop: %q", rules)
	}
}

// TestIntegrationServerPcapAndKnock runs fwknopd in pcap mode on the server side of a
// namespace pair and knocks with the real client from the other side (a real UDP datagram
// over the veth pair); the rule for the client's address must appear.
func TestIntegrationServerPcapAndKnock(t *testing.T) {
	nstest.Require(t, "fwknop", "fwknopd", "iptables")
	c := Matrix()[0]
	srvNS, cliNS := nstest.Pair(t)
	srv := StartServer(t, srvNS, ServerOptions{Access: c.Stanza(), Config: MatrixServerConfig, PCAPIntf: srvNS.Ifc})
	args := c.ClientArgs()
	for i := range args {
		if args[i] == "-a" {
			args[i+1] = nstest.CliIP4
		}
	}
	Knock(t, cliNS, args...)
	srv.WaitLog(t, "Added access rule to FWKNOP_INPUT for "+nstest.CliIP4+" -> ", 1, 10*time.Second)
	if ev := Filter(ParseLog(srv.Log()), EventDecoded); len(ev) != 1 || ev[0].Source != nstest.CliIP4 || ev[0].Packet != 0 {
		t.Errorf("decoded events %+v", ev)
	}
	if rules := strings.Join(srv.InputRules(t), "\n"); !strings.Contains(rules, "-s "+nstest.CliIP4+"/32") {
		t.Errorf("FWKNOP_INPUT: %s", rules)
	}
}

package server

import (
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// Forwarding (fwknop -N): the real client asks the gateway to forward its port 5000 to a service
// in a third namespace; only after the knock does the client reach the service through the
// gateway, and only until the grant expires in the kernel. The service never sees an outsider.
func TestIntegrationNATForward(t *testing.T) {
	nstest.Require(t, "fwknop", "nft", "sysctl")
	t.Parallel()
	gw, cli := nstest.Pair(t)
	svc := third(t, gw) // 10.98.0.2, reached from the gateway at 10.98.0.1
	gw.Run(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	sesametest.Listen(t, svc, ":8080", sesametest.Banner)
	d := sesametest.StartServer(t, gw, sesametest.ServerOptions{
		Config: "ENABLE_UDP_SERVER Y;\nENABLE_IPT_FORWARDING Y;\n",
		Access: accessStanza("10.99.0.0/24", "OPEN_PORTS tcp/5000", "FORCE_MASQUERADE Y")})
	via := nstest.SrvIP4 + ":5000"
	if r := sesametest.Dial(t, cli, via, 300*time.Millisecond); r == sesametest.Open {
		t.Fatalf("before the knock: the service answers through the gateway")
	}
	fwknop(t, cli, "-A", "tcp/5000", "-N", "10.98.0.2:8080", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	sesametest.WaitDial(t, cli, via, sesametest.Open, 3*time.Second)
	d.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP4)
	if fl := d.Ctl(t, "--fw-list"); !strings.Contains(fl, "forward 10.98.0.2:8080") {
		t.Errorf("--fw-list does not show the forward grant:\n%s", fl)
	}
	// Expired in the kernel (FW_ACCESS_TIMEOUT 3): the gateway no longer forwards.
	for deadline := time.Now().Add(8 * time.Second); sesametest.Dial(t, cli, via, 300*time.Millisecond) == sesametest.Open; {
		if time.Now().After(deadline) {
			t.Fatalf("forward grant still open after its timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Local NAT (fwknop --nat-local --nat-port): port 55000 of the server leads to its own tcp/22
// for the knocking client only; tcp/22 itself stays guarded.
func TestIntegrationNATLocal(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	other := third(t, srv)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{
		Config: "ENABLE_UDP_SERVER Y;\nENABLE_IPT_LOCAL_NAT Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: accessStanza("10.99.0.0/24, 10.98.0.0/24", "OPEN_PORTS tcp/55000")})
	via := nstest.SrvIP4 + ":55000"
	if r := sesametest.Dial(t, cli, via, 300*time.Millisecond); r == sesametest.Open {
		t.Fatalf("before the knock: port 55000 answers")
	}
	fwknop(t, cli, "--nat-local", "--nat-port", "55000", "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	sesametest.WaitDial(t, cli, via, sesametest.Open, 3*time.Second)
	d.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP4)
	if r := sesametest.Dial(t, cli, sshAddr4, 300*time.Millisecond); r != sesametest.Timeout {
		t.Errorf("tcp/22 directly after a local NAT grant: %v, want timeout (guarded)", r)
	}
	if r := sesametest.Dial(t, other, "10.98.0.1:55000", 300*time.Millisecond); r == sesametest.Open {
		t.Errorf("another host reaches port 55000")
	}
	for deadline := time.Now().Add(8 * time.Second); sesametest.Dial(t, cli, via, 300*time.Millisecond) == sesametest.Open; {
		if time.Now().After(deadline) {
			t.Fatalf("local NAT grant still open after its timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Without ENABLE_IPT_FORWARDING a NAT request is refused, and nothing is forwarded.
func TestIntegrationNATRefused(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	d := sesametest.StartServer(t, srv, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n",
		Access: accessStanza("10.99.0.0/24", "OPEN_PORTS tcp/5000")})
	fwknop(t, cli, "-A", "tcp/5000", "-N", "10.98.0.2:8080", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	d.WaitLog(t, 1, 3*time.Second, "SPA packet rejected", "src="+nstest.CliIP4, "NAT")
	if fl := d.Ctl(t, "--fw-list"); strings.Contains(fl, "forward") {
		t.Errorf("a refused NAT request left a grant:\n%s", fl)
	}
}

package firewall

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// dialTimeout is how long a dial may take before the port counts as shut (a dropped SYN never
// answers; a granted one answers in well under a millisecond on a veth).
const dialTimeout = 300 * time.Millisecond

// newBackend opens an Nftables backend working inside ns, Inits it and closes it at cleanup.
func newBackend(t *testing.T, ns *nstest.NS, cfg Config) *Nftables {
	t.Helper()
	return newBackendMode(t, ns, cfg, false)
}

// newBackendMode is newBackend, optionally without the fast refresh path.
func newBackendMode(t *testing.T, ns *nstest.NS, cfg Config, noFast bool) *Nftables {
	t.Helper()
	cfg.NetNSFd = int(ns.Handle(t))
	fw, err := NewNftables(cfg)
	if err != nil {
		t.Fatalf("NewNftables: %v", err)
	}
	fw.noFast = noFast
	t.Cleanup(func() { fw.Close() })
	if err := fw.Init(context.Background()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return fw
}

// listen starts a TCP echo server on port (all addresses) inside ns, closed at cleanup.
func listen(t *testing.T, ns *nstest.NS, port uint16) {
	t.Helper()
	sesametest.Listen(t, ns, ":"+strconv.Itoa(int(port)), sesametest.Echo)
}

// dial connects from ns to addr:port with dialTimeout. The returned conn (if any) is closed at
// cleanup.
func dial(t *testing.T, ns *nstest.NS, addr string, port uint16) (net.Conn, error) {
	t.Helper()
	return sesametest.DialConn(t, ns, net.JoinHostPort(addr, strconv.Itoa(int(port))), dialTimeout)
}

func wantOpen(t *testing.T, ns *nstest.NS, addr string, port uint16, why string) net.Conn {
	t.Helper()
	c, err := dial(t, ns, addr, port)
	if err != nil {
		t.Fatalf("%s: dial %s port %d from %s: %v, want connected", why, addr, port, ns.Name, err)
	}
	return c
}

func wantShut(t *testing.T, ns *nstest.NS, addr string, port uint16, why string) {
	t.Helper()
	c, err := dial(t, ns, addr, port)
	if err == nil {
		c.Close()
		t.Fatalf("%s: dial %s port %d from %s connected, want timeout", why, addr, port, ns.Name)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: dial %s port %d from %s: %v, want a timeout (dropped SYN)", why, addr, port, ns.Name, err)
	}
}

// echo checks that c still carries data both ways.
func echo(t *testing.T, c net.Conn, why string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatalf("%s: write: %v", why, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("%s: echo read %q, %v", why, buf, err)
	}
}

// topology is a server namespace with a client on 10.99.0.0/24 (nstest.Pair) and an outsider
// namespace on a second veth, 10.98.0.0/24 and fd98::/64, that is never granted.
type topology struct {
	srv, cli, out *nstest.NS
}

const (
	srvOut4 = "10.98.0.1"
	outIP4  = "10.98.0.2"
	srvOut6 = "fd98::1"
	outIP6  = "fd98::2"
)

func newTopology(t *testing.T) topology {
	t.Helper()
	nstest.Require(t)
	srv, cli := nstest.Pair(t)
	out := nstest.New(t)
	nstest.Connect(t, srv, out, []string{srvOut4 + "/24", srvOut6 + "/64"}, []string{outIP4 + "/24", outIP6 + "/64"})
	listen(t, srv, readyPort)
	for _, p := range []struct {
		ns   *nstest.NS
		addr string
	}{{cli, nstest.SrvIP4}, {cli, nstest.SrvIP6}, {out, srvOut4}, {out, srvOut6}} {
		waitLink(t, p.ns, p.addr, readyPort)
	}
	return topology{srv, cli, out}
}

// readyPort is an unguarded port with a listener, used to wait for links to come up.
const readyPort = 7

// waitLink waits until ns can connect to addr:port. A new veth may drop packets for up to a
// second or so (its qdisc is attached by the kernel's deferred link-watch work), longer on a
// loaded machine.
func waitLink(t testing.TB, ns *nstest.NS, addr string, port uint16) {
	t.Helper()
	sesametest.WaitDial(t, ns, net.JoinHostPort(addr, strconv.Itoa(int(port))), sesametest.Open, 10*time.Second)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// logRuleset logs sesame's table as nft prints it (for -v runs and failures).
func logRuleset(t *testing.T, ns *nstest.NS, what string) {
	t.Helper()
	out, _ := ns.Command("nft", "list", "ruleset").CombinedOutput()
	t.Logf("%s: nft list ruleset in %s:\n%s", what, ns.Name, out)
}

// hasTable reports whether ns holds table inet name.
func hasTable(t *testing.T, ns *nstest.NS, name string) bool {
	t.Helper()
	return ns.Command("nft", "list", "table", "inet", name).Run() == nil
}

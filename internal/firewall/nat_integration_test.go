package firewall

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// natTopology is client ns -> gateway ns (sesame's table, forwarding on) -> service ns. The
// client and gateway are nstest.Pair (10.99.0.0/24, fd99::/64); the service hangs off a second
// veth of the gateway, 10.97.0.0/24 and fd97::/64, and has no route back to the client unless a
// test adds one, so its answers reach the client only through SNAT or masquerade.
type natTopology struct {
	gw, cli, svc *nstest.NS
}

const (
	gwSvc4   = "10.97.0.1"
	svcIP4   = "10.97.0.2"
	snatIP4  = "10.97.0.3" // a second gateway address on the service side, for SNAT
	gwSvc6   = "fd97::1"
	svcIP6   = "fd97::2"
	svcPort  = 22
	natPort  = 55000
	natReady = 7
)

// whoHandler answers each connection with the address it came from (as the service sees it).
func whoHandler(c net.Conn) {
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	c.Write([]byte(host + "\n"))
	c.Close()
}

func newNATTopology(t *testing.T) natTopology {
	t.Helper()
	nstest.Require(t, "nft")
	gw, cli := nstest.Pair(t)
	svc := nstest.New(t)
	nstest.Connect(t, gw, svc, []string{gwSvc4 + "/24", snatIP4 + "/24", gwSvc6 + "/64"}, []string{svcIP4 + "/24", svcIP6 + "/64"})
	setForwarding(t, gw, true)
	sesametest.Listen(t, svc, ":"+strconv.Itoa(svcPort), whoHandler)
	sesametest.Listen(t, svc, ":"+strconv.Itoa(natReady), sesametest.Echo)
	sesametest.Listen(t, gw, ":"+strconv.Itoa(natReady), sesametest.Echo)
	waitLink(t, gw, svcIP4, natReady)
	waitLink(t, gw, svcIP6, natReady)
	waitLink(t, cli, nstest.SrvIP4, natReady)
	waitLink(t, cli, nstest.SrvIP6, natReady)
	return natTopology{gw, cli, svc}
}

// setForwarding writes the forwarding sysctls inside ns (a thread switched into ns sees its
// /proc/sys/net).
func setForwarding(t *testing.T, ns *nstest.NS, on bool) {
	t.Helper()
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	if err := ns.Do(t, func() error {
		if err := os.WriteFile(sysctlForward4, v, 0); err != nil {
			return err
		}
		return os.WriteFile(sysctlForward6, v, 0)
	}); err != nil {
		t.Fatalf("forwarding sysctls in %s: %v", ns.Name, err)
	}
}

// who connects from ns to addr:port and returns the source address the service saw, or the
// dial error.
func who(t *testing.T, ns *nstest.NS, addr string, port uint16) (string, error) {
	t.Helper()
	c, err := dial(t, ns, addr, port)
	if err != nil {
		return "", err
	}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func wantWho(t *testing.T, ns *nstest.NS, addr string, port uint16, want, why string) {
	t.Helper()
	got, err := who(t, ns, addr, port)
	if err != nil || got != want {
		logRuleset(t, ns, why)
		t.Fatalf("%s: via %s port %d the service saw %q, %v; want %q", why, addr, port, got, err, want)
	}
}

// wantNoReach checks that a connection to addr:port from ns does not reach the service (refused
// by the gateway, which has no listener there, or dropped).
func wantNoReach(t *testing.T, ns *nstest.NS, addr string, port uint16, why string) {
	t.Helper()
	if got, err := who(t, ns, addr, port); err == nil {
		t.Fatalf("%s: via %s port %d the service answered (saw %q)", why, addr, port, got)
	}
}

func TestIntegrationNATForward(t *testing.T) {
	t.Parallel() // own namespaces; runs beside the other NAT tests
	tp := newNATTopology(t)
	ctx := context.Background()
	fw := newBackend(t, tp.gw, Config{NAT: true})
	gwAddr := nstest.SrvIP4
	cli := mustAddr(nstest.CliIP4)

	wantNoReach(t, tp.cli, gwAddr, natPort, "before any grant")
	fwd := Grant{Src: cli, Proto: ProtoTCP, Port: natPort, Timeout: 2500 * time.Millisecond, Kind: Forward,
		NATAddr: mustAddr(svcIP4), NATPort: svcPort, Masquerade: true}
	if err := fw.Grant(ctx, fwd); err != nil {
		t.Fatalf("Grant(%v): %v", fwd, err)
	}
	wantWho(t, tp.cli, gwAddr, natPort, gwSvc4, "forward grant with masquerade")
	if e, ok := listMap(t, fw)[key(fwd)]; !ok || e.Grant != fwd {
		t.Fatalf("List after the forward grant = %v, want %v", listMap(t, fw), fwd)
	}
	// The kernel expires the DNAT and forward elements by themselves.
	sesametest.WaitDial(t, tp.cli, net.JoinHostPort(gwAddr, strconv.Itoa(natPort)), sesametest.Refused, 10*time.Second)
	if got := listMap(t, fw); len(got) != 0 {
		t.Fatalf("List after the timeout = %v, want none", got)
	}

	// SNAT to an address; re-granting the same target with another value replaces it.
	snat := fwd
	snat.Masquerade, snat.SNAT, snat.Timeout = false, mustAddr(snatIP4), time.Minute
	if err := fw.Grant(ctx, fwd); err != nil {
		t.Fatal(err)
	}
	if err := fw.Grant(ctx, snat); err != nil {
		t.Fatalf("Grant(%v) over a masquerade grant: %v", snat, err)
	}
	wantWho(t, tp.cli, gwAddr, natPort, snatIP4, "forward grant with SNAT")

	// No source rewriting: the service needs a route back.
	plain := snat
	plain.SNAT = netip.Addr{}
	if err := fw.Grant(ctx, plain); err != nil {
		t.Fatal(err)
	}
	tp.svc.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", gwSvc4)
	wantWho(t, tp.cli, gwAddr, natPort, nstest.CliIP4, "forward grant without SNAT")
	if err := fw.Revoke(ctx, plain); err != nil {
		t.Fatal(err)
	}
	wantNoReach(t, tp.cli, gwAddr, natPort, "after Revoke")

	// IPv6.
	fwd6 := Grant{Src: mustAddr(nstest.CliIP6), Proto: ProtoTCP, Port: natPort, Timeout: time.Minute, Kind: Forward,
		NATAddr: mustAddr(svcIP6), NATPort: svcPort, Masquerade: true}
	wantNoReach(t, tp.cli, nstest.SrvIP6, natPort, "IPv6 before the grant")
	if err := fw.Grant(ctx, fwd6); err != nil {
		t.Fatal(err)
	}
	wantWho(t, tp.cli, nstest.SrvIP6, natPort, gwSvc6, "IPv6 forward grant with masquerade")
	if err := fw.RevokeAll(ctx); err != nil {
		t.Fatal(err)
	}
	wantNoReach(t, tp.cli, nstest.SrvIP6, natPort, "IPv6 after RevokeAll")
}

// TestIntegrationNATHostPolicy: forwarded traffic that reaches the service directly (routed,
// no DNAT) is dropped without a grant, either by a host forward chain that drops by default
// and accepts sesame's mark, or by Config.ForwardGuard; a DisableDNAT or FORWARD_ALL grant lets
// the client through (its packets are marked in sesame's forward chain).
func TestIntegrationNATHostPolicy(t *testing.T) {
	t.Parallel() // own namespaces; runs beside the other NAT tests
	for _, guard := range []bool{false, true} {
		t.Run(map[bool]string{false: "host-chain", true: "forward-guard"}[guard], func(t *testing.T) { testNATPolicy(t, guard) })
	}
}

func testNATPolicy(t *testing.T, guard bool) {
	tp := newNATTopology(t)
	ctx := context.Background()
	cfg := Config{NAT: true}
	if guard {
		cfg.ForwardGuard = []netip.Prefix{netip.MustParsePrefix("10.97.0.0/24"), netip.MustParsePrefix("fd97::/64")}
	}
	fw := newBackend(t, tp.gw, cfg)
	if !guard {
		tp.gw.Run(t, "nft", "add table inet host; add chain inet host hostfwd { type filter hook forward priority 0; policy drop; }; "+
			"add rule inet host hostfwd ct state established,related accept; add rule inet host hostfwd meta mark & 0x10000000 == 0x10000000 accept")
	}
	tp.cli.Run(t, "ip", "route", "add", "10.97.0.0/24", "via", nstest.SrvIP4)
	tp.svc.Run(t, "ip", "route", "add", "10.99.0.0/24", "via", gwSvc4)
	wantShut(t, tp.cli, svcIP4, svcPort, "direct to the service, no grant")
	if m, err := fw.Check(ctx); err != nil || len(m) != 0 {
		t.Fatalf("Check = %v, %v", m, err)
	}

	direct := Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: svcPort, Timeout: time.Minute, Kind: Forward,
		NATAddr: mustAddr(svcIP4), NATPort: svcPort, DisableDNAT: true}
	if err := fw.Grant(ctx, direct); err != nil {
		t.Fatal(err)
	}
	wantWho(t, tp.cli, svcIP4, svcPort, nstest.CliIP4, "DisableDNAT grant")
	wantShut(t, tp.cli, svcIP4, natReady, "another port of the service")
	if e, ok := listMap(t, fw)[key(direct)]; !ok || !e.DisableDNAT {
		t.Fatalf("List = %v, want %v with DisableDNAT", listMap(t, fw), direct)
	}
	all := Grant{Src: mustAddr(nstest.CliIP4), Timeout: time.Minute, Kind: Forward, ForwardAll: true}
	if err := fw.Grant(ctx, all); err != nil {
		t.Fatal(err)
	}
	wantOpen(t, tp.cli, svcIP4, natReady, "FORWARD_ALL grant").Close()
	if _, ok := listMap(t, fw)[key(all)]; !ok {
		t.Fatalf("List = %v, want the FORWARD_ALL grant", listMap(t, fw))
	}
}

// TestIntegrationNATLocal: a LocalNAT grant maps the gateway's port 55000 to its local port 22
// for the client only; port 22 itself stays guarded, also for the client.
func TestIntegrationNATLocal(t *testing.T) {
	t.Parallel() // own namespaces; runs beside the other NAT tests
	tp := newNATTopology(t)
	ctx := context.Background()
	sesametest.Listen(t, tp.gw, ":"+strconv.Itoa(svcPort), whoHandler)
	fw := newBackend(t, tp.gw, Config{NAT: true, GuardPorts: []Port{{ProtoTCP, svcPort}}})
	g := Grant{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: natPort, Timeout: 2 * time.Second, Kind: LocalNAT,
		NATAddr: mustAddr(nstest.SrvIP4), NATPort: svcPort}
	wantNoReach(t, tp.cli, nstest.SrvIP4, natPort, "before the grant")
	if err := fw.Grant(ctx, g); err != nil {
		t.Fatal(err)
	}
	wantWho(t, tp.cli, nstest.SrvIP4, natPort, nstest.CliIP4, "local NAT grant")
	wantShut(t, tp.cli, nstest.SrvIP4, svcPort, "the local port directly")
	if e, ok := listMap(t, fw)[key(g)]; !ok || e.Grant != g {
		t.Fatalf("List = %v, want %v", listMap(t, fw), g)
	}
	sesametest.WaitDial(t, tp.cli, net.JoinHostPort(nstest.SrvIP4, strconv.Itoa(natPort)), sesametest.Refused, 10*time.Second)
}

// TestIntegrationNATHeal: an outsider's `nft flush ruleset` takes the unowned table with its NAT
// grants; Check names it, Heal and a re-grant (what internal/keeper does from its ledger)
// restore them. The swap to an owned table keeps live NAT grants, and an owned table's NAT
// grants survive a flush.
func TestIntegrationNATHeal(t *testing.T) {
	t.Parallel() // own namespaces; runs beside the other NAT tests
	tp := newNATTopology(t)
	ctx := context.Background()
	cfg := Config{NAT: true, NoOwner: true}
	fw := newBackend(t, tp.gw, cfg)
	gs := []Grant{
		{Src: mustAddr(nstest.CliIP4), Proto: ProtoTCP, Port: natPort, Timeout: time.Minute, Kind: Forward,
			NATAddr: mustAddr(svcIP4), NATPort: svcPort, Masquerade: true},
		{Src: mustAddr(nstest.CliIP6), Proto: ProtoTCP, Port: natPort, Timeout: time.Minute, Kind: Forward,
			NATAddr: mustAddr(svcIP6), NATPort: svcPort, SNAT: mustAddr(gwSvc6)},
	}
	if err := fw.GrantMany(ctx, gs); err != nil {
		t.Fatal(err)
	}
	wantWho(t, tp.cli, nstest.SrvIP4, natPort, gwSvc4, "granted")
	tp.gw.Run(t, "nft", "flush", "ruleset")
	wantNoReach(t, tp.cli, nstest.SrvIP4, natPort, "after the flush")
	m, err := fw.Check(ctx)
	if err != nil || !strings.Contains(strings.Join(m, ","), "table") {
		t.Fatalf("Check after flush = %v, %v", m, err)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	if m, err := fw.Check(ctx); err != nil || len(m) != 0 {
		t.Fatalf("Check after Heal = %v, %v", m, err)
	}
	if err := fw.GrantMany(ctx, gs); err != nil {
		t.Fatal(err)
	}
	wantWho(t, tp.cli, nstest.SrvIP4, natPort, gwSvc4, "after heal and re-grant")
	wantWho(t, tp.cli, nstest.SrvIP6, natPort, gwSvc6, "IPv6 after heal and re-grant")
	tp.gw.Run(t, "nft", "delete", "chain", "inet", DefaultTableName, chainNatPost)
	if m, _ := fw.Check(ctx); !strings.Contains(strings.Join(m, ","), "chain "+chainNatPost) {
		t.Fatalf("Check after deleting %s = %v", chainNatPost, m)
	}
	if err := fw.Heal(ctx); err != nil {
		t.Fatal(err)
	}

	if !kernelAtLeast(t, 6, 9) {
		return
	}
	fw.Close()
	cfg.NoOwner = false
	owned := newBackend(t, tp.gw, cfg)
	if !owned.Owned() {
		t.Fatal("not owned after the takeover")
	}
	got := listMap(t, owned)
	for _, g := range gs {
		if e, ok := got[key(g)]; !ok || e.Expires < 30*time.Second {
			t.Fatalf("after the takeover List = %v, want %v live", got, g)
		}
	}
	tp.gw.Run(t, "nft", "flush", "ruleset")
	wantWho(t, tp.cli, nstest.SrvIP4, natPort, gwSvc4, "owned table after a flush")

	// A restart without NAT removes the NAT objects (and so the grants' DNAT).
	owned.Close()
	newBackend(t, tp.gw, Config{})
	if out := tp.gw.Run(t, "nft", "list", "table", "inet", DefaultTableName); strings.Contains(out, setDnat4) {
		t.Fatalf("NAT objects left after a start without NAT:\n%s", out)
	}
	wantNoReach(t, tp.cli, nstest.SrvIP4, natPort, "after a start without NAT")
}

// TestIntegrationForwardingOff reads the sysctls in a namespace where a test set them.
func TestIntegrationForwardingOff(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	for _, on := range []bool{false, true} {
		setForwarding(t, ns, on)
		var v4, v6 bool
		if err := ns.Do(t, func() (err error) { v4, v6, err = ForwardingOff(); return err }); err != nil {
			t.Fatal(err)
		}
		if v4 != !on || v6 != !on {
			t.Fatalf("forwarding %v: ForwardingOff = %v, %v", on, v4, v6)
		}
	}
}

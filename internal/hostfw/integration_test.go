package hostfw

import (
	"context"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/nstest"
)

// detectIn runs Detect on the real kernel inside ns, opening its own netlink connection and
// running the legacy binaries there (SystemHost).
func detectIn(t *testing.T, ns *nstest.NS) Report {
	t.Helper()
	rep, err := Detect(context.Background(), nil, Options{NetNSFd: int(ns.Handle(t)), Ports: ports(t, "tcp/22")})
	if err != nil {
		t.Fatalf("Detect: %v", err)
	}
	for _, f := range rep.Findings {
		t.Logf("finding: %s", f)
	}
	return rep
}

func nftLoad(t *testing.T, ns *nstest.NS, ruleset string) {
	t.Helper()
	cmd := ns.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
}

func restore(t *testing.T, ns *nstest.NS, bin, save string) {
	t.Helper()
	cmd := ns.Command(bin, "-w")
	cmd.Stdin = strings.NewReader(saveToRestore(save))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", bin, err, out)
	}
}

func wantFindings(t *testing.T, rep Report, want string) {
	t.Helper()
	if got := summaries(rep); got != want {
		t.Errorf("findings:\n%s\nwant:\n%s", got, want)
	}
}

func wantOpen(t *testing.T, rep Report, ps, want string) {
	t.Helper()
	if got := exposedString(rep.Open(ports(t, ps))); got != want {
		t.Errorf("Open(%s) = %q, want %q", ps, got, want)
	}
}

// legacyLoaded reports whether the legacy filter table exists in ns.
func legacyLoaded(t *testing.T, ns *nstest.NS) bool {
	return strings.Contains(ns.Run(t, "cat", "/proc/net/ip_tables_names", "/proc/net/ip6_tables_names"), "filter")
}

// (a) A native nftables host that drops by policy.
func TestIntegrationNftPolicyDrop(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	nftLoad(t, ns, nftDropNft)
	rep := detectIn(t, ns)
	wantFindings(t, rep, `hook nft inet filter input "rule 4: verdict map drop" hook=nft inet filter input`)
	wantOpen(t, rep, "tcp/22, tcp/8080, tcp/8081, tcp/9090, tcp/7000, tcp/7001",
		"tcp/8080 over IPv4, tcp/9090 over IPv4, tcp/7000 over IPv4, tcp/8080 over IPv6, tcp/9090 over IPv6, tcp/7000 over IPv6")

	// The rule firewall's nft hook inserts is recognised as sesame's.
	ns.Run(t, "nft", "insert", "rule", "inet", "filter", "input", "meta", "mark", "and", "0x10000000", "==", "0x10000000", "accept", "comment", `"sesame"`)
	wantFindings(t, detectIn(t, ns), `hook nft inet filter input "rule 5: verdict map drop" hook=nft inet filter input hooked sesame`)
}

// (b) Debian's default: iptables-nft with INPUT policy DROP.
func TestIntegrationIPTablesNft(t *testing.T) {
	nstest.Require(t, "iptables-nft", "nft")
	ns := nstest.New(t)
	ns.Run(t, "iptables-nft", "-w", "-P", "INPUT", "DROP")
	rep := detectIn(t, ns)
	wantFindings(t, rep, `hook iptables-nft ip filter INPUT "policy drop" hook=iptables bin=iptables-nft`)
	wantOpen(t, rep, "tcp/22", "tcp/22 over IPv6")

	// firewall's iptables hook rule (xt comment match), then a REJECT (xt target).
	ns.Run(t, "iptables-nft", "-w", "-I", "INPUT", "1", "-m", "mark", "--mark", "0x10000000/0x10000000", "-m", "comment", "--comment", "sesame", "-j", "ACCEPT")
	ns.Run(t, "iptables-nft", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "REJECT")
	rep = detectIn(t, ns)
	wantFindings(t, rep, `hook iptables-nft ip filter INPUT "rule 2: reject" hook=iptables bin=iptables-nft hooked sesame`)
	if legacyLoaded(t, ns) {
		t.Error("Detect loaded the legacy filter table")
	}
}

// (c) The legacy iptables with INPUT policy DROP.
func TestIntegrationIPTablesLegacy(t *testing.T) {
	nstest.Require(t, "iptables-legacy", "ip6tables-legacy")
	ns := nstest.New(t)
	fresh := nstest.New(t)
	ns.Run(t, "iptables-legacy", "-w", "-P", "INPUT", "DROP")
	rep := detectIn(t, ns)
	wantFindings(t, rep, `hook iptables-legacy ip filter INPUT "policy drop" hook=iptables-legacy bin=iptables-legacy`)
	wantOpen(t, rep, "tcp/22", "tcp/22 over IPv6")

	// The legacy tables are per namespace: a fresh one has none, and Detect loads none.
	wantFindings(t, detectIn(t, fresh), "")
	if legacyLoaded(t, fresh) {
		t.Error("Detect loaded the legacy filter table")
	}
}

// (d) ufw's ruleset on iptables-nft (reproduced with iptables-restore; ufw itself writes /etc).
func TestIntegrationUFW(t *testing.T) {
	nstest.Require(t, "iptables-nft-restore", "ip6tables-nft-restore", "nft")
	ns := nstest.New(t)
	restore(t, ns, "iptables-nft-restore", ufwSave)
	restore(t, ns, "ip6tables-nft-restore", ufw6Save)
	rep := detectIn(t, ns)
	wantFindings(t, rep, `hook iptables-nft ip filter INPUT "rule 1: jump ufw-before-input: rule 3: drop" hook=iptables bin=iptables-nft by=ufw
hook ip6tables-nft ip6 filter INPUT "rule 1: jump ufw6-before-input: rule 3: drop" hook=iptables bin=ip6tables-nft by=ufw`)
	wantOpen(t, rep, "tcp/22, tcp/5432, udp/137", "tcp/22 over IPv4, tcp/22 over IPv6")
}

// (e) firewalld's table reproduced with nft -f (firewalld is not installed or run).
func TestIntegrationFirewalld(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	nftLoad(t, ns, firewalldNft)
	rep := detectIn(t, ns)
	wantFindings(t, rep, `hook nft inet firewalld filter_INPUT "rule 4: drop" hook=nft inet firewalld filter_INPUT by=firewalld`)
	wantOpen(t, rep, "tcp/22, tcp/5432", "tcp/22 over IPv4, tcp/22 over IPv6")
}

// An owned table named firewalld (made with sesame's own backend, which sets OWNER|PERSIST, with
// another mark bit than the detector's, so its guard does not accept sesame's marked packets):
// Detect reads the owner flag and reports that only firewalld can add the exception.
func TestIntegrationOwnedTable(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	fw, err := firewall.NewNftables(firewall.Config{TableName: "firewalld", GuardPorts: ports(t, "tcp/22"), NetNSFd: int(ns.Handle(t)),
		Mark: 0x20000000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	if err := fw.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fw.Owned() {
		t.Skip("kernel without owned, persistent tables (Linux < 6.9)")
	}
	rep := detectIn(t, ns)
	wantFindings(t, rep, `error nft inet firewalld guard "rule 4: drop" by=firewalld`)
	if errs := rep.Errors(); len(errs) != 1 || !strings.Contains(errs[0].Fix, "firewall-cmd --permanent --add-port=22/tcp") {
		t.Errorf("errors %v", errs)
	}
}

// Another sesame server's owned table (its guard accepts the shared mark): nothing to add, and
// no error, though sesame cannot change that table.
func TestIntegrationOwnedTableAcceptingMark(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	fw, err := firewall.NewNftables(firewall.Config{TableName: "other", GuardPorts: ports(t, "tcp/22"), NetNSFd: int(ns.Handle(t))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	if err := fw.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fw.Owned() {
		t.Skip("kernel without owned, persistent tables (Linux < 6.9)")
	}
	rep := detectIn(t, ns)
	wantFindings(t, rep, `accepted nft inet other guard "rule 4: drop" hooked`)
	if errs := rep.Errors(); len(errs) != 0 {
		t.Errorf("errors %v", errs)
	}
}

// (f) Nothing drops: the guarded ports stay open to everyone.
func TestIntegrationNothingDrops(t *testing.T) {
	nstest.Require(t, "iptables-nft")
	ns := nstest.New(t)
	ns.Run(t, "iptables-nft", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "ACCEPT")
	rep := detectIn(t, ns)
	wantFindings(t, rep, "")
	wantOpen(t, rep, "tcp/22, udp/53", "tcp/22 over IPv4, udp/53 over IPv4, tcp/22 over IPv6, udp/53 over IPv6")
	if len(rep.Hooks()) != 0 {
		t.Errorf("Hooks() = %v", rep.Hooks())
	}
}

package nfevents

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/nstest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.nlmsg with the messages of the integration tests")

// step is one command run in the namespace (one transaction) and the events it must produce,
// NewGen last. Gen and PID are not compared; the rest is.
type step struct {
	cmd   []string
	stdin string // written to a file whose path replaces "@FILE" in cmd
	want  []Event
}

func gen(proc string) Event { return Event{Kind: NewGen, ProcName: proc} }

const (
	inet = unix.NFPROTO_INET
	ip   = unix.NFPROTO_IPV4
)

// A ruleset shaped like sesame's: its own table, and a hook rule in a host chain.
const sesameRuleset = `
table inet sesame {
	set grants { type ipv4_addr; flags timeout; elements = { 192.0.2.7 timeout 1h } }
	chain markin {
		type filter hook input priority -150;
		ip saddr @grants meta mark set 0x10000000 comment "grant"
	}
}
table ip host {
	chain INPUT {
		type filter hook input priority 0; policy accept;
		meta mark 0x10000000 accept comment "sesame"
	}
}
`

var nftSteps = []step{
	{cmd: []string{"nft", "add", "table", "inet", "t"}, want: []Event{
		{Kind: NewTable, Family: inet, Table: "t", Handle: 1}, gen("nft")}},
	{cmd: []string{"nft", "add", "chain", "inet", "t", "c", "{ type filter hook input priority 0; }"}, want: []Event{
		{Kind: NewChain, Family: inet, Table: "t", Chain: "c", Handle: 1}, gen("nft")}},
	{cmd: []string{"nft", "add", "set", "inet", "t", "s", "{ type ipv4_addr; flags timeout; }"}, want: []Event{
		{Kind: NewSet, Family: inet, Table: "t", Set: "s", Handle: 2}, gen("nft")}},
	{cmd: []string{"nft", "add", "element", "inet", "t", "s", "{ 192.0.2.1 timeout 1h }"}, want: []Event{
		{Kind: NewSetElem, Family: inet, Table: "t", Set: "s"}, gen("nft")}},
	{cmd: []string{"nft", "add", "rule", "inet", "t", "c", "ip", "saddr", "@s", "accept", "comment", `"sesame-test"`}, want: []Event{
		{Kind: NewRule, Family: inet, Table: "t", Chain: "c", Handle: 3, Comment: "sesame-test"}, gen("nft")}},
	{cmd: []string{"nft", "delete", "rule", "inet", "t", "c", "handle", "3"}, want: []Event{
		{Kind: DelRule, Family: inet, Table: "t", Chain: "c", Handle: 3, Comment: "sesame-test"}, gen("nft")}},
	{cmd: []string{"nft", "delete", "element", "inet", "t", "s", "{ 192.0.2.1 }"}, want: []Event{
		{Kind: DelSetElem, Family: inet, Table: "t", Set: "s"}, gen("nft")}},
	{cmd: []string{"nft", "delete", "chain", "inet", "t", "c"}, want: []Event{
		{Kind: DelChain, Family: inet, Table: "t", Chain: "c", Handle: 1}, gen("nft")}},
	{cmd: []string{"nft", "delete", "set", "inet", "t", "s"}, want: []Event{
		{Kind: DelSet, Family: inet, Table: "t", Set: "s", Handle: 2}, gen("nft")}},
	{cmd: []string{"nft", "delete", "table", "inet", "t"}, want: []Event{
		{Kind: DelTable, Family: inet, Table: "t", Handle: 1}, gen("nft")}},
	// nft adds a file's objects in the order table, chains, sets, elements, rules.
	{cmd: []string{"nft", "-f", "@FILE"}, stdin: sesameRuleset, want: []Event{
		{Kind: NewTable, Family: inet, Table: "sesame", Handle: 2},
		{Kind: NewChain, Family: inet, Table: "sesame", Chain: "markin", Handle: 1},
		{Kind: NewSet, Family: inet, Table: "sesame", Set: "grants", Handle: 2},
		{Kind: NewSetElem, Family: inet, Table: "sesame", Set: "grants"},
		{Kind: NewRule, Family: inet, Table: "sesame", Chain: "markin", Handle: 3, Comment: "grant"},
		{Kind: NewTable, Family: ip, Table: "host", Handle: 3},
		{Kind: NewChain, Family: ip, Table: "host", Chain: "INPUT", Handle: 1},
		{Kind: NewRule, Family: ip, Table: "host", Chain: "INPUT", Handle: 2, Comment: "sesame"},
		gen("nft")}},
	// Deleting a table announces its rules, sets and chains first; not the set's elements.
	{cmd: []string{"nft", "delete", "table", "inet", "sesame"}, want: []Event{
		{Kind: DelRule, Family: inet, Table: "sesame", Chain: "markin", Handle: 3, Comment: "grant"},
		{Kind: DelSet, Family: inet, Table: "sesame", Set: "grants", Handle: 2},
		{Kind: DelChain, Family: inet, Table: "sesame", Chain: "markin", Handle: 1},
		{Kind: DelTable, Family: inet, Table: "sesame", Handle: 2},
		gen("nft")}},
	// So does `nft flush ruleset`, table by table.
	{cmd: []string{"nft", "flush", "ruleset"}, want: []Event{
		{Kind: DelRule, Family: ip, Table: "host", Chain: "INPUT", Handle: 2, Comment: "sesame"},
		{Kind: DelChain, Family: ip, Table: "host", Chain: "INPUT", Handle: 1},
		{Kind: DelTable, Family: ip, Table: "host", Handle: 3},
		gen("nft")}},
}

// iptables-nft keeps `-m comment` as an xt match in the rule's expressions, not in userdata.
var iptablesSteps = []step{
	// The first command creates the table and only the chain it needs.
	{cmd: []string{"iptables", "-A", "INPUT", "-m", "comment", "--comment", "sesame", "-j", "ACCEPT"}, want: []Event{
		{Kind: NewTable, Family: ip, Table: "filter", Handle: 1},
		{Kind: NewChain, Family: ip, Table: "filter", Chain: "INPUT", Handle: 1},
		{Kind: NewRule, Family: ip, Table: "filter", Chain: "INPUT", Handle: 2, Comment: "sesame"},
		gen("iptables")}},
	{cmd: []string{"iptables", "-F", "INPUT"}, want: []Event{
		{Kind: DelRule, Family: ip, Table: "filter", Chain: "INPUT", Handle: 2, Comment: "sesame"},
		gen("iptables")}},
	{cmd: []string{"iptables", "-A", "INPUT", "-m", "comment", "--comment", "sesame", "-j", "ACCEPT"}, want: []Event{
		{Kind: NewRule, Family: ip, Table: "filter", Chain: "INPUT", Handle: 3, Comment: "sesame"},
		gen("iptables")}},
	// iptables-restore replaces the whole table in one transaction: deletes, then re-adds
	// (INPUT twice: created, then given its policy). Only the state after NewGen is final.
	{cmd: []string{"iptables-restore", "@FILE"}, stdin: "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n", want: []Event{
		{Kind: DelRule, Family: ip, Table: "filter", Chain: "INPUT", Handle: 3, Comment: "sesame"},
		{Kind: DelChain, Family: ip, Table: "filter", Chain: "INPUT", Handle: 1},
		{Kind: DelTable, Family: ip, Table: "filter", Handle: 1},
		{Kind: NewTable, Family: ip, Table: "filter", Handle: 2},
		{Kind: NewChain, Family: ip, Table: "filter", Chain: "INPUT", Handle: 1},
		{Kind: NewChain, Family: ip, Table: "filter", Chain: "INPUT", Handle: 1},
		{Kind: NewRule, Family: ip, Table: "filter", Chain: "INPUT", Handle: 2},
		gen("iptables-restor")}},
}

// recorder is a Watcher that keeps every raw message it receives.
type recorder struct {
	w       *Watcher
	pending []Event
	raw     []byte
}

// newRecorder starts a Watcher in ns.
func newRecorder(t *testing.T, ns *nstest.NS, cfg Config) *recorder {
	t.Helper()
	cfg.NetNSFd = int(ns.Handle(t))
	w, err := Watch(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	r := &recorder{w: w}
	w.raw = func(m netlink.Message) {
		b, err := m.MarshalBinary()
		if err != nil {
			panic(err)
		}
		r.raw = append(r.raw, b...)
	}
	return r
}

// until returns the events up to and including the first for which stop is true. If none
// comes within 10 s the watcher is closed and the test fails.
func (r *recorder) until(t *testing.T, stop func(Event) bool) []Event {
	t.Helper()
	watchdog := time.AfterFunc(10*time.Second, func() { r.w.Close() })
	defer watchdog.Stop()
	var got []Event
	for {
		for len(r.pending) > 0 {
			e := r.pending[0]
			r.pending = r.pending[1:]
			got = append(got, e)
			if stop(e) {
				return got
			}
		}
		evs, err := r.w.Next()
		if err != nil {
			t.Fatalf("Next: %v (events so far: %v)", err, got)
		}
		r.pending = append(r.pending, evs...)
	}
}

// comm is this process's command name as the kernel keeps it.
func comm() string {
	name := filepath.Base(os.Args[0])
	return name[:min(len(name), 15)]
}

func isGen(e Event) bool { return e.Kind == NewGen }

// runSteps runs each step's command in ns and checks its events; it returns the raw messages.
func runSteps(t *testing.T, ns *nstest.NS, steps []step) []byte {
	t.Helper()
	r := newRecorder(t, ns, Config{})
	var lastGen uint32
	for i, s := range steps {
		cmd := append([]string(nil), s.cmd...)
		if s.stdin != "" {
			f := filepath.Join(t.TempDir(), "input")
			if err := os.WriteFile(f, []byte(s.stdin), 0o600); err != nil {
				t.Fatal(err)
			}
			for j := range cmd {
				cmd[j] = strings.ReplaceAll(cmd[j], "@FILE", f)
			}
		}
		ns.Run(t, cmd[0], cmd[1:]...)
		got := r.until(t, isGen)
		if err := sameEvents(got, s.want); err != nil {
			t.Errorf("step %d %q: %v\ngot:\n%s\nwant:\n%s", i, s.cmd, err, list(got), list(s.want))
		}
		g := got[len(got)-1]
		if lastGen != 0 && g.Gen != lastGen+1 {
			t.Errorf("step %d: generation %d after %d", i, g.Gen, lastGen)
		}
		lastGen = g.Gen
	}
	return r.raw
}

// sameEvents compares got with want, ignoring NewGen's Gen and PID (which must be set).
func sameEvents(got, want []Event) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d events, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Kind == NewGen && (g.Gen == 0 || g.PID == 0) {
			return fmt.Errorf("event %d: %v lacks generation or PID", i, g)
		}
		g.Gen, g.PID = 0, 0
		if g != w {
			return fmt.Errorf("event %d: got %v, want %v", i, g, w)
		}
	}
	return nil
}

func list(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\t%v\n", e)
	}
	return b.String()
}

func writeGolden(t *testing.T, name string, raw []byte) {
	t.Helper()
	if !*update || t.Failed() {
		return
	}
	if err := os.WriteFile(filepath.Join("testdata", name), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationNft(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	writeGolden(t, "nft.nlmsg", runSteps(t, ns, nftSteps))
}

func TestIntegrationIptables(t *testing.T) {
	nstest.Require(t, "iptables", "iptables-restore")
	ns := nstest.New(t)
	writeGolden(t, "iptables.nlmsg", runSteps(t, ns, iptablesSteps))
}

// A receive buffer far too small for one large transaction overflows; Next reports Overrun
// and the watcher keeps working.
func TestIntegrationOverrun(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	r := newRecorder(t, ns, Config{ReadBuffer: 1})
	var b strings.Builder
	b.WriteString("table inet big {\n\tchain c {\n")
	for i := range 300 {
		fmt.Fprintf(&b, "\t\ttcp dport %d accept comment \"rule %d\"\n", 1000+i, i)
	}
	b.WriteString("\t}\n}\n")
	f := filepath.Join(t.TempDir(), "big.nft")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "nft", "-f", f)
	// The kernel delivered (or dropped) the whole transaction before nft exited.
	first, err := r.w.Next()
	if err != nil {
		t.Fatal(err)
	}
	if first[0].Kind != Overrun {
		t.Fatalf("first batch after an overflow:\n%s", list(first))
	}
	ns.Run(t, "nft", "add", "table", "inet", "after")
	r.until(t, func(e Event) bool { return e.Kind == NewTable && e.Table == "after" })
}

// NFTA_GEN_PROC_PID is the committing thread's id, not the process id or a netlink port id.
func TestIntegrationGenPID(t *testing.T) {
	nstest.Require(t)
	ns := nstest.New(t)
	r := newRecorder(t, ns, Config{})
	fd := int(ns.Handle(t))
	tid := make(chan int, 1)
	errc := make(chan error, 1)
	// commit adds a table from a locked thread that is not the main thread, so the thread id
	// differs from the process id.
	var commit func()
	commit = func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if unix.Gettid() == os.Getpid() {
			done := make(chan struct{})
			go func() { commit(); close(done) }() // on another thread: this one stays locked
			<-done
			return
		}
		c, err := nftables.New(nftables.WithNetNSFd(fd))
		if err != nil {
			errc <- err
			return
		}
		c.AddTable(&nftables.Table{Name: "gopid", Family: nftables.TableFamilyINet})
		tid <- unix.Gettid()
		errc <- c.Flush()
	}
	go commit()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	got := r.until(t, isGen)
	g := got[len(got)-1]
	want := <-tid
	t.Logf("%v (process %d, committing thread %d)", g, os.Getpid(), want)
	if want == os.Getpid() {
		t.Fatal("committed from the main thread: the test cannot tell thread from process id")
	}
	if int(g.PID) != want {
		t.Errorf("PID %d, want the committing thread's id %d", g.PID, want)
	}
	if g.ProcName != comm() {
		t.Errorf("process name %q, want %q", g.ProcName, comm())
	}
}

// NFT_MSG_DESTROYTABLE (Linux 6.3; nft 1.0.6 cannot send it) is reported as DelTable. (Linux
// 6.18 announces it as NFT_MSG_DELTABLE; Parse also maps DESTROY* types should a kernel send
// them.)
func TestIntegrationDestroy(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	ns.Run(t, "nft", "add", "table", "inet", "gone")
	r := newRecorder(t, ns, Config{})
	var types []netlink.HeaderType
	r.w.raw = func(m netlink.Message) { types = append(types, m.Header.Type) }

	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Handle(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	nfgen := func(family uint8) []byte { return []byte{family, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES} }
	batch := []netlink.Message{
		{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: netlink.Request}, Data: nfgen(unix.AF_UNSPEC)},
		{Header: netlink.Header{Type: unix.NFNL_SUBSYS_NFTABLES<<8 | msgDestroyTable, Flags: netlink.Request | netlink.Acknowledge},
			Data: append(nfgen(unix.NFPROTO_INET), attrs(t, netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: str("gone")})...)},
		{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: netlink.Request}, Data: nfgen(unix.AF_UNSPEC)},
	}
	if _, err := c.SendMessages(batch); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receive(); err != nil {
		t.Fatalf("destroy table: %v", err)
	}
	got := r.until(t, isGen)
	if err := sameEvents(got, []Event{{Kind: DelTable, Family: inet, Table: "gone", Handle: 1}, gen(comm())}); err != nil {
		t.Fatalf("%v\n%s", err, list(got))
	}
	t.Logf("destroy announced as message type %#04x", uint16(types[0]))
}

package heal

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/keeper"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nfevents"
	"github.com/sesame-spa/sesame/internal/nstest"
)

const (
	tableName = "sesame"
	// healMsg is the ERROR the keeper logs when a heal is complete (internal/keeper).
	healMsg = "firewall: sesame's rules were removed by someone else; restored"
	// wait bounds every wait of a benchmark: a heal that takes longer is a failure.
	wait = 60 * time.Second
)

var guardPorts = []firewall.Port{{Proto: firewall.ProtoTCP, Port: 22}}

// synthGrants returns n distinct IPv4 grants for tcp/22 (from 100.64.0.0, counting up).
func synthGrants(n int, timeout time.Duration) []firewall.Grant {
	gs := make([]firewall.Grant, n)
	for i := range gs {
		v := uint32(100)<<24 | uint32(64)<<16 + uint32(i)
		gs[i] = firewall.Grant{Src: netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}),
			Proto: firewall.ProtoTCP, Port: 22, Timeout: timeout}
	}
	return gs
}

// grantKey is the grants4 set key of an IPv4 grant (layout: internal/firewall/key.go).
func grantKey(g firewall.Grant) []byte {
	k := make([]byte, 12)
	a := g.Src.As4()
	copy(k, a[:])
	k[4] = g.Proto
	k[8], k[9] = byte(g.Port>>8), byte(g.Port)
	return k
}

// healLog is the keeper's log line of a completed heal: when, and what it says it restored.
type healLog struct {
	at       time.Time
	restored string
}

// logSink is the keeper's log: it timestamps every completed heal and keeps every other ERROR
// (a failed heal or check fails the benchmark).
type logSink struct {
	heals chan healLog
	mu    sync.Mutex
	errs  []string
}

func (s *logSink) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler           { return s }
func (s *logSink) WithGroup(string) slog.Handler                { return s }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	if r.Message == healMsg {
		h := healLog{at: time.Now()}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "restored" {
				h.restored = a.Value.String()
			}
			return true
		})
		select {
		case s.heals <- h:
		default:
		}
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	s.mu.Lock()
	s.errs = append(s.errs, b.String())
	s.mu.Unlock()
	return nil
}

func (s *logSink) check(b testing.TB) {
	b.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		b.Fatalf("keeper logged errors: %q", s.errs)
	}
}

// kernel reads the namespace's ruleset on its own sockets (it never writes): ro for the
// library's dumps, nl for single-element lookups.
type kernel struct {
	ro  *nftables.Conn
	nl  *netlink.Conn
	tbl *nftables.Table
}

func newKernel(b testing.TB, fd int) *kernel {
	b.Helper()
	ro, err := nftables.New(nftables.WithNetNSFd(fd), nftables.AsLasting())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ro.CloseLasting() })
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: fd})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nl.Close() })
	return &kernel{ro: ro, nl: nl, tbl: &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}}
}

// guard reports whether sesame's guard chain exists with its four rules.
func (k *kernel) guard() bool {
	rules, err := k.ro.GetRules(k.tbl, &nftables.Chain{Name: "guard", Table: k.tbl})
	return err == nil && len(rules) >= 4
}

// hook reports whether the inet host chain table/chain holds a rule with comment "sesame".
func (k *kernel) hook(table, chain string) bool {
	t := &nftables.Table{Name: table, Family: nftables.TableFamilyINet}
	rules, err := k.ro.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		return false
	}
	return slices.ContainsFunc(rules, func(r *nftables.Rule) bool {
		s, ok := userdata.GetString(r.UserData, userdata.TypeComment)
		return ok && s == "sesame"
	})
}

// has reports whether grants4 holds g's element: one NFT_MSG_GETSETELEM request (what `nft get
// element` sends), which costs the same whatever the set's size, unlike a dump.
func (k *kernel) has(g firewall.Grant) bool {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.NFTA_SET_ELEM_LIST_TABLE, []byte(tableName+"\x00"))
	ae.Bytes(unix.NFTA_SET_ELEM_LIST_SET, []byte("grants4\x00"))
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
		ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(unix.NFTA_DATA_VALUE, grantKey(g))
				return nil
			})
			return nil
		})
		return nil
	})
	data, err := ae.Encode()
	if err != nil {
		return false
	}
	// No acknowledgement asked: the kernel answers with the element or with an error.
	_, err = k.nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: netlink.Request},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, data...),
	})
	return err == nil
}

// count dumps grants4 and returns its number of elements and how long the dump took.
func (k *kernel) count(b testing.TB) (int, time.Duration) {
	b.Helper()
	start := time.Now()
	s, err := k.ro.GetSetByName(k.tbl, "grants4")
	if err != nil {
		b.Fatalf("set grants4: %v", err)
	}
	es, err := k.ro.GetSetElements(s)
	if err != nil {
		b.Fatalf("elements of grants4: %v", err)
	}
	return len(es), time.Since(start)
}

// helperProc is the other process that removes sesame's objects (main_test.go).
type helperProc struct {
	in  io.Writer
	out *bufio.Reader
}

func startHelper(b testing.TB, ns *nstest.NS, hostTable, hostChain string) *helperProc {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := ns.Command(exe)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "SESAME_HEAL_TABLE="+tableName,
		"SESAME_HEAL_HOST_TABLE="+hostTable, "SESAME_HEAL_HOST_CHAIN="+hostChain)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	ns.Start(b, cmd) // stopped by PID at cleanup
	b.Cleanup(func() { in.Close() })
	return &helperProc{in: in, out: bufio.NewReader(out)}
}

// do sends one command and waits for the helper's answer.
func (h *helperProc) do(cmd byte) error {
	if _, err := h.in.Write([]byte{cmd}); err != nil {
		return fmt.Errorf("helper: %w", err)
	}
	r, err := h.out.ReadByte()
	if err != nil {
		return fmt.Errorf("helper: %w", err)
	}
	if r != 'k' {
		return fmt.Errorf("helper: command %q failed (see stderr)", cmd)
	}
	return nil
}

// rig is a running "daemon" in a fresh namespace: nftables backend, ledger, keeper with its
// event watcher, and n live grants made through the keeper.
type rig struct {
	ns     *nstest.NS
	fd     int
	fw     *firewall.Nftables
	k      *keeper.Keeper
	log    *logSink
	kern   *kernel
	grants []firewall.Grant
}

// hostRuleset is a host firewall that drops by policy (an nft chain the rig hooks).
const hostRuleset = "table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t}\n}\n"

func newRig(b *testing.B, n int, cfg firewall.Config, host bool) *rig {
	b.Helper()
	nstest.Require(b, "nft")
	ns := nstest.New(b)
	if host {
		cmd := ns.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(hostRuleset)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("nft -f: %v\n%s", err, out)
		}
		cfg.HostChain = "nft inet filter input"
	}
	r := &rig{ns: ns, fd: int(ns.Handle(b)), log: &logSink{heals: make(chan healLog, 16)}}
	cfg.NetNSFd = r.fd
	cfg.GuardPorts = guardPorts
	fw, err := firewall.NewNftables(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fw.Close() })
	led, err := ledger.Open(filepath.Join(b.TempDir(), "ledger"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { led.Close() })
	r.fw = fw
	r.k = keeper.New(keeper.Config{Backend: fw, Ledger: led, Table: tableName, HostChains: fw.HostChains(),
		CheckEvery: time.Hour, Log: slog.New(r.log)})
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := r.k.Start(ctx, false); err != nil {
		b.Fatal(err)
	}
	w, err := nfevents.Watch(nfevents.Config{NetNSFd: r.fd})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.k.Run(ctx, w) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("keeper.Run: %v", err)
		}
	})
	r.grants = synthGrants(n, time.Minute)
	if err := r.k.GrantMany(ctx, r.grants); err != nil {
		b.Fatal(err)
	}
	r.kern = newKernel(b, r.fd)
	return r
}

// last is the grant the keeper restores last: the ledger lists entries by expiry, then address,
// and all grants were made at once, so it is the highest address.
func (r *rig) last() firewall.Grant { return r.grants[len(r.grants)-1] }

// sample is one heal, in milliseconds from the start of the removal.
type sample struct {
	trigger float64   // until the removal was acknowledged (helper) or nft exited (CLI)
	done    float64   // until the keeper logged the heal as complete (all its writes acknowledged)
	keeper  float64   // the keeper's own work (Heals' last duration: Heal + restoring the grants)
	seen    []float64 // until each kernel probe first saw the restored state (polled every ~100 µs)
}

// probe is a kernel state that the removal breaks and the heal restores.
type probe func() bool

// heal runs remove (which must only return once the removal is committed) and measures the heal
// it causes; with regrant, the keeper must log that it restored every live grant. Each probe is
// polled from the start: a restored state counts once the probe has seen it broken or remove
// has returned, so the state before the removal is never mistaken for the healed one.
func (r *rig) heal(b *testing.B, remove func() error, regrant bool, probes ...probe) sample {
	b.Helper()
	before, _ := r.k.Heals()
	var removed atomic.Bool
	seen := make([]time.Time, len(probes))
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		broken := make([]bool, len(probes))
		deadline := time.Now().Add(wait)
		for left := len(probes); left > 0 && time.Now().Before(deadline); {
			for i, p := range probes {
				if !seen[i].IsZero() {
					continue
				}
				after := removed.Load()
				switch ok := p(); {
				case !ok:
					broken[i] = true
				case broken[i] || after:
					seen[i] = time.Now()
					left--
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	start := time.Now()
	err := remove()
	acked := time.Now()
	removed.Store(true)
	if err != nil {
		b.Fatal(err)
	}
	var done healLog
	select {
	case done = <-r.log.heals:
	case <-time.After(wait):
		r.log.check(b)
		b.Fatalf("no heal within %v", wait)
	}
	<-polled
	r.log.check(b)
	heals, ms := r.k.Heals()
	if heals != before+1 {
		b.Fatalf("%d heals for one removal", heals-before)
	}
	if regrant && !strings.Contains(done.restored, fmt.Sprintf(" %d live grant", len(r.grants))) {
		b.Fatalf("the keeper restored %q, want all %d live grants", done.restored, len(r.grants))
	}
	s := sample{trigger: msSince(start, acked), done: msSince(start, done.at), keeper: ms}
	for i, t := range seen {
		if t.IsZero() {
			b.Fatalf("probe %d never saw the restored state within %v", i, wait)
		}
		s.seen = append(s.seen, msSince(start, t))
	}
	return s
}

func msSince(start, t time.Time) float64 { return float64(t.Sub(start).Microseconds()) / 1000 }

// settle gives the keeper time to read the events of its own heal (one per restored element,
// which overflow its buffer at 100,000: it then runs one Check that finds nothing missing)
// before the next removal. Outside the measured window.
func (r *rig) settle() {
	time.Sleep(50*time.Millisecond + time.Duration(len(r.grants))*3*time.Microsecond)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// metrics collects per-iteration figures and reports their medians.
type metrics struct {
	names []string
	vals  map[string][]float64
}

func (m *metrics) add(name string, v float64) {
	if m.vals == nil {
		m.vals = map[string][]float64{}
	}
	if _, ok := m.vals[name]; !ok {
		m.names = append(m.names, name)
	}
	m.vals[name] = append(m.vals[name], v)
}

// report reports each metric's median, and suppresses ns/op (it includes set-up pauses).
func (m *metrics) report(b *testing.B) {
	for _, n := range m.names {
		b.ReportMetric(median(m.vals[n]), n)
	}
	b.ReportMetric(0, "ns/op")
}

package firewall

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
)

// Nftables is the nftables Backend. It is safe for concurrent use.
type Nftables struct {
	cfg   Config
	hosts []HostChain
	obj   objects

	mu     sync.Mutex // serialises everything on s
	s      *sock
	owner  bool // the table carries OWNER|PERSIST (probed by Init)
	fast   bool // kernel supports the fast refresh (probed by Init)
	noFast bool // tests: never use the fast path
	hooks  []hostHook
	closed bool
}

var _ Backend = (*Nftables)(nil)

// NewNftables opens sesame's one netlink socket for cfg (in cfg.NetNSFd's namespace if set). It
// changes nothing in the kernel until Init.
func NewNftables(cfg Config) (*Nftables, error) {
	cfg, hosts, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var opts []nftables.ConnOption
	if cfg.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(cfg.NetNSFd))
	}
	return newNftables(cfg, hosts, opts...)
}

// newNftables is NewNftables with validated cfg and explicit connection options (tests pass
// nftables.WithTestDial).
func newNftables(cfg Config, hosts []HostChain, opts ...nftables.ConnOption) (*Nftables, error) {
	s, err := newSock(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	n := &Nftables{cfg: cfg, obj: newObjects(cfg.TableName), s: s}
	n.setHosts(hosts)
	return n, nil
}

// setHosts replaces the host chains hooked by Init. Callers hold n.mu (or own n exclusively).
func (n *Nftables) setHosts(hosts []HostChain) {
	n.hosts = hosts
	n.hooks = n.hooks[:0]
	for _, h := range hosts {
		switch h.Kind {
		case HostIPTables:
			n.hooks = append(n.hooks, &iptablesHook{run: execRunner{nsFd: n.cfg.NetNSFd}, mark: n.cfg.Mark, bins: h.binaries()})
		case HostNft:
			n.hooks = append(n.hooks, &nftHook{s: n.s, host: h, mark: n.cfg.Mark})
		}
	}
}

// SetHostChains replaces the host chains to hook (the configured ones plus those detected in the
// host's ruleset). Hooks already installed in chains no longer listed stay until Remove; the new
// list takes effect at the next Init or Heal.
func (n *Nftables) SetHostChains(hosts []HostChain) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.setHosts(dedupHosts(hosts))
}

// HostChains returns the host chains Init hooks.
func (n *Nftables) HostChains() []HostChain {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]HostChain(nil), n.hosts...)
}

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("firewall backend closed")

// write sends what the recorder queued as one transaction.
func (n *Nftables) write(extra ...netlink.Message) error {
	msgs, err := n.s.take()
	if err != nil {
		return err
	}
	return n.s.send(append(msgs, extra...))
}

// Owned reports whether Init made sesame's table owned and persistent (NFT_TABLE_F_OWNER |
// NFT_TABLE_F_PERSIST): while this process runs, nobody else can change or delete it.
func (n *Nftables) Owned() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.owner
}

// Init creates sesame's table, sets and chains, or adopts them if they exist: the chains' rules
// and the guard-port set are rewritten from the Config in one atomic transaction, while the
// grant sets and their live elements are kept. Where the kernel supports it (Linux 6.9) and
// Config.NoOwner is false, the table is owned and persistent; an existing table without those
// flags is swapped for an owned one in the same transaction (its live grants re-added with their
// time left), so there is no moment without the guard. It then installs the host-chain hooks.
//
// Init fails with ErrOwned when another live process owns the table.
func (n *Nftables) Init(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return n.init(ctx)
}

func (n *Nftables) init(ctx context.Context) error {
	if !n.cfg.NoOwner && !n.owner {
		ok, err := probeOwner(n.s, n.cfg.TableName+"-probe-"+strconv.Itoa(os.Getpid()))
		if err != nil {
			return fmt.Errorf("nftables init: %w", err)
		}
		n.owner = ok
	}
	flags := uint32(0)
	if n.owner {
		flags = tableFlagOwner | tableFlagPersist
	}
	tbl, err := n.table()
	if err != nil {
		return fmt.Errorf("nftables init: %w", err)
	}
	var stale []string // NAT sets and chains a run with Config.NAT left, to delete without it
	if tbl != nil && !n.cfg.NAT {
		if stale, err = n.staleNAT(); err != nil {
			return fmt.Errorf("nftables init: %w", err)
		}
	}
	err = n.build(flags, false, nil, time.Time{}, stale)
	if err != nil && tbl != nil && !isPerm(err) {
		// The table exists with other flags (unowned from an older sesame or the fallback, or
		// owned from a run with ownership): swap it in one transaction, live grants included.
		var live []Entry
		if live, err = n.list(); err == nil {
			err = n.build(flags, true, live, time.Now(), nil)
		}
	}
	if isPerm(err) {
		return fmt.Errorf("nftables init: table inet %s: %w", n.cfg.TableName, ErrOwned)
	}
	if err != nil {
		return fmt.Errorf("nftables init: table inet %s: %w", n.cfg.TableName, err)
	}
	if n.cfg.NAT {
		if err := n.probeDestroy(); err != nil {
			return fmt.Errorf("nftables init: %w", err)
		}
	}
	n.fast = false
	if !n.noFast {
		if n.fast, err = n.probeFastRefresh(); err != nil {
			return fmt.Errorf("nftables init: %w", err)
		}
	}
	return n.installHooks(ctx)
}

// installHooks adds the accept-if-marked rule to every host chain that lacks it.
func (n *Nftables) installHooks(ctx context.Context) error {
	var errs []error
	for i, h := range n.hooks {
		if err := h.install(ctx); err != nil {
			errs = append(errs, fmt.Errorf("host chain %s: %w", n.hosts[i], err))
		}
	}
	return errors.Join(errs...)
}

// table returns sesame's table as the kernel lists it, or nil if it does not exist.
func (n *Nftables) table() (*nftables.Table, error) {
	tables, err := n.s.lib.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == n.obj.table.Name {
			return t, nil
		}
	}
	return nil, nil
}

// build sends the whole ruleset as one transaction (see the package doc). With swap it first
// deletes the existing table and re-adds live with their time left, as listed at listed.
//
// The dump reports each element's time left as it reads it; the time from the dump's end
// (listed) to the swap has surely passed for all of them (with 100,000 grants, seconds), so it
// is taken off. What passed during the dump is not: a grant may outlive its time by up to the
// dump's duration, but never ends early.
func (n *Nftables) build(flags uint32, swap bool, live []Entry, listed time.Time, stale []string) error {
	o := n.obj
	c := n.s.rec
	var head []netlink.Message
	if swap {
		c.DelTable(o.table)
		del, err := n.s.take()
		if err != nil {
			return err
		}
		head = del
	}
	tm, err := newTableMsg(o.table, flags)
	if err != nil {
		return err
	}
	head = append(head, tm)
	for _, s := range []*nftables.Set{o.grants4, o.grants6, o.grantsd4, o.grantsd6, o.guarded} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
	}
	c.FlushSet(o.guarded)
	if len(n.cfg.GuardPorts) > 0 {
		elems := make([]nftables.SetElement, len(n.cfg.GuardPorts))
		for i, p := range n.cfg.GuardPorts {
			elems[i] = nftables.SetElement{Key: portKey(p)}
		}
		if err := c.SetAddElements(o.guarded, elems); err != nil {
			return fmt.Errorf("guard ports: %w", err)
		}
	}
	if n.cfg.NAT {
		if err := addNAT(c, o, n.cfg.Mark, n.cfg.ForwardGuard); err != nil {
			return fmt.Errorf("nat: %w", err)
		}
	}
	c.AddChain(o.mark)
	c.FlushChain(o.mark)
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRule4(o, n.cfg.Mark)})
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRule6(o, n.cfg.Mark)})
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRuleD4(o, n.cfg.Mark)})
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRuleD6(o, n.cfg.Mark)})
	if n.cfg.NAT {
		for _, e := range markNAT(o, n.cfg.Mark) {
			c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: e})
		}
	}
	// The guard chain is always there: with no guarded ports its drop rule matches nothing, and a
	// chain that always exists makes a missing one an unambiguous sign of tampering.
	c.AddChain(o.guard)
	c.FlushChain(o.guard)
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: ctEstablished()})
	if !n.cfg.GuardLoopback {
		c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: loopbackAccept()})
	}
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: markAccept(n.cfg.Mark)})
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: guardDrop(o)})
	deleteStale(c, o, stale)
	body, err := n.s.take()
	if err != nil {
		return err
	}
	msgs := append(head, body...)
	if swap {
		age := time.Since(listed)
		for i := range live {
			live[i].Expires -= age
		}
		order, bs := liveElements(o, live)
		for _, set := range order {
			for elems := bs[set]; len(elems) > 0; {
				chunk := elems[:min(len(elems), grantsPerBatch)]
				elems = elems[len(chunk):]
				m, err := expiringMsg(set, chunk)
				if err != nil {
					return err
				}
				msgs = append(msgs, m)
			}
		}
		if n.cfg.NAT {
			order, bs := bySet(n.liveNAT(live))
			for _, s := range order {
				for elems := bs[s]; len(elems) > 0; {
					chunk := elems[:min(len(elems), grantsPerBatch)]
					elems = elems[len(chunk):]
					m, err := expiringMsg(s, chunk)
					if err != nil {
						return err
					}
					msgs = append(msgs, m)
				}
			}
		}
	}
	return n.s.send(msgs)
}

// liveElements turns listed access entries into elements that keep their timeout and time
// left, grouped by set (accessSets order).
func liveElements(o objects, es []Entry) ([]*nftables.Set, map[*nftables.Set][]nftables.SetElement) {
	m := map[*nftables.Set][]nftables.SetElement{}
	for _, e := range es {
		if e.Expires < time.Millisecond || e.Kind != Access {
			continue
		}
		s := o.accessSet(e.Grant)
		m[s] = append(m[s], nftables.SetElement{Key: grantKey(e.Grant), Timeout: max(e.Timeout, e.Expires), Expires: e.Expires})
	}
	return o.accessSets(), m
}

// accessSets are the sets of access grants: grants4, grants6, grantsd4, grantsd6.
func (o objects) accessSets() []*nftables.Set {
	return []*nftables.Set{o.grants4, o.grants6, o.grantsd4, o.grantsd6}
}

// accessSet is the set that holds access grant g: by family, and by whether it has a Dst.
func (o objects) accessSet(g Grant) *nftables.Set {
	switch v4 := isV4(g.Src); {
	case g.Dst.IsValid() && v4:
		return o.grantsd4
	case g.Dst.IsValid():
		return o.grantsd6
	case v4:
		return o.grants4
	}
	return o.grants6
}

// Grant adds g, or restarts its timeout if it exists.
func (n *Nftables) Grant(ctx context.Context, g Grant) error {
	return n.GrantMany(ctx, []Grant{g})
}

// grantsPerBatch bounds one netlink message: three element messages per family (add, delete,
// add) of about 50 bytes per element must fit the socket's default 208 KiB send buffer.
const grantsPerBatch = 1000

// GrantMany grants (or refreshes) all of gs, in transactions of up to grantsPerBatch grants
// per address family; an invalid grant fails the call before anything is sent, and a failed
// transaction stops it (earlier ones stay applied). Each grant's element is left with exactly
// g.Timeout to live (callers that must not shorten a longer grant pass the longer time).
//
// A refresh must restart the timeout, but re-adding an existing element is a no-op in the
// kernel. With the fast path (see the package doc) each add carries the expiration; without
// it each transaction adds the elements (creating missing ones), deletes them, and adds them
// again, which leaves every element with a fresh timeout on every kernel.
func (n *Nftables) GrantMany(ctx context.Context, gs []Grant) error {
	for _, g := range gs {
		if err := n.validate(g, g.Validate); err != nil {
			return err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	for len(gs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := gs[:min(len(gs), grantsPerBatch)]
		gs = gs[len(chunk):]
		if err := n.grantChunk(chunk); err != nil {
			return fmt.Errorf("nftables grant %v (and %d more): %w", chunk[0], len(chunk)-1, err)
		}
	}
	return nil
}

func (n *Nftables) grantChunk(chunk []Grant) error {
	var nat []setElem
	access := chunk
	for i, g := range chunk {
		if g.Kind != Access {
			if len(nat) == 0 {
				access = append([]Grant(nil), chunk[:i]...)
			}
			nat = append(nat, n.elementsOf(g)...)
		} else if len(nat) > 0 {
			access = append(access, g)
		}
	}
	extra, err := natMsgs(nat, false)
	if err != nil {
		return err
	}
	add := n.obj.elements(access, true)
	del := n.obj.elements(access, false)
	for _, set := range n.obj.accessSets() {
		fam := struct {
			set        *nftables.Set
			elems, del []nftables.SetElement
		}{set, add[set], del[set]}
		if len(fam.elems) == 0 {
			continue
		}
		if n.fast {
			m, err := expiringMsg(fam.set, fam.elems)
			if err != nil {
				return err
			}
			extra = append(extra, m)
			continue
		}
		for _, step := range []func() error{
			func() error { return n.s.rec.SetAddElements(fam.set, fam.elems) },
			func() error { return n.s.rec.SetDeleteElements(fam.set, fam.del) },
			func() error { return n.s.rec.SetAddElements(fam.set, fam.elems) },
		} {
			if err := step(); err != nil {
				return err
			}
		}
	}
	return n.write(extra...)
}

// elements splits access grants gs into set elements per set (accessSet), with timeouts if
// withTimeout.
func (o objects) elements(gs []Grant, withTimeout bool) map[*nftables.Set][]nftables.SetElement {
	m := map[*nftables.Set][]nftables.SetElement{}
	for _, g := range gs {
		e := nftables.SetElement{Key: grantKey(g)}
		if withTimeout {
			e.Timeout = g.Timeout
		}
		s := o.accessSet(g)
		m[s] = append(m[s], e)
	}
	return m
}

// Revoke removes g (its Timeout and values are ignored). It is idempotent: an access element is
// added with a short timeout and deleted in one transaction, NAT elements are destroyed
// (NFT_MSG_DESTROYSETELEM), so a missing element is no error. Revoking a Forward or LocalNAT
// grant removes its source's DNAT for that protocol and port, whatever its target.
func (n *Nftables) Revoke(ctx context.Context, g Grant) error {
	if err := n.validate(g, g.validateKey); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if g.Kind != Access {
		msgs, err := natMsgs(n.elementsOf(g), true)
		if err == nil {
			err = n.s.send(msgs)
		}
		if err != nil {
			return fmt.Errorf("nftables revoke %v: %w", g, err)
		}
		return nil
	}
	set := n.obj.accessSet(g)
	k := grantKey(g)
	if err := n.s.rec.SetAddElements(set, []nftables.SetElement{{Key: k, Timeout: time.Second}}); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if err := n.s.rec.SetDeleteElements(set, []nftables.SetElement{{Key: k}}); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if err := n.write(); err != nil {
		return fmt.Errorf("nftables revoke %v: %w", g, err)
	}
	return nil
}

// RevokeAll removes every grant, NAT grants included (FLUSH_IPT_AT_INIT/EXIT Y, --fw-flush). The guard and the hooks
// stay, so the guarded ports are closed to everyone afterwards.
func (n *Nftables) RevokeAll(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	if t, err := n.table(); err != nil {
		return fmt.Errorf("nftables revoke all: %w", err)
	} else if t == nil {
		return nil
	}
	for _, s := range n.obj.accessSets() {
		n.s.rec.FlushSet(s)
	}
	if n.cfg.NAT {
		for _, s := range n.obj.nat.sets() {
			n.s.rec.FlushSet(s)
		}
	}
	if err := n.write(); err != nil {
		if isPerm(err) {
			err = ErrOwned
		}
		return fmt.Errorf("nftables revoke all: %w", err)
	}
	return nil
}

// List returns the live grants with their time left: access grants (IPv4 first, in kernel
// order; then those with a destination, IPv4 first), then with Config.NAT the Forward and LocalNAT grants read back from the NAT sets. It fails
// with ErrNoTable if sesame's table does not exist.
//
// List dumps the sets over netlink, and the kernel restarts its walk of a hash set from the
// first element for each dump message, so its cost grows with the square of the number of
// grants: milliseconds for thousands, seconds for 100,000, minutes for a million.
func (n *Nftables) List(ctx context.Context) ([]Entry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	if t, err := n.table(); err != nil {
		return nil, fmt.Errorf("nftables list: %w", err)
	} else if t == nil {
		return nil, fmt.Errorf("nftables list: %w", ErrNoTable)
	}
	return n.list()
}

func (n *Nftables) list() ([]Entry, error) {
	out, err := n.listAccess()
	if err != nil || !n.cfg.NAT {
		return out, err
	}
	if ok, err := n.hasNATSets(); err != nil || !ok {
		return out, err // a table from a run without NAT
	}
	nat, err := n.listNAT()
	return append(out, nat...), err
}

func (n *Nftables) listAccess() ([]Entry, error) {
	var out []Entry
	sets, err := n.s.lib.GetSets(n.obj.table)
	if err != nil {
		return nil, fmt.Errorf("nftables list: list sets: %w", err)
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	for _, s := range n.obj.accessSets() {
		if !have[s.Name] && (s == n.obj.grantsd4 || s == n.obj.grantsd6) {
			continue // a table from a sesame without destination grants
		}
		elems, err := n.s.lib.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
		}
		parse := parseKey
		if s == n.obj.grantsd4 || s == n.obj.grantsd6 {
			parse = parseDstKey
		}
		for _, e := range elems {
			g, err := parse(e.Key)
			if err != nil {
				return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
			}
			g.Timeout = e.Timeout
			out = append(out, Entry{Grant: g, Expires: e.Expires})
		}
	}
	return out, nil
}

// Remove deletes everything sesame created: the hooks in host chains and sesame's table with
// all grants. Afterwards the guarded ports are reachable by anyone the host's own firewall lets
// through; it is the uninstall step, never part of stopping. It is idempotent, and fails with
// ErrOwned while another process owns the table.
func (n *Nftables) Remove(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	for i, h := range n.hooks {
		if err := h.remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("nftables remove: host chain %s: %w", n.hosts[i], err))
		}
	}
	t, err := n.table()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("nftables remove: %w", err))...)
	}
	if t != nil {
		if t.Flags&tableFlagPersist != 0 && !n.owner {
			// An orphaned persistent table: take it over first (only the owner may delete it).
			if m, err := newTableMsg(n.obj.table, tableFlagOwner|tableFlagPersist); err == nil {
				if err := n.s.send([]netlink.Message{m}); err != nil && isPerm(err) {
					return errors.Join(append(errs, fmt.Errorf("nftables remove: table inet %s: %w", n.obj.table.Name, ErrOwned))...)
				}
			}
		}
		n.s.rec.DelTable(n.obj.table)
		if err := n.write(); err != nil {
			if isPerm(err) {
				err = ErrOwned
			}
			errs = append(errs, fmt.Errorf("nftables remove: delete table inet %s: %w", n.obj.table.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ErrNoTable is returned (wrapped) by List when sesame's table does not exist (never
// initialised, or removed).
var ErrNoTable = errors.New("sesame's nftables table does not exist")

// Close closes the netlink socket. The table, the guard, the hooks and the grants stay in the
// kernel (an owned table loses its owner and stays, persistent); the kernel expires the grants.
func (n *Nftables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	return n.s.close()
}

// validate runs check (Validate or validateKey) and refuses NAT kinds without Config.NAT.
func (n *Nftables) validate(g Grant, check func() error) error {
	if err := check(); err != nil {
		return err
	}
	if g.Kind != Access && !n.cfg.NAT {
		return fmt.Errorf("grant %v: %w", g, ErrNATDisabled)
	}
	return nil
}

// hasNATSets reports whether sesame's table has the NAT sets.
func (n *Nftables) hasNATSets() (bool, error) {
	sets, err := n.s.lib.GetSets(n.obj.table)
	if err != nil {
		return false, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if s.Name == setDnat4 {
			return true, nil
		}
	}
	return false, nil
}

// staleNAT names the NAT chains and sets in sesame's table (which exists).
func (n *Nftables) staleNAT() ([]string, error) {
	var names []string
	chains, err := n.s.lib.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, c := range chains {
		for _, nc := range n.obj.nat.chains() {
			if c.Table.Name == n.obj.table.Name && c.Name == nc.Name {
				names = append(names, "chain "+c.Name)
			}
		}
	}
	sets, err := n.s.lib.GetSets(n.obj.table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		for _, ns := range n.obj.nat.allSets() {
			if s.Name == ns.Name {
				names = append(names, "set "+s.Name)
			}
		}
	}
	return names, nil
}

// deleteStale queues the deletion of the named NAT chains (first: their rules use the sets) and
// sets.
func deleteStale(c *nftables.Conn, o objects, stale []string) {
	for _, ch := range o.nat.chains() {
		if slices.Contains(stale, "chain "+ch.Name) {
			c.DelChain(ch)
		}
	}
	for _, s := range o.nat.allSets() {
		if slices.Contains(stale, "set "+s.Name) {
			c.DelSet(s)
		}
	}
}

package firewall

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/nftables"
)

// Nftables is the nftables Backend. It is safe for concurrent use.
type Nftables struct {
	cfg  Config
	host HostChain
	obj  objects

	mu     sync.Mutex // serialises batches on conn and raw
	conn   *nftables.Conn
	raw    rawConn  // second socket for the fast refresh path
	fast   bool     // kernel supports the fast refresh (probed by Init)
	noFast bool     // tests: never use the fast path
	hook   hostHook // nil without a host chain
	closed bool
}

var _ Backend = (*Nftables)(nil)

// NewNftables opens a netlink connection for cfg (in cfg.NetNSFd's namespace if set). It changes
// nothing in the kernel until Init.
func NewNftables(cfg Config) (*Nftables, error) {
	cfg, host, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if cfg.NetNSFd != 0 {
		opts = append(opts, nftables.WithNetNSFd(cfg.NetNSFd))
	}
	n, err := newNftables(cfg, host, opts...)
	if err != nil {
		return nil, err
	}
	if n.raw, err = dialRaw(cfg.NetNSFd); err != nil {
		n.conn.CloseLasting()
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return n, nil
}

// newNftables is NewNftables with validated cfg and explicit connection options (tests pass
// nftables.WithTestDial).
func newNftables(cfg Config, host HostChain, opts ...nftables.ConnOption) (*Nftables, error) {
	conn, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	n := &Nftables{cfg: cfg, host: host, obj: newObjects(cfg.TableName), conn: conn}
	switch host.Kind {
	case HostIPTables:
		n.hook = &iptablesHook{run: execRunner{nsFd: cfg.NetNSFd}, mark: cfg.Mark}
	case HostNft:
		n.hook = &nftHook{conn: conn, host: host, mark: cfg.Mark}
	}
	return n, nil
}

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("firewall backend closed")

// Init creates sesame's table, sets and chains, or adopts them if they exist: the chains' rules
// and the guard-port set are rewritten from the Config in one atomic batch, while the grant sets
// and their live elements are kept. It then installs the host-chain hook if configured.
func (n *Nftables) Init(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	o := n.obj
	c := n.conn
	c.AddTable(o.table)
	for _, s := range []*nftables.Set{o.grants4, o.grants6, o.guarded} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("nftables init: set %s: %w", s.Name, err)
		}
	}
	c.FlushSet(o.guarded)
	if len(n.cfg.GuardPorts) > 0 {
		elems := make([]nftables.SetElement, len(n.cfg.GuardPorts))
		for i, p := range n.cfg.GuardPorts {
			elems[i] = nftables.SetElement{Key: portKey(p)}
		}
		if err := c.SetAddElements(o.guarded, elems); err != nil {
			return fmt.Errorf("nftables init: guard ports: %w", err)
		}
	}
	c.AddChain(o.mark)
	c.FlushChain(o.mark)
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRule4(o, n.cfg.Mark)})
	c.AddRule(&nftables.Rule{Table: o.table, Chain: o.mark, Exprs: markRule6(o, n.cfg.Mark)})

	// The guard chain exists only with guard ports; a restart without them removes it.
	hasGuard, err := n.chainExists(chainGuard)
	if err != nil {
		return fmt.Errorf("nftables init: %w", err)
	}
	if len(n.cfg.GuardPorts) > 0 {
		c.AddChain(o.guard)
		c.FlushChain(o.guard)
		c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: ctEstablished()})
		if !n.cfg.GuardLoopback {
			c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: loopbackAccept()})
		}
		c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: markAccept(n.cfg.Mark)})
		c.AddRule(&nftables.Rule{Table: o.table, Chain: o.guard, Exprs: guardDrop(o)})
	} else if hasGuard {
		c.FlushChain(o.guard)
		c.DelChain(o.guard)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables init: table inet %s: %w", o.table.Name, err)
	}
	n.fast = false
	if n.raw != nil && !n.noFast {
		if n.fast, err = n.probeFastRefresh(); err != nil {
			return fmt.Errorf("nftables init: %w", err)
		}
	}
	if n.hook != nil {
		if err := n.hook.install(ctx); err != nil {
			return fmt.Errorf("nftables init: host chain %s: %w", n.host, err)
		}
	}
	return nil
}

// chainExists reports whether sesame's table has the named chain. A missing table is no error.
func (n *Nftables) chainExists(name string) (bool, error) {
	chains, err := n.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == n.obj.table.Name && ch.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// Grant adds g, or restarts its timeout if it exists.
func (n *Nftables) Grant(ctx context.Context, g Grant) error {
	return n.GrantMany(ctx, []Grant{g})
}

// grantsPerBatch bounds one netlink batch: three element messages per family (add, delete,
// add) of about 50 bytes per element must fit the socket's default 208 KiB send buffer.
const grantsPerBatch = 1000

// GrantMany grants (or refreshes) all of gs, in transactions of up to grantsPerBatch grants
// per address family; an invalid grant fails the call before anything is sent, and a failed
// transaction stops it (earlier ones stay applied).
//
// A refresh must restart the timeout, but re-adding an existing element is a no-op in the
// kernel. With the fast path (see the package doc) each add carries the expiration; without
// it each transaction adds the elements (creating missing ones), deletes them, and adds them
// again, which leaves every element with a fresh timeout on every kernel.
func (n *Nftables) GrantMany(ctx context.Context, gs []Grant) error {
	for _, g := range gs {
		if err := g.Validate(); err != nil {
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
		v4, v6 := elements(chunk, true)
		d4, d6 := elements(chunk, false)
		for _, fam := range []struct {
			set        *nftables.Set
			elems, del []nftables.SetElement
		}{{n.obj.grants4, v4, d4}, {n.obj.grants6, v6, d6}} {
			if len(fam.elems) == 0 {
				continue
			}
			if n.fast {
				if err := addExpiring(n.raw, fam.set, fam.elems); err != nil {
					return fmt.Errorf("nftables grant %v (and %d more): %w", chunk[0], len(chunk)-1, err)
				}
				continue
			}
			if err := n.conn.SetAddElements(fam.set, fam.elems); err != nil {
				return fmt.Errorf("nftables grant: %w", err)
			}
			if err := n.conn.SetDeleteElements(fam.set, fam.del); err != nil {
				return fmt.Errorf("nftables grant: %w", err)
			}
			if err := n.conn.SetAddElements(fam.set, fam.elems); err != nil {
				return fmt.Errorf("nftables grant: %w", err)
			}
		}
		if n.fast {
			continue
		}
		if err := n.conn.Flush(); err != nil {
			return fmt.Errorf("nftables grant %v (and %d more): %w", chunk[0], len(chunk)-1, err)
		}
	}
	return nil
}

// elements splits gs into set elements per family, with timeouts if withTimeout.
func elements(gs []Grant, withTimeout bool) (v4, v6 []nftables.SetElement) {
	for _, g := range gs {
		e := nftables.SetElement{Key: grantKey(g)}
		if withTimeout {
			e.Timeout = g.Timeout
		}
		if isV4(g.Src) {
			v4 = append(v4, e)
		} else {
			v6 = append(v6, e)
		}
	}
	return v4, v6
}

// Revoke removes g (its Timeout is ignored). It is idempotent: the element is added with a
// short timeout and deleted in one transaction, so a missing element is no error.
func (n *Nftables) Revoke(ctx context.Context, g Grant) error {
	if err := g.validateKey(); err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	set := n.obj.grants6
	if isV4(g.Src) {
		set = n.obj.grants4
	}
	k := grantKey(g)
	if err := n.conn.SetAddElements(set, []nftables.SetElement{{Key: k, Timeout: time.Second}}); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if err := n.conn.SetDeleteElements(set, []nftables.SetElement{{Key: k}}); err != nil {
		return fmt.Errorf("nftables revoke: %w", err)
	}
	if err := n.conn.Flush(); err != nil {
		return fmt.Errorf("nftables revoke %v: %w", g, err)
	}
	return nil
}

// List returns the live grants with their time left, IPv4 first, in kernel order. It fails
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
	if ok, err := n.tableExists(); err != nil {
		return nil, fmt.Errorf("nftables list: %w", err)
	} else if !ok {
		return nil, fmt.Errorf("nftables list: %w", ErrNoTable)
	}
	var out []Entry
	for _, s := range []*nftables.Set{n.obj.grants4, n.obj.grants6} {
		elems, err := n.conn.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
		}
		for _, e := range elems {
			g, err := parseKey(e.Key)
			if err != nil {
				return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
			}
			g.Timeout = e.Timeout
			out = append(out, Entry{Grant: g, Expires: e.Expires})
		}
	}
	return out, nil
}

// Flush removes the host-chain hook and sesame's table with all grants. It is idempotent.
func (n *Nftables) Flush(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	var errs []error
	if n.hook != nil {
		if err := n.hook.remove(ctx); err != nil {
			errs = append(errs, fmt.Errorf("nftables flush: host chain %s: %w", n.host, err))
		}
	}
	ok, err := n.tableExists()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("nftables flush: %w", err))...)
	}
	if ok {
		n.conn.DelTable(n.obj.table)
		if err := n.conn.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("nftables flush: delete table inet %s: %w", n.obj.table.Name, err))
		}
	}
	return errors.Join(errs...)
}

// ErrNoTable is returned (wrapped) by List when sesame's table does not exist (never
// initialised, or flushed).
var ErrNoTable = errors.New("sesame's nftables table does not exist")

// tableExists reports whether sesame's inet table exists.
func (n *Nftables) tableExists() (bool, error) {
	tables, err := n.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == n.obj.table.Name {
			return true, nil
		}
	}
	return false, nil
}

// Close closes the netlink connection. Grants and hooks stay; the kernel expires the grants.
func (n *Nftables) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var rerr error
	if n.raw != nil {
		rerr = n.raw.Close()
	}
	return errors.Join(n.conn.CloseLasting(), rerr)
}

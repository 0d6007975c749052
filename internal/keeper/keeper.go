// Package keeper keeps sesame's firewall promise while the daemon runs: no guarded port is
// reachable without a live grant, and no live grant ends early, whatever else changes the
// ruleset.
//
// A Keeper sits between the packet pipeline and the firewall backend. Every grant goes through
// it: it merges the grant into the ledger (the daemon's own record of live grants; the later
// expiry wins per full key, kind and NAT target included, so a shorter knock never cuts a longer
// grant) and sends the kernel the merged time and the values (SNAT, Masquerade, DisableDNAT)
// that went with it. Start reconciles the ledger with the kernel (grants the kernel lost are restored with
// their time left, grants only the kernel has are adopted). Run watches the kernel's ruleset
// events (internal/nfevents): when anyone else deletes or flushes something of sesame's (its
// table, chains, sets, or its hook rule in a host chain), it runs the backend's Check, rebuilds
// what is missing with Heal, restores every live grant from the ledger, and logs one ERROR
// naming what was removed and what was restored. A periodic Check backs the events up.
package keeper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nfevents"
)

// Ledger is the part of *ledger.Ledger the keeper uses.
type Ledger interface {
	Record(es []ledger.Entry) []ledger.Entry
	Remove(keys ...ledger.Key)
	Live() []ledger.Entry
	Unsorted() []ledger.Entry
	Clear()
	Sync() error
}

// Config configures a Keeper.
type Config struct {
	Backend firewall.Backend
	Ledger  Ledger
	// Table is sesame's table name (events about it trigger a check).
	Table string
	// HostChains are the host chains hooked (events about their tables trigger a check).
	HostChains []firewall.HostChain
	// Detect, if set, re-reads the host's ruleset for chains that need a hook; it runs at Start
	// and after another program adds chains or tables (a host firewall started or reloaded).
	Detect func(ctx context.Context) ([]firewall.HostChain, error)
	// CheckEvery is the period of the safety-net Check (0: 10 s).
	CheckEvery time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

// Keeper is safe for concurrent use.
type Keeper struct {
	cfg Config
	mu  sync.Mutex // serialises ledger merges with their kernel writes, and heals

	heals  int
	lastMs float64

	pending []nfevents.Event // Run's: events of a transaction whose NewGen is not read yet
}

// New returns a Keeper for cfg.
func New(cfg Config) *Keeper {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 10 * time.Second
	}
	return &Keeper{cfg: cfg}
}

// Start initialises the backend and reconciles it with the ledger: every ledger grant the
// kernel lacks is restored with its time left, and every kernel grant the ledger lacks is
// recorded. revokeAll (FLUSH_IPT_AT_INIT Y) revokes every grant instead.
func (k *Keeper) Start(ctx context.Context, revokeAll bool) (restored, adopted int, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.cfg.Backend.Init(ctx); err != nil {
		return 0, 0, err
	}
	if revokeAll {
		if err := k.cfg.Backend.RevokeAll(ctx); err != nil {
			return 0, 0, fmt.Errorf("revoke grants at start: %w", err)
		}
		k.cfg.Ledger.Clear()
		return 0, 0, nil
	}
	// The kernel reports time left as of its dump, which takes seconds for 100,000 grants: the
	// clock read before the dump gives a lower bound of each expiry (never a longer grant than
	// the kernel's), and the dump's duration is the uncertainty when comparing with the ledger.
	before := k.cfg.Now()
	kernel, err := k.cfg.Backend.List(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("list grants: %w", err)
	}
	now := k.cfg.Now()
	slack := now.Sub(before) + time.Second
	have := map[ledger.Key]time.Time{}
	var adopt []ledger.Entry
	for _, e := range kernel {
		le := EntryOf(e.Grant, before.Add(e.Expires))
		have[le.Key] = le.Expires
		adopt = append(adopt, le)
	}
	k.cfg.Ledger.Record(adopt)
	var restore []firewall.Grant
	for _, e := range k.cfg.Ledger.Unsorted() {
		if exp, ok := have[e.Key]; ok && !exp.Before(e.Expires.Add(-slack)) {
			continue
		}
		if g, ok := grantOf(e, now); ok {
			restore = append(restore, g)
		}
	}
	if len(restore) > 0 {
		if err := k.cfg.Backend.GrantMany(ctx, restore); err != nil {
			return 0, 0, fmt.Errorf("restore %d grants from the ledger: %w", len(restore), err)
		}
	}
	return len(restore), len(kernel), k.cfg.Ledger.Sync()
}

// grantOf is the grant that gives e its remaining time, false if it has under 1 ms left.
func grantOf(e ledger.Entry, now time.Time) (firewall.Grant, bool) {
	left := e.Expires.Sub(now).Truncate(time.Millisecond)
	if left < time.Millisecond {
		return firewall.Grant{}, false
	}
	g := GrantOf(e)
	g.Timeout = min(left, firewall.MaxTimeout)
	return g, true
}

// KeyOf is the ledger key of g: its identity (firewall.Grant.Ident), destination, kind and NAT
// target included.
func KeyOf(g firewall.Grant) ledger.Key {
	return ledger.Key{Src: g.Src.Unmap(), Dst: g.Dst.Unmap(), Proto: g.Proto, Port: g.Port, Kind: ledger.Kind(g.Kind),
		NATAddr: g.NATAddr.Unmap(), NATPort: g.NATPort, ForwardAll: g.ForwardAll}
}

// EntryOf is the ledger entry of g ending at expires, with g's stanza and NAT values.
func EntryOf(g firewall.Grant, expires time.Time) ledger.Entry {
	return ledger.Entry{Key: KeyOf(g), Expires: expires, Stanza: g.Stanza, SNAT: g.SNAT.Unmap(),
		Masquerade: g.Masquerade, DisableDNAT: g.DisableDNAT}
}

// GrantOf is the grant that e records, without a timeout.
func GrantOf(e ledger.Entry) firewall.Grant {
	return firewall.Grant{Src: e.Src, Dst: e.Dst, Proto: e.Proto, Port: e.Port, Stanza: e.Stanza, Kind: firewall.Kind(e.Kind),
		NATAddr: e.NATAddr, NATPort: e.NATPort, ForwardAll: e.ForwardAll, SNAT: e.SNAT, Masquerade: e.Masquerade,
		DisableDNAT: e.DisableDNAT}
}

// Grant is GrantMany for one grant.
func (k *Keeper) Grant(ctx context.Context, g firewall.Grant) error {
	return k.GrantMany(ctx, []firewall.Grant{g})
}

// GrantMany records gs in the ledger and grants them for the merged time: a grant that is
// already live with a later expiry keeps it. A grant that meets a missing table heals the
// ruleset and retries once.
func (k *Keeper) GrantMany(ctx context.Context, gs []firewall.Grant) error {
	for _, g := range gs {
		if err := g.Validate(); err != nil {
			return err
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.cfg.Now()
	es := make([]ledger.Entry, len(gs))
	for i, g := range gs {
		es[i] = EntryOf(g, now.Add(g.Timeout))
	}
	merged := k.cfg.Ledger.Record(es)
	out := make([]firewall.Grant, 0, len(merged))
	for i, e := range merged {
		g := gs[i]
		// The kernel gets what the ledger keeps: the merged expiry and, for a NAT grant, the
		// values that went with it (so a heal restores exactly what is live).
		g.SNAT, g.Masquerade, g.DisableDNAT, g.Stanza = e.SNAT, e.Masquerade, e.DisableDNAT, e.Stanza
		g.Timeout = min(max(e.Expires.Sub(now).Truncate(time.Millisecond), g.Timeout), firewall.MaxTimeout)
		out = append(out, g)
	}
	err := k.cfg.Backend.GrantMany(ctx, out)
	if err != nil && ctx.Err() == nil {
		// The table may have been removed under us (fallback path): heal and retry once.
		if herr := k.heal(ctx, "grant failed: "+err.Error(), true); herr == nil {
			err = k.cfg.Backend.GrantMany(ctx, out)
		}
	}
	return err
}

// RevokeAll revokes every grant (FLUSH_IPT_AT_EXIT Y, --fw-flush) and clears the ledger.
func (k *Keeper) RevokeAll(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.cfg.Backend.RevokeAll(ctx); err != nil {
		return err
	}
	k.cfg.Ledger.Clear()
	return k.cfg.Ledger.Sync()
}

// Revoke revokes the grants for keys before they expire (a revocation from another gateway of
// the fleet): each is removed from the kernel and then from the ledger, so a heal or a restart
// does not bring it back. Keys without a grant are ignored. On a backend error the keys revoked
// so far are removed from the ledger and the error is returned; the rest stay granted.
func (k *Keeper) Revoke(ctx context.Context, keys []ledger.Key) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	done := make([]ledger.Key, 0, len(keys))
	var err error
	for _, key := range keys {
		g := GrantOf(ledger.Entry{Key: key})
		g.Src = g.Src.Unmap()
		if err = k.cfg.Backend.Revoke(ctx, g); err != nil {
			err = fmt.Errorf("revoke %v: %w", g, err)
			break
		}
		done = append(done, key)
	}
	k.cfg.Ledger.Remove(done...)
	return err
}

// Live returns the ledger's live grants.
func (k *Keeper) Live() []ledger.Entry { return k.cfg.Ledger.Live() }

// Heals returns how many heals ran and how long the last took (milliseconds).
func (k *Keeper) Heals() (int, float64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.heals, k.lastMs
}

// CheckNow runs Check and heals if something is missing. It returns what was missing.
func (k *Keeper) CheckNow(ctx context.Context, why string) ([]string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.checkLocked(ctx, why)
}

func (k *Keeper) checkLocked(ctx context.Context, why string) ([]string, error) {
	missing, err := k.cfg.Backend.Check(ctx)
	if err != nil {
		return nil, err
	}
	if len(missing) == 0 {
		return nil, nil
	}
	return missing, k.heal(ctx, why+": missing "+strings.Join(missing, ", "), lostGrants(missing))
}

// lostGrants reports whether what Check found missing took grants with it (the table or a set
// of grants, NAT sets included); a lost hook or chain leaves the sets' elements in place.
func lostGrants(missing []string) bool {
	for _, m := range missing {
		if strings.HasPrefix(m, "table") || strings.HasPrefix(m, "set ") && m != "set guarded" {
			return true
		}
	}
	return false
}

// heal rebuilds the ruleset and, if regrant, restores every live ledger grant. k.mu is held.
func (k *Keeper) heal(ctx context.Context, why string, regrant bool) error {
	start := time.Now()
	if err := k.cfg.Backend.Heal(ctx); err != nil {
		k.cfg.Log.Error("firewall: heal failed", "why", why, "err", err)
		return err
	}
	now := k.cfg.Now()
	var restore []firewall.Grant
	if regrant {
		for _, e := range k.cfg.Ledger.Unsorted() {
			if g, ok := grantOf(e, now); ok {
				restore = append(restore, g)
			}
		}
	}
	if len(restore) > 0 {
		if err := k.cfg.Backend.GrantMany(ctx, restore); err != nil {
			k.cfg.Log.Error("firewall: restoring grants failed", "why", why, "grants", len(restore), "err", err)
			return err
		}
	}
	took := time.Since(start)
	k.heals++
	k.lastMs = float64(took.Microseconds()) / 1000
	what := "table, guard and hooks"
	if regrant {
		what = fmt.Sprintf("table, guard, hooks and %d live grant(s)", len(restore))
	}
	k.cfg.Log.Error("firewall: sesame's rules were removed by someone else; restored", "removed", why,
		"restored", what, "took", took.Round(time.Microsecond))
	return nil
}

// Run watches events until ctx ends or events fails, checking (and healing) after every
// transaction of another program that deletes or flushes something of sesame's, and every
// CheckEvery. It re-detects host chains after another program adds tables or chains.
func (k *Keeper) Run(ctx context.Context, events nfevents.Source) error {
	type batch struct {
		evs []nfevents.Event
		err error
	}
	ch := make(chan batch, 64)
	if events != nil {
		stop := context.AfterFunc(ctx, func() { events.Close() })
		defer stop()
		go func() {
			for {
				evs, err := events.Next()
				select {
				case ch <- batch{evs, err}:
				case <-ctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
	}
	tick := time.NewTicker(k.cfg.CheckEvery)
	defer tick.Stop()
	self := uint32(os.Getpid())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := k.CheckNow(ctx, "periodic check"); err != nil && ctx.Err() == nil {
				k.cfg.Log.Error("firewall: check failed", "err", err)
			}
		case b := <-ch:
			if b.err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("ruleset events: %w", b.err)
			}
			v := k.relevant(b.evs, self)
			// Coalesce what is already queued (one heal for a burst).
			for more := true; more; {
				select {
				case b2 := <-ch:
					if b2.err != nil {
						more = false
						ch <- b2
						break
					}
					v = v.or(k.relevant(b2.evs, self))
				default:
					more = false
				}
			}
			if v.detect && k.cfg.Detect != nil {
				k.redetect(ctx)
				v.check = true
			}
			if v.what == "" {
				v.what = "the ruleset changed"
			}
			switch {
			case v.regrant:
				if err := k.HealNow(ctx, v.what); err != nil && ctx.Err() == nil {
					k.cfg.Log.Error("firewall: heal failed", "err", err)
				}
			case v.check:
				if _, err := k.CheckNow(ctx, v.what); err != nil && ctx.Err() == nil {
					k.cfg.Log.Error("firewall: check failed", "err", err)
				}
			}
		}
	}
}

// verdict is what a batch of events calls for.
type verdict struct {
	check   bool   // something of sesame's may be gone: Check, heal what is missing
	detect  bool   // another program added tables or chains: look for new dropping chains
	regrant bool   // another program deleted grant elements: restore them from the ledger
	what    string // the first event that called for it
}

func (v verdict) or(w verdict) verdict {
	v.check, v.detect, v.regrant = v.check || w.check, v.detect || w.detect, v.regrant || w.regrant
	if v.what == "" {
		v.what = w.what
	}
	return v
}

// HealNow rebuilds the ruleset and restores every live grant from the ledger, whatever Check
// says (grant elements deleted by another program are not something Check can see).
func (k *Keeper) HealNow(ctx context.Context, why string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.heal(ctx, why, true)
}

// relevant judges evs (one read's worth, possibly several transactions). Only other programs'
// transactions count: sesame's own are recognised by the committing thread (NFTA_GEN_PROC_PID
// is a thread id). Element deletions in sesame's table by another program count too (the kernel
// reports no event when an element times out).
func (k *Keeper) relevant(evs []nfevents.Event, self uint32) verdict {
	hosted := map[string]bool{}
	for _, h := range k.cfg.HostChains {
		switch h.Kind {
		case firewall.HostIPTables:
			hosted["filter"] = true
		case firewall.HostNft:
			hosted[h.Table] = true
		}
	}
	var v verdict
	judge := func(p nfevents.Event) {
		note := func() {
			if v.what == "" {
				v.what = p.String()
			}
		}
		switch p.Kind {
		case nfevents.DelTable, nfevents.DelChain, nfevents.DelSet, nfevents.DelRule:
			if p.Table == k.cfg.Table || hosted[p.Table] {
				v.check = true
				note()
			}
		case nfevents.DelSetElem:
			if p.Table == k.cfg.Table {
				v.check = true
				if p.Set != "guarded" {
					v.regrant = true
				}
				note()
			}
		case nfevents.NewTable, nfevents.NewChain:
			if p.Table != k.cfg.Table {
				v.detect = true
			}
		}
	}
	for _, e := range evs {
		if e.Kind == nfevents.Overrun {
			k.pending = k.pending[:0]
			return verdict{check: true, detect: true, what: "ruleset events lost (overrun)"}
		}
		if e.Kind != nfevents.NewGen {
			if len(k.pending) < maxPending {
				k.pending = append(k.pending, e)
			}
			continue
		}
		if !isOwnThread(e.PID, self) {
			for _, p := range k.pending {
				judge(p)
			}
		}
		k.pending = k.pending[:0]
	}
	// A transaction whose NewGen has not arrived yet (split across reads) stays pending, but a
	// deletion of sesame's objects in it is checked now: at worst a needless check.
	for _, p := range k.pending {
		switch p.Kind {
		case nfevents.DelTable, nfevents.DelChain, nfevents.DelSet, nfevents.DelRule:
			if p.Table == k.cfg.Table || hosted[p.Table] {
				v.check = true
				if v.what == "" {
					v.what = p.String()
				}
			}
		}
	}
	return v
}

// maxPending bounds the events kept while a transaction's NewGen is awaited (a huge transaction
// keeps only its first events; the kernel's own overrun marker covers a lost NewGen).
const maxPending = 4096

// isOwnThread reports whether tid is a thread of process pid.
func isOwnThread(tid, pid uint32) bool {
	if tid == pid {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, tid))
	return err == nil
}

// redetect re-reads the host's ruleset for chains to hook.
func (k *Keeper) redetect(ctx context.Context) {
	hosts, err := k.cfg.Detect(ctx)
	if err != nil {
		k.cfg.Log.Warn("firewall: host firewall detection failed", "err", err)
		return
	}
	type setter interface {
		SetHostChains([]firewall.HostChain)
		HostChains() []firewall.HostChain
	}
	s, ok := k.cfg.Backend.(setter)
	if !ok {
		return
	}
	old := s.HostChains()
	merged := append(append([]firewall.HostChain(nil), old...), hosts...)
	s.SetHostChains(merged)
	if now := s.HostChains(); len(now) != len(old) {
		k.mu.Lock()
		k.cfg.HostChains = now
		k.mu.Unlock()
		k.cfg.Log.Warn("firewall: a host firewall chain appeared that drops; hooking it", "chains", hostNames(now))
	}
}

func hostNames(hs []firewall.HostChain) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = h.String()
	}
	return strings.Join(s, "; ")
}

// SetGuardPorts changes the guarded ports (a SIGHUP that changed OPEN_PORTS) when the backend
// supports it.
func (k *Keeper) SetGuardPorts(ctx context.Context, ports []firewall.Port) error {
	s, ok := k.cfg.Backend.(interface {
		SetGuardPorts(context.Context, []firewall.Port) error
	})
	if !ok {
		return errors.New("keeper: the firewall backend cannot change its guarded ports")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return s.SetGuardPorts(ctx, ports)
}

package hostfw

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/sesame-spa/sesame/internal/firewall"
)

// Reader is what Detect reads over netlink. *nftables.Conn implements it.
type Reader interface {
	ListTables() ([]*nftables.Table, error)
	ListChains() ([]*nftables.Chain, error)
	GetRules(*nftables.Table, *nftables.Chain) ([]*nftables.Rule, error)
	GetSetByName(*nftables.Table, string) (*nftables.Set, error)
	GetSetElements(*nftables.Set) ([]nftables.SetElement, error)
}

// Options configures Detect. The zero value examines the caller's namespace, with sesame's
// table "sesame" and mark firewall.DefaultMark.
type Options struct {
	// TableName is sesame's own inet table, which is not examined (default "sesame").
	TableName string
	// Mark is the mark bit(s) sesame sets on granted packets (default firewall.DefaultMark).
	Mark uint32
	// NetNSFd, if non-zero, is an open network-namespace file descriptor to examine: Detect
	// opens its netlink connection there when given no Reader, and the default Host runs there.
	NetNSFd int
	// Host reads the legacy iptables side (default SystemHost{NetNSFd}).
	Host Host
	// Ports are the ports sesame guards, used only to write exact Fix texts.
	Ports []firewall.Port
}

// tableFlagOwner is NFT_TABLE_F_OWNER: only the creating netlink socket may change the table.
const tableFlagOwner = 0x2

// tableFlags returns t's NFTA_TABLE_FLAGS. google/nftables v0.3.0 decodes that big-endian
// attribute in host byte order, so on little-endian hosts Table.Flags holds the flags
// byte-swapped (owner 0x2 reads as 0x02000000); this undoes it. TestIntegrationOwnedTable
// checks it against the kernel.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

// prioMark is the priority of sesame's mark chain: chains at or before it see no mark yet.
const prioMark = -150

// Detect examines the ruleset and returns every chain that may drop a packet sesame grants,
// with the hook each needs. r is the netlink side; if r is nil, Detect opens a connection with
// nftables.New (in opt.NetNSFd when non-zero). It returns an error, wrapped with what it was
// reading, when the ruleset or the legacy tables cannot be read; an iptables-legacy binary that
// is missing is not an error but an Error-level Finding.
func Detect(ctx context.Context, r Reader, opt Options) (Report, error) {
	if opt.TableName == "" {
		opt.TableName = firewall.DefaultTableName
	}
	if opt.Mark == 0 {
		opt.Mark = firewall.DefaultMark
	}
	if opt.Host == nil {
		opt.Host = SystemHost{NetNSFd: opt.NetNSFd}
	}
	if r == nil {
		var opts []nftables.ConnOption
		if opt.NetNSFd != 0 {
			opts = append(opts, nftables.WithNetNSFd(opt.NetNSFd))
		}
		c, err := nftables.New(opts...)
		if err != nil {
			return Report{}, fmt.Errorf("open netlink: %w", err)
		}
		r = c
	}
	d := detector{opt: opt, r: r, rep: Report{mark: opt.Mark}}
	if err := d.nft(ctx); err != nil {
		return Report{}, err
	}
	for _, v6 := range []bool{false, true} {
		if err := d.legacy(ctx, v6); err != nil {
			return Report{}, err
		}
	}
	slices.SortStableFunc(d.rep.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(familyRank(a.Family), familyRank(b.Family)), cmp.Compare(a.Table, b.Table),
			cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Chain, b.Chain), cmp.Compare(a.Kind, b.Kind))
	})
	return d.rep, nil
}

func familyRank(f string) int { return map[string]int{"ip": 0, "ip6": 1, "inet": 2}[f] }

type detector struct {
	opt Options
	r   Reader
	rep Report
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	case nftables.TableFamilyARP:
		return "arp"
	}
	return fmt.Sprintf("family %d", f)
}

type tableKey struct {
	family nftables.TableFamily
	name   string
}

func isInputFilter(c *nftables.Chain) bool {
	return c.Hooknum != nil && *c.Hooknum == *nftables.ChainHookInput && c.Priority != nil &&
		c.Type == nftables.ChainTypeFilter
}

func (d *detector) nft(ctx context.Context) error {
	tables, err := d.r.ListTables()
	if err != nil {
		return fmt.Errorf("list nftables tables: %w", err)
	}
	chains, err := d.r.ListChains()
	if err != nil {
		return fmt.Errorf("list nftables chains: %w", err)
	}
	byTable := map[tableKey][]*nftables.Chain{}
	for _, c := range chains {
		if c.Table != nil {
			k := tableKey{c.Table.Family, c.Table.Name}
			byTable[k] = append(byTable[k], c)
		}
	}
	slices.SortFunc(tables, func(a, b *nftables.Table) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Name, b.Name))
	})
	for _, t := range tables {
		fam := familyName(t.Family)
		cs := byTable[tableKey{t.Family, t.Name}]
		switch {
		case fam == "netdev":
			for _, c := range cs {
				if c.Hooknum != nil && *c.Hooknum == *nftables.ChainHookIngress {
					d.rep.Notes = append(d.rep.Notes, fmt.Sprintf("netdev %s %s: ingress chains are not examined; a drop there happens before sesame's mark", t.Name, c.Name))
				}
			}
			continue
		case fam != "ip" && fam != "ip6" && fam != "inet":
			continue
		case fam == "inet" && t.Name == d.opt.TableName:
			continue
		case !slices.ContainsFunc(cs, isInputFilter):
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.nftTable(t, fam, cs); err != nil {
			return err
		}
	}
	return nil
}

// nftTable models every chain of table t and reports its input filter base chains.
func (d *detector) nftTable(t *nftables.Table, fam string, cs []*nftables.Chain) error {
	models := map[string]*chainModel{}
	setCache := map[string]*setModel{}
	sets := func(name string) *setModel {
		if m, ok := setCache[name]; ok {
			return m
		}
		var m *setModel
		if s, err := d.r.GetSetByName(t, name); err == nil {
			if elems, err := d.r.GetSetElements(s); err == nil {
				m = newSetModel(s, elems)
			}
		}
		setCache[name] = m // nil: unreadable, lookups stay undecided
		return m
	}
	ufw := false
	for _, c := range cs {
		rules, err := d.r.GetRules(t, c)
		if err != nil {
			return fmt.Errorf("list rules of %s %s %s: %w", fam, t.Name, c.Name, err)
		}
		m := &chainModel{family: fam, table: t.Name, name: c.Name, siblings: models}
		for i, r := range rules {
			m.rules = append(m.rules, translateRule(i+1, r, fam, sets))
		}
		models[c.Name] = m
		ufw = ufw || isUFWChain(c.Name)
	}
	for _, c := range cs {
		if !isInputFilter(c) {
			continue
		}
		m := models[c.Name]
		m.base = true
		m.prio = int(*c.Priority)
		m.policyDrop = c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop
		drops, why := m.mayDrop()
		if !drops {
			continue
		}
		d.rep.chains = append(d.rep.chains, m)
		f := Finding{Kind: NftChain, Family: fam, Table: t.Name, Chain: c.Name, Priority: m.prio, Why: why}
		iptables := (fam == "ip" || fam == "ip6") && c.Name == "INPUT" && isIPTablesTable(t.Name)
		if iptables {
			f.Kind, f.Binary = IPTablesNft, "iptables-nft"
			if fam == "ip6" {
				f.Kind, f.Binary = IP6TablesNft, "ip6tables-nft"
			}
			if ufw {
				f.Manager = "ufw"
				f.Note = "the hook goes in INPUT, ahead of the jumps to ufw's chains"
			}
		}
		if fam == "inet" && t.Name == "firewalld" {
			f.Manager = "firewalld"
		}
		d.judge(&f, m, tableFlags(t)&tableFlagOwner != 0)
		d.rep.Findings = append(d.rep.Findings, f)
	}
	return nil
}

// isIPTablesTable reports whether name is one of the tables iptables-nft creates.
func isIPTablesTable(name string) bool {
	switch name {
	case "filter", "mangle", "raw", "security", "nat":
		return true
	}
	return false
}

func isUFWChain(name string) bool {
	return strings.HasPrefix(name, "ufw-") || strings.HasPrefix(name, "ufw6-")
}

// judge sets the Level, Hooked, BySesame, Hook and Fix of f for chain m.
func (d *detector) judge(f *Finding, m *chainModel, owned bool) {
	f.Hooked = m.hooked(d.opt.Mark)
	f.BySesame = m.hasSesameRule()
	markSpec := fmt.Sprintf("0x%x/0x%x", d.opt.Mark, d.opt.Mark)
	switch {
	case f.Priority <= prioMark:
		f.Level = Error
		f.Fix = fmt.Sprintf("this chain runs at priority %d, not after sesame's mark chain (%d), so granted packets are not marked yet: move its drops to a chain at a priority above %d (filter is 0), or set SESAME_HOST_CHAIN to a chain that does",
			f.Priority, prioMark, prioMark)
	case f.Hooked && !f.BySesame:
		// Already accepts the mark (an owned table too, such as another sesame server's guard):
		// nothing to add.
		f.Level = Accepted
	case owned:
		f.Level = Error
		f.Fix = d.ownedFix(f, markSpec)
	case f.Binary != "": // an iptables kind
		if f.Table != "filter" {
			f.Level = Error
			f.Fix = fmt.Sprintf("sesame hooks only the filter table; add the rule yourself: %s -t %s -I INPUT 1 -m mark --mark %s -m comment --comment %s -j ACCEPT",
				strings.TrimSuffix(f.Binary, "-nft"), f.Table, markSpec, hookComment)
			return
		}
		f.Level, f.Hook = Hook, firewall.HostChain{Kind: firewall.HostIPTables, Legacy: strings.HasSuffix(f.Binary, "-legacy")}
	default:
		h := firewall.HostChain{Kind: firewall.HostNft, Family: f.Family, Table: f.Table, Chain: f.Chain}
		if p, err := firewall.ParseHostChain(h.String()); err != nil || p != h {
			f.Level = Error
			f.Fix = fmt.Sprintf("sesame cannot name this chain in SESAME_HOST_CHAIN; add the rule yourself: nft insert rule %s %q %q meta mark and %#x == %#x accept comment %q",
				f.Family, f.Table, f.Chain, d.opt.Mark, d.opt.Mark, hookComment)
			return
		}
		f.Level, f.Hook = Hook, h
		if f.Manager == "firewalld" {
			f.Note = "firewalld's reload (firewall-cmd --reload, a restart) removes the hook, which sesame must add again"
		}
	}
}

// ownedFix is the Fix for a chain in a table another program owns (NFT_TABLE_F_OWNER).
func (d *detector) ownedFix(f *Finding, markSpec string) string {
	guard := "SESAME_GUARD_PORTS tcp/PORT"
	add := "--add-port=PORT/tcp"
	if len(d.opt.Ports) > 0 {
		var g, a []string
		for _, p := range d.opt.Ports {
			g = append(g, p.String())
			proto, port, _ := strings.Cut(p.String(), "/")
			a = append(a, "--add-port="+port+"/"+proto)
		}
		guard, add = "SESAME_GUARD_PORTS "+strings.Join(g, ", "), strings.Join(a, " ")
	}
	if f.Manager == "firewalld" {
		return fmt.Sprintf("firewalld owns table inet firewalld (NftablesTableOwner), so only firewalld can add an exception: open the ports in firewalld and let sesame's own table guard them (firewall-cmd --permanent %s && firewall-cmd --reload, and %s in fwknopd.conf), or set NftablesTableOwner=no in /etc/firewalld/firewalld.conf and restart firewalld",
			add, guard)
	}
	return fmt.Sprintf("table %s %s is owned by another program (flags owner), which alone can change it: make it accept packets with mark %s, or open the ports there and set %s in fwknopd.conf",
		f.Family, f.Table, markSpec, guard)
}

// legacy examines the legacy (x_tables) filter table of one IP version, if it is loaded.
func (d *detector) legacy(ctx context.Context, v6 bool) error {
	fam, kind, bin := "ip", IPTablesLegacy, "iptables-legacy"
	if v6 {
		fam, kind, bin = "ip6", IP6TablesLegacy, "ip6tables-legacy"
	}
	names, err := d.opt.Host.LegacyTables(v6)
	if errors.Is(err, fs.ErrPermission) {
		// Not root (the daemon runs as its own user with CAP_NET_ADMIN): the list of legacy
		// tables is root's to read. Say so, and keep the nftables findings.
		d.rep.Notes = append(d.rep.Notes, fmt.Sprintf("%s filter INPUT: cannot tell whether the legacy %s filter table is in use (its list is root's to read); if this host uses %s, set SESAME_HOST_CHAIN iptables-legacy",
			fam, bin, bin))
		return nil
	}
	if err != nil {
		return fmt.Errorf("legacy %s tables: %w", bin, err)
	}
	if !slices.Contains(names, "filter") {
		// Running the binary would load the legacy filter table: only look when it is there.
		return nil
	}
	f := Finding{Kind: kind, Family: fam, Table: "filter", Chain: "INPUT", Binary: bin}
	out, err := d.opt.Host.Run(ctx, bin, "-w", "-S")
	if errors.Is(err, exec.ErrNotFound) {
		f.Level = Error
		f.Why = "the legacy filter table is loaded, but " + bin + " is not installed to read it"
		f.Fix = "install the legacy iptables commands (apt-get install iptables) so sesame can read and hook the legacy INPUT chain, or set SESAME_HOST_CHAIN"
		d.rep.Findings = append(d.rep.Findings, f)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s -w -S: %w", bin, err)
	}
	chains, err := parseSave(string(out), fam, "filter")
	if err != nil {
		return fmt.Errorf("parse %s -S: %w", bin, err)
	}
	m := chains["INPUT"]
	if m == nil || !m.base {
		return fmt.Errorf("%s -S: no built-in INPUT chain", bin)
	}
	drops, why := m.mayDrop()
	if !drops {
		return nil
	}
	d.rep.chains = append(d.rep.chains, m)
	f.Why = why
	for name := range chains {
		if isUFWChain(name) {
			f.Manager = "ufw"
		}
	}
	d.judge(&f, m, false)
	d.rep.Findings = append(d.rep.Findings, f)
	return nil
}

package firewall

import (
	"context"
	"fmt"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Check reports what is missing from sesame's ruleset, as short names ("table inet sesame",
// "chain guard", "set grants4", "guard ports", "hook iptables", ...; with Config.NAT also
// "chain nat_pre", "set dnat4", ...); none means it is intact. A missing "set NAME" other than
// "set guarded" took grants with it.
// It reads the kernel's state (not the grants: those are the ledger's to restore) and is cheap
// enough to run after every ruleset change someone else makes.
func (n *Nftables) Check(ctx context.Context) ([]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	return n.check(ctx)
}

func (n *Nftables) check(ctx context.Context) ([]string, error) {
	var missing []string
	o := n.obj
	t, err := n.table()
	if err != nil {
		return nil, fmt.Errorf("nftables check: %w", err)
	}
	if t == nil {
		missing = append(missing, "table inet "+o.table.Name)
	} else {
		chains, err := n.s.lib.ListChainsOfTableFamily(nftables.TableFamilyINet)
		if err != nil {
			return nil, fmt.Errorf("nftables check: list chains: %w", err)
		}
		want := map[string]int{chainMark: 4, chainGuard: 3}
		if !n.cfg.GuardLoopback {
			want[chainGuard] = 4
		}
		names := []string{chainMark, chainGuard}
		if n.cfg.NAT {
			want[chainMark] += markNATRules
			want[chainNatPre], want[chainNatPost], want[chainForward], want[chainFwdGuard] = natPreRules, natPostRules, forwardRules, fwdGuardRules
			names = append(names, chainNatPre, chainNatPost, chainForward, chainFwdGuard)
		}
		for _, ch := range chains {
			if ch.Table.Name != o.table.Name {
				continue
			}
			if min, ok := want[ch.Name]; ok {
				rules, err := n.countRules(ch.Name)
				if err != nil {
					return nil, fmt.Errorf("nftables check: rules of %s: %w", ch.Name, err)
				}
				if rules >= min {
					delete(want, ch.Name)
				} else {
					want[ch.Name] = -1 // present but flushed
				}
			}
		}
		for _, name := range names {
			switch want[name] {
			case 0:
			case -1:
				missing = append(missing, "rules of chain "+name)
			default:
				missing = append(missing, "chain "+name)
			}
		}
		sets, err := n.s.lib.GetSets(o.table)
		if err != nil {
			return nil, fmt.Errorf("nftables check: list sets: %w", err)
		}
		have := map[string]bool{}
		for _, s := range sets {
			have[s.Name] = true
		}
		setNames := []string{setGrants4, setGrants6, setGrantsD4, setGrantsD6, setGuarded}
		if n.cfg.NAT {
			for _, s := range o.nat.allSets() {
				setNames = append(setNames, s.Name)
			}
		}
		for _, name := range setNames {
			if !have[name] {
				missing = append(missing, "set "+name)
			}
		}
		if have[setGuarded] {
			elems, err := n.s.lib.GetSetElements(o.guarded)
			if err != nil {
				return nil, fmt.Errorf("nftables check: guard ports: %w", err)
			}
			if len(elems) != len(n.cfg.GuardPorts) {
				missing = append(missing, "guard ports")
			}
		}
	}
	for i, h := range n.hooks {
		ok, err := h.present(ctx)
		if err != nil || !ok {
			missing = append(missing, "hook "+n.hosts[i].String())
		}
	}
	return missing, nil
}

// Heal rebuilds whatever Check finds missing: Init's transaction (which adopts what is left and
// re-creates the rest, keeping live elements) and the host hooks. The caller restores grants
// the kernel lost (from its ledger) with GrantMany afterwards.
func (n *Nftables) Heal(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	return n.init(ctx)
}

// PeerTables returns the guarded ports of the other sesame tables in the namespace (another
// sesame server with its own SESAME_TABLE), by table name. A table counts as sesame's when it
// has the sets grants4 and guarded.
func (n *Nftables) PeerTables(ctx context.Context) (map[string][]Port, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	tables, err := n.s.lib.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	out := map[string][]Port{}
	for _, t := range tables {
		if t.Name == n.obj.table.Name {
			continue
		}
		sets, err := n.s.lib.GetSets(t)
		if err != nil {
			continue
		}
		var guarded *nftables.Set
		grants := false
		for _, s := range sets {
			switch s.Name {
			case setGuarded:
				guarded = s
			case setGrants4:
				grants = true
			}
		}
		if guarded == nil || !grants {
			continue
		}
		elems, err := n.s.lib.GetSetElements(guarded)
		if err != nil {
			return nil, fmt.Errorf("guard ports of table inet %s: %w", t.Name, err)
		}
		ports := []Port{}
		for _, e := range elems {
			if len(e.Key) == 8 {
				ports = append(ports, Port{Proto: e.Key[0], Port: uint16(e.Key[4])<<8 | uint16(e.Key[5])})
			}
		}
		out[t.Name] = ports
	}
	return out, nil
}

// SetGuardPorts replaces the guarded ports and rewrites the guard set in one transaction (a
// SIGHUP that changed OPEN_PORTS or SESAME_GUARD_PORTS).
func (n *Nftables) SetGuardPorts(ctx context.Context, ports []Port) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return ErrClosed
	}
	n.cfg.GuardPorts = append([]Port(nil), ports...)
	return n.init(ctx)
}

// countRules counts the rules of chain in sesame's table with a GETRULE dump on the owning
// socket. (google/nftables v0.3.0 cannot decode the rules that read `ct original proto-dst`: the
// kernel reports NFTA_CT_DIRECTION as one byte, the library wants four.) Callers hold n.mu.
func (n *Nftables) countRules(chain string) (int, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(n.obj.table.Name + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return 0, err
	}
	req := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump},
		Data: append(nfgen(uint8(n.obj.table.Family), 0), attrs...),
	}
	if _, err := n.s.nl.SendMessages([]netlink.Message{req}); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	msgs, err := n.s.nl.Receive()
	if err != nil {
		return 0, err
	}
	count := 0
	for _, m := range msgs {
		if int(m.Header.Type)&0xff == unix.NFT_MSG_NEWRULE && int(m.Header.Type)>>8 == unix.NFNL_SUBSYS_NFTABLES {
			count++
		}
	}
	return count, nil
}

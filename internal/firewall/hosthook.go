package firewall

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// hostHook is the one rule sesame puts into the host's own dropping chain: accept packets that
// sesame's mark chain marked as granted.
type hostHook interface {
	// install adds the rule unless it is there already.
	install(ctx context.Context) error
	// remove deletes every copy of the rule; a missing rule (or chain) is no error.
	remove(ctx context.Context) error
	// present reports whether the rule is in the chain.
	present(ctx context.Context) (bool, error)
}

// nftHook inserts `meta mark & MARK == MARK accept comment "sesame"` at the top of an nftables
// chain through the backend's one netlink socket. Callers hold the backend's lock.
type nftHook struct {
	s    *sock
	host HostChain
	mark uint32
}

func (h *nftHook) family() nftables.TableFamily {
	switch h.host.Family {
	case "ip":
		return nftables.TableFamilyIPv4
	case "ip6":
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyINet
}

// ours lists sesame's rules in the host chain.
func (h *nftHook) ours() (*nftables.Table, *nftables.Chain, []*nftables.Rule, error) {
	t := &nftables.Table{Name: h.host.Table, Family: h.family()}
	ch := &nftables.Chain{Name: h.host.Chain, Table: t}
	rules, err := h.s.lib.GetRules(t, ch)
	if err != nil {
		return t, ch, nil, fmt.Errorf("list rules of %s %s %s: %w", h.host.Family, h.host.Table, h.host.Chain, err)
	}
	var mine []*nftables.Rule
	for _, r := range rules {
		if c, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && c == hostComment {
			mine = append(mine, r)
		}
	}
	return t, ch, mine, nil
}

func (h *nftHook) install(ctx context.Context) error {
	t, ch, mine, err := h.ours()
	if errors.Is(err, unix.ENOENT) {
		return nil // the chain is gone (its firewall stopped): nothing there drops, nothing to hook
	}
	if err != nil {
		return err
	}
	if len(mine) > 0 {
		return nil
	}
	h.s.rec.InsertRule(&nftables.Rule{Table: t, Chain: ch, Exprs: markAccept(h.mark), UserData: commentData()})
	msgs, err := h.s.take()
	if err == nil {
		err = h.s.send(msgs)
	}
	if err != nil {
		return fmt.Errorf("insert rule: %w", err)
	}
	return nil
}

func (h *nftHook) remove(ctx context.Context) error {
	_, _, mine, err := h.ours()
	if err != nil {
		// The host's chain or table is gone: nothing of ours is left in it.
		return nil
	}
	for _, r := range mine {
		if err := h.s.rec.DelRule(r); err != nil {
			return fmt.Errorf("delete rule %d: %w", r.Handle, err)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	msgs, err := h.s.take()
	if err == nil {
		err = h.s.send(msgs)
	}
	if err != nil {
		return fmt.Errorf("delete rules: %w", err)
	}
	return nil
}

func (h *nftHook) present(ctx context.Context) (bool, error) {
	_, _, mine, err := h.ours()
	if errors.Is(err, unix.ENOENT) {
		return true, nil // no chain, nothing to hook
	}
	if err != nil {
		return false, err
	}
	return len(mine) > 0, nil
}

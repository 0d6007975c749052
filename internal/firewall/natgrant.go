package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrNATDisabled is returned (wrapped) for a Forward or LocalNAT grant when Config.NAT is off.
var ErrNATDisabled = errors.New("NAT grants are not enabled (Config.NAT)")

// ErrNATUnsupported is returned (wrapped) by Init with Config.NAT on a kernel without
// NFT_MSG_DESTROYSETELEM (Linux 6.3), which NAT grants need to replace a map element whose
// value may differ.
var ErrNATUnsupported = errors.New("NAT grants need Linux 6.3 or later")

// msgDestroySetElem is NFT_MSG_DESTROYSETELEM (Linux 6.3): a delete that ignores a missing
// element. golang.org/x/sys does not have it yet.
const msgDestroySetElem = 0x1e

// setElem is one kernel element of a grant.
type setElem struct {
	set *nftables.Set
	el  nftables.SetElement
}

// elementsOf returns the kernel elements of g (see the package doc), with g's timeout.
func (n *Nftables) elementsOf(g Grant) []setElem {
	o := n.obj
	v4 := isV4(g.Src)
	pick := func(a, b *nftables.Set) *nftables.Set {
		if v4 {
			return a
		}
		return b
	}
	el := func(s *nftables.Set, k, v []byte) setElem {
		return setElem{s, nftables.SetElement{Key: k, Val: v, Timeout: g.Timeout}}
	}
	switch {
	case g.Kind == Access:
		return []setElem{el(pick(o.grants4, o.grants6), grantKey(g), nil)}
	case g.ForwardAll:
		return []setElem{el(pick(o.nat.fwdall4, o.nat.fwdall6), addrBytes(g.Src), snatVal(g))}
	case g.Kind == Forward:
		es := []setElem{el(pick(o.nat.fwd4, o.nat.fwd6), fwdKey(g), snatVal(g))}
		if !g.DisableDNAT {
			es = append(es, el(pick(o.nat.dnat4, o.nat.dnat6), grantKey(g), dnatVal(g)))
		}
		return es
	default: // LocalNAT
		return []setElem{
			el(pick(o.nat.lnat4, o.nat.lnat6), fwdKey(g), nil),
			el(pick(o.nat.dnat4, o.nat.dnat6), grantKey(g), dnatVal(g)),
		}
	}
}

// bySet groups elements per set in first-seen order; a later element with the same key replaces
// an earlier one (one message must not carry a key twice).
func bySet(es []setElem) ([]*nftables.Set, map[*nftables.Set][]nftables.SetElement) {
	var order []*nftables.Set
	m := map[*nftables.Set][]nftables.SetElement{}
	idx := map[*nftables.Set]map[string]int{}
	for _, e := range es {
		if _, ok := m[e.set]; !ok {
			order = append(order, e.set)
			idx[e.set] = map[string]int{}
		}
		if i, ok := idx[e.set][string(e.el.Key)]; ok {
			m[e.set][i] = e.el
			continue
		}
		idx[e.set][string(e.el.Key)] = len(m[e.set])
		m[e.set] = append(m[e.set], e.el)
	}
	return order, m
}

// keysMsg builds a message of type typ (NFT_MSG_DESTROYSETELEM) naming elems' keys in set. In
// nft syntax:
//
//	destroy element inet sesame dnat4 { 192.0.2.7 . tcp . 55000 }
func keysMsg(set *nftables.Set, elems []nftables.SetElement, typ int) (netlink.Message, error) {
	list := make([]netlink.Attribute, 0, len(elems))
	for i, e := range elems {
		key, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: e.Key}})
		if err != nil {
			return netlink.Message{}, err
		}
		item, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: key}})
		if err != nil {
			return netlink.Message{}, err
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | uint16(i+1), Data: item})
	}
	return elemListMsg(set, typ, 0, list)
}

// natMsgs returns the messages that (re)write es: per set, a destroy of the keys and an add with
// timeout and expiration. The destroy makes every add a new element, so its value (which the
// kernel refuses to change in place) and its time left are exactly the new ones on every kernel.
// With revoke it sends the destroys only.
func natMsgs(es []setElem, revoke bool) ([]netlink.Message, error) {
	order, m := bySet(es)
	var msgs []netlink.Message
	for _, s := range order {
		elems := m[s]
		for len(elems) > 0 {
			chunk := elems[:min(len(elems), grantsPerBatch)]
			elems = elems[len(chunk):]
			d, err := keysMsg(s, chunk, msgDestroySetElem)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, d)
			if revoke {
				continue
			}
			a, err := expiringMsg(s, chunk)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, a)
		}
	}
	return msgs, nil
}

// probeDestroy checks that the kernel knows NFT_MSG_DESTROYSETELEM: it destroys an element that
// does not exist in dnat4. Callers hold n.mu.
func (n *Nftables) probeDestroy() error {
	k := grantKey(Grant{Src: netip.AddrFrom4([4]byte{192, 0, 2, 1}), Proto: ProtoTCP, Port: 1})
	m, err := keysMsg(n.obj.nat.dnat4, []nftables.SetElement{{Key: k}}, msgDestroySetElem)
	if err != nil {
		return err
	}
	if err := n.s.send([]netlink.Message{m}); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: %v", ErrNATUnsupported, err)
		}
		return fmt.Errorf("probe destroy element: %w", err)
	}
	return nil
}

// listNAT reads the NAT sets back as grants (see the package doc for how each maps).
func (n *Nftables) listNAT() ([]Entry, error) {
	o := n.obj.nat
	get := func(s *nftables.Set) ([]nftables.SetElement, error) {
		es, err := n.s.lib.GetSetElements(s)
		if err != nil {
			return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
		}
		return es, nil
	}
	// dnat: which (src, proto, port) goes where, to tell DNAT from DisableDNAT.
	dnat := map[Grant]netip.AddrPort{}
	for _, s := range []*nftables.Set{o.dnat4, o.dnat6} {
		es, err := get(s)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			g, to, err := parseDnat(e.Key, e.Val)
			if err != nil {
				return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
			}
			dnat[g] = to
		}
	}
	var out []Entry
	add := func(g Grant, e nftables.SetElement) {
		g.Timeout = e.Timeout
		out = append(out, Entry{Grant: g, Expires: e.Expires})
	}
	for _, s := range []*nftables.Set{o.fwd4, o.fwd6, o.lnat4, o.lnat6} {
		es, err := get(s)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			g, err := parseFwdKey(e.Key)
			if err == nil && (s == o.fwd4 || s == o.fwd6) {
				g.Kind = Forward
				err = parseSnat(&g, e.Val)
				key := Grant{Src: g.Src, Proto: g.Proto, Port: g.Port}
				g.DisableDNAT = dnat[key] != netip.AddrPortFrom(g.NATAddr, g.NATPort)
			} else {
				g.Kind = LocalNAT
			}
			if err != nil {
				return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
			}
			add(g, e)
		}
	}
	for _, s := range []*nftables.Set{o.fwdall4, o.fwdall6} {
		es, err := get(s)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			var g Grant
			switch len(e.Key) {
			case 4:
				g.Src = netip.AddrFrom4([4]byte(e.Key))
			case 16:
				g.Src = netip.AddrFrom16([16]byte(e.Key))
			default:
				return nil, fmt.Errorf("nftables list %s: key of %d bytes", s.Name, len(e.Key))
			}
			g.Kind, g.ForwardAll = Forward, true
			if err := parseSnat(&g, e.Val); err != nil {
				return nil, fmt.Errorf("nftables list %s: %w", s.Name, err)
			}
			add(g, e)
		}
	}
	return out, nil
}

// liveNAT turns listed NAT entries into elements that keep their timeout and time left.
func (n *Nftables) liveNAT(es []Entry) []setElem {
	var out []setElem
	for _, e := range es {
		if e.Kind == Access || e.Expires < time.Millisecond {
			continue
		}
		for _, se := range n.elementsOf(e.Grant) {
			se.el.Timeout = max(e.Timeout, e.Expires)
			se.el.Expires = e.Expires
			out = append(out, se)
		}
	}
	return out
}

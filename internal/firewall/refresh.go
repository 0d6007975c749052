package firewall

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Fast refresh. Since Linux 6.10 ("netfilter: nf_tables: set element timeout update support")
// adding an element that exists updates its timeout and, given NFTA_SET_ELEM_EXPIRATION, its
// time left. google/nftables v0.3.0 cannot send that attribute, so the fast path builds the
// NEWSETELEM message itself (sent on the one owning socket like every write). Init probes the
// kernel once; without support, Grant falls back to add, delete, add (three messages, about
// three times slower, correct on every kernel).

// nfgen is the nfgenmsg header: family, version, resource id (big endian).
func nfgen(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

// expiringMsg builds an add of elems to set in which every element carries
// NFTA_SET_ELEM_TIMEOUT (its Timeout) and NFTA_SET_ELEM_EXPIRATION (its Expires, or its Timeout
// if Expires is zero) and, in a map, NFTA_SET_ELEM_DATA (its Val), so existing elements restart their timeout (on kernels that support
// updates) and new ones start with Expires left. In nft syntax:
//
//	add element inet sesame grants4 { 192.0.2.7 . tcp . 22 timeout 30s expires 30s }
func expiringMsg(set *nftables.Set, elems []nftables.SetElement) (netlink.Message, error) {
	list := make([]netlink.Attribute, 0, len(elems))
	for i, e := range elems {
		key, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: e.Key}})
		if err != nil {
			return netlink.Message{}, err
		}
		expires := e.Timeout
		if e.Expires != 0 {
			expires = e.Expires
		}
		attrs := []netlink.Attribute{
			{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: key},
			{Type: unix.NFTA_SET_ELEM_TIMEOUT, Data: binary.BigEndian.AppendUint64(nil, uint64(e.Timeout.Milliseconds()))},
			{Type: unix.NFTA_SET_ELEM_EXPIRATION, Data: binary.BigEndian.AppendUint64(nil, uint64(expires.Milliseconds()))},
		}
		if len(e.Val) > 0 { // a map element's value
			val, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: e.Val}})
			if err != nil {
				return netlink.Message{}, err
			}
			attrs = append(attrs, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_DATA, Data: val})
		}
		item, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			return netlink.Message{}, err
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | uint16(i+1), Data: item})
	}
	return elemListMsg(set, unix.NFT_MSG_NEWSETELEM, netlink.Create, list)
}

// elemListMsg frames a set element message of type typ (NFT_MSG_NEWSETELEM, ...) for set with
// the nested element attributes list and the extra header flags (Request and Acknowledge are
// always set).
func elemListMsg(set *nftables.Set, typ int, flags netlink.HeaderFlags, list []netlink.Attribute) (netlink.Message, error) {
	nested, err := netlink.MarshalAttributes(list)
	if err != nil {
		return netlink.Message{}, err
	}
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(set.Table.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set.Name + "\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: nested},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | netlink.Acknowledge | flags},
		Data: append(nfgen(uint8(set.Table.Family), 0), attrs...),
	}, nil
}

// probeSetName is a scratch set that Init creates, probes with and deletes.
const probeSetName = "probe"

// probeFastRefresh reports whether the kernel restarts an existing element's timeout on add
// with an expiration: it adds an element with an hour to live, re-adds it with the same timeout
// but 10 s left, and reads back the time left. (The timeout must stay the same: kernels since
// 6.10 restart the clock on a changed timeout even without the expiration.) Callers hold n.mu.
func (n *Nftables) probeFastRefresh() (ok bool, err error) {
	s := &nftables.Set{Table: n.obj.table, Name: probeSetName, KeyType: nftables.TypeIPAddr, HasTimeout: true}
	if err := n.s.rec.AddSet(s, nil); err != nil {
		return false, err
	}
	if err := n.write(); err != nil {
		return false, fmt.Errorf("add probe set: %w", err)
	}
	defer func() {
		n.s.rec.DelSet(s)
		if derr := n.write(); derr != nil && err == nil {
			err = fmt.Errorf("delete probe set: %w", derr)
		}
	}()
	key := []byte{192, 0, 2, 1}
	for _, e := range []nftables.SetElement{{Key: key, Timeout: time.Hour}, {Key: key, Timeout: time.Hour, Expires: 10 * time.Second}} {
		m, err := expiringMsg(s, []nftables.SetElement{e})
		if err == nil {
			err = n.s.send([]netlink.Message{m})
		}
		if err != nil {
			return false, fmt.Errorf("probe add: %w", err)
		}
	}
	elems, err := n.s.lib.GetSetElements(s)
	if err != nil {
		return false, fmt.Errorf("probe read: %w", err)
	}
	return len(elems) == 1 && elems[0].Expires > 0 && elems[0].Expires <= 10*time.Second, nil
}

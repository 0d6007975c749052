package nfevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Message types of kernels since 6.3 that golang.org/x/sys/unix does not name (uapi
// linux/netfilter/nf_tables.h, enum nf_tables_msg_types).
const (
	msgDestroyTable   = 0x1a
	msgDestroyChain   = 0x1b
	msgDestroyRule    = 0x1c
	msgDestroySet     = 0x1d
	msgDestroySetElem = 0x1e
)

// Attributes golang.org/x/sys/unix does not name (uapi nf_tables.h: enum nft_table_attributes,
// nft_set_attributes and, for the xt match expression, nft_match_attributes in
// linux/netfilter/nf_tables_compat.h).
const (
	nftaTableHandle = 4
	nftaSetHandle   = 16
	nftaMatchName   = 1
	nftaMatchInfo   = 3
)

var kindOf = map[uint8]Kind{
	unix.NFT_MSG_NEWTABLE: NewTable, unix.NFT_MSG_DELTABLE: DelTable, msgDestroyTable: DelTable,
	unix.NFT_MSG_NEWCHAIN: NewChain, unix.NFT_MSG_DELCHAIN: DelChain, msgDestroyChain: DelChain,
	unix.NFT_MSG_NEWRULE: NewRule, unix.NFT_MSG_DELRULE: DelRule, msgDestroyRule: DelRule,
	unix.NFT_MSG_NEWSET: NewSet, unix.NFT_MSG_DELSET: DelSet, msgDestroySet: DelSet,
	unix.NFT_MSG_NEWSETELEM: NewSetElem, unix.NFT_MSG_DELSETELEM: DelSetElem, msgDestroySetElem: DelSetElem,
	unix.NFT_MSG_NEWGEN: NewGen,
}

// Parse decodes one NETLINK_NETFILTER message. It returns ok=false and no error for messages
// of no interest (another subsystem, or an nftables message type other than those of the Kind
// constants). It returns an error, wrapping the decoding failure, for an nftables message of
// interest that is truncated, malformed or lacks the names its kind needs (Table, and Chain or
// Set where the kind has one; Gen for NewGen). Parse never panics and keeps no reference to
// m.Data.
func Parse(m netlink.Message) (ev Event, ok bool, err error) {
	t := uint16(m.Header.Type)
	if t>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return Event{}, false, nil
	}
	kind, ok := kindOf[uint8(t)]
	if !ok {
		return Event{}, false, nil
	}
	ev, err = parse(kind, m.Data)
	if err != nil {
		return Event{}, false, fmt.Errorf("nfevents: decode %v message: %w", kind, err)
	}
	return ev, true, nil
}

var errShort = errors.New("shorter than the 4-byte nfgenmsg header")

func parse(kind Kind, data []byte) (Event, error) {
	if len(data) < 4 {
		return Event{}, errShort
	}
	ev := Event{Kind: kind, Family: data[0]}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return Event{}, err
	}
	ad.ByteOrder = binary.BigEndian
	var (
		udata      []byte
		xtComment  string
		haveGen    bool
		obj        *string // where the chain or set name goes
		tableAttr  uint16
		objAttr    uint16
		handleAttr uint16
	)
	switch kind {
	case NewTable, DelTable:
		tableAttr, handleAttr = unix.NFTA_TABLE_NAME, nftaTableHandle
	case NewChain, DelChain:
		tableAttr = unix.NFTA_CHAIN_TABLE
		obj, objAttr, handleAttr = &ev.Chain, unix.NFTA_CHAIN_NAME, unix.NFTA_CHAIN_HANDLE
	case NewSet, DelSet:
		tableAttr = unix.NFTA_SET_TABLE
		obj, objAttr, handleAttr = &ev.Set, unix.NFTA_SET_NAME, nftaSetHandle
	case NewSetElem, DelSetElem:
		tableAttr = unix.NFTA_SET_ELEM_LIST_TABLE
		obj, objAttr = &ev.Set, unix.NFTA_SET_ELEM_LIST_SET
	case NewRule, DelRule:
		tableAttr = unix.NFTA_RULE_TABLE
		obj, objAttr, handleAttr = &ev.Chain, unix.NFTA_RULE_CHAIN, unix.NFTA_RULE_HANDLE
	}
	for ad.Next() {
		typ := ad.Type()
		switch {
		case kind == NewGen:
			switch typ {
			case unix.NFTA_GEN_ID:
				ev.Gen, haveGen = ad.Uint32(), true
			case unix.NFTA_GEN_PROC_PID:
				ev.PID = ad.Uint32()
			case unix.NFTA_GEN_PROC_NAME:
				ev.ProcName = ad.String()
			}
		case typ == tableAttr:
			ev.Table = ad.String()
		case obj != nil && typ == objAttr:
			*obj = ad.String()
		case handleAttr != 0 && typ == handleAttr:
			ev.Handle = ad.Uint64()
		case kind == NewRule || kind == DelRule:
			switch typ {
			case unix.NFTA_RULE_USERDATA:
				udata = ad.Bytes()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(nad *netlink.AttributeDecoder) error {
					xtComment = xtCommentOf(nad)
					return nil
				})
			}
		}
	}
	if err := ad.Err(); err != nil {
		return Event{}, err
	}
	switch {
	case kind == NewGen:
		if !haveGen {
			return Event{}, errors.New("no NFTA_GEN_ID")
		}
		return ev, nil
	case ev.Table == "":
		return Event{}, errors.New("no table name")
	case obj != nil && *obj == "":
		return Event{}, errors.New("no chain or set name")
	}
	if c, ok := commentOf(udata); ok {
		ev.Comment = c
	} else {
		ev.Comment = xtComment
	}
	return ev, nil
}

// commentOf returns the TypeComment entry of a rule's userdata, a sequence of (type byte,
// length byte, value) entries whose comment value ends in NUL. It does not use
// userdata.GetString, which panics on a truncated entry.
func commentOf(udata []byte) (string, bool) {
	for len(udata) >= 2 {
		typ, n := userdata.Type(udata[0]), int(udata[1])
		if len(udata) < 2+n {
			return "", false
		}
		if typ == userdata.TypeComment {
			v := udata[2 : 2+n]
			if i := bytes.IndexByte(v, 0); i >= 0 {
				v = v[:i]
			}
			return string(v), true
		}
		udata = udata[2+n:]
	}
	return "", false
}

// xtCommentOf returns the text of the first xt "comment" match in a rule's expression list
// (NFTA_LIST_ELEM entries of NFTA_EXPR_NAME "match" whose NFTA_EXPR_DATA has NFTA_MATCH_NAME
// "comment"; NFTA_MATCH_INFO is struct xt_comment_info, a NUL-padded string), or "".
// Malformed expressions are skipped.
func xtCommentOf(list *netlink.AttributeDecoder) string {
	for list.Next() {
		if list.Type() != unix.NFTA_LIST_ELEM {
			continue
		}
		var name string
		var data []byte
		expr, err := netlink.NewAttributeDecoder(list.Bytes())
		if err != nil {
			continue
		}
		for expr.Next() {
			switch expr.Type() {
			case unix.NFTA_EXPR_NAME:
				name = expr.String()
			case unix.NFTA_EXPR_DATA:
				data = expr.Bytes()
			}
		}
		if expr.Err() != nil || name != "match" {
			continue
		}
		var mname string
		var info []byte
		m, err := netlink.NewAttributeDecoder(data)
		if err != nil {
			continue
		}
		for m.Next() {
			switch m.Type() {
			case nftaMatchName:
				mname = m.String()
			case nftaMatchInfo:
				info = m.Bytes()
			}
		}
		if m.Err() != nil || mname != "comment" {
			continue
		}
		if i := bytes.IndexByte(info, 0); i >= 0 {
			info = info[:i]
		}
		return string(info)
	}
	return ""
}

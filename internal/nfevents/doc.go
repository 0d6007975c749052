// Package nfevents reports changes to the nftables ruleset as the kernel announces them, so
// that sesame can notice within milliseconds when its table, chains, sets or hook rule are
// deleted (`nft flush ruleset`, `iptables -F`, a firewalld or ufw reload) and put them back.
//
// # What the kernel sends
//
// Every committed nftables transaction is announced to the members of the netlink multicast
// group NFNLGRP_NFTABLES on NETLINK_NETFILTER sockets of the same network namespace (this is
// what `nft monitor` prints). Each changed object gets one message, and the transaction ends
// with NFT_MSG_NEWGEN, sent in a datagram of its own. Deleting a table announces its contents
// first: one DELRULE per rule, then DELSET per set, DELCHAIN per chain, then DELTABLE; `nft
// flush ruleset` does that for every table. Set elements that time out are not announced, nor
// are the elements of a deleted set. One transaction may delete and re-create the same objects
// (iptables-nft-restore replaces its whole table that way), so act on the state after NEWGEN,
// not on each deletion. The events describe changes made by anyone, sesame's own writing socket
// included.
//
// # Message layout
//
// The netlink header type is NFNL_SUBSYS_NFTABLES<<8 | NFT_MSG_*. The payload is a 4-byte
// nfgenmsg (family NFPROTO_*, version, big-endian resource id) followed by netlink attributes,
// integers big-endian. Parse decodes:
//
//	NEW/DELTABLE    NFTA_TABLE_NAME, NFTA_TABLE_HANDLE
//	NEW/DELCHAIN    NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_HANDLE
//	NEW/DELSET      NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_HANDLE
//	NEW/DELRULE     NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_USERDATA
//	                (the comment as nft stores it), NFTA_RULE_EXPRESSIONS (only for an
//	                iptables-nft `-m comment` match)
//	NEW/DELSETELEM  NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET
//	NEWGEN          NFTA_GEN_ID, NFTA_GEN_PROC_PID, NFTA_GEN_PROC_NAME
//
// A destroy (NFT_MSG_DESTROY*, delete if present, Linux 6.3) is announced as the matching DEL
// message (seen on 6.18); DESTROY* message types are reported as Del kinds too. Other messages (objects, flowtables, traces) are of no interest.
//
// # Losing events
//
// When the socket's receive buffer overflows the kernel drops messages and the next receive
// fails with ENOBUFS. Watcher reports that as one Overrun event: the consumer no longer knows
// what changed and must re-check everything it cares about.
//
// The Watcher's socket only listens: it never sends a request and never changes the ruleset.
package nfevents

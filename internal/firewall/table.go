package firewall

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table flags (NFTA_TABLE_FLAGS, a big-endian u32; include/uapi/linux/netfilter/nf_tables.h).
const (
	// tableFlagOwner (NFT_TABLE_F_OWNER, Linux 5.12): only the netlink socket that set it may
	// change or delete the table; `nft flush ruleset` by anyone else leaves it alone.
	tableFlagOwner uint32 = 0x2
	// tableFlagPersist (NFT_TABLE_F_PERSIST, Linux 6.9, only with OWNER): the table stays when
	// its owner's socket closes, and the next NEWTABLE with OWNER takes it over.
	tableFlagPersist uint32 = 0x4
)

// newTableMsg is NFT_MSG_NEWTABLE for t with flags, the one table message google/nftables
// v0.3.0 cannot send (it always sends flags 0). In nft syntax, with OWNER|PERSIST:
//
//	add table inet sesame { flags owner, persist; }
func newTableMsg(t *nftables.Table, flags uint32) (netlink.Message, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(t.Name + "\x00")},
		{Type: unix.NFTA_TABLE_FLAGS, Data: []byte{byte(flags >> 24), byte(flags >> 16), byte(flags >> 8), byte(flags)}},
	})
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Flags: netlink.Request | netlink.Acknowledge | netlink.Create},
		Data: append(nfgen(uint8(t.Family), 0), attrs...),
	}, nil
}

// ErrOwned is returned (wrapped) when sesame's table is owned by another live process: another
// sesame server runs with the same table.
var ErrOwned = errors.New("the table is owned by another running process")

// probeOwner reports whether the kernel supports owned, persistent tables: it creates a scratch
// table with OWNER|PERSIST on the owning socket and deletes it again. Kernels before 6.9 refuse
// PERSIST (EOPNOTSUPP or EINVAL); OWNER alone is never used, since such a table vanishes when
// the daemon exits.
func probeOwner(s *sock, name string) (bool, error) {
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	m, err := newTableMsg(t, tableFlagOwner|tableFlagPersist)
	if err != nil {
		return false, err
	}
	err = s.send([]netlink.Message{m})
	switch {
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("probe table flags: %w", err)
	}
	s.rec.DelTable(t)
	del, err := s.take()
	if err == nil {
		err = s.send(del)
	}
	if err != nil {
		return true, fmt.Errorf("delete probe table inet %s: %w", name, err)
	}
	return true, nil
}

// isPerm reports a refusal because another socket owns the table.
func isPerm(err error) bool { return errors.Is(err, syscall.EPERM) }

// Package deps pins the project's third-party modules while the packages that use them are
// being written. It is removed once every module is imported by real code.
package deps

import (
	_ "github.com/coreos/go-systemd/v22/activation"
	_ "github.com/google/nftables"
	_ "github.com/mdlayher/packet"
	_ "github.com/spf13/pflag"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "golang.org/x/net/bpf"
	_ "golang.org/x/sys/unix"
	_ "rsc.io/qr"
)

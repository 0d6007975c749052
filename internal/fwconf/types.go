// Package fwconf reads fwknopd.conf and access.conf as fwknopd 2.6 does.
package fwconf

import (
	"net/netip"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

// Stanza is one access.conf SOURCE stanza. The fwconf owner may add fields; these are the contract.
type Stanza struct {
	File string // where the stanza starts, for log messages
	Line int
	Num  int // 1-based stanza number in load order, as fwknopd logs "(stanza #N)"

	SourceAny   bool
	Source      []netip.Prefix
	Destination []netip.Prefix // empty: any

	Keys spa.Keys

	OpenPorts     []spa.ProtoPort // empty: any
	RestrictPorts []spa.ProtoPort

	FWAccessTimeout time.Duration // FW_ACCESS_TIMEOUT, default 30s
	MaxFWTimeout    time.Duration // MAX_FW_TIMEOUT, default 300s

	RequireUsername      string // "" = any
	RequireSourceAddress bool   // refuse allow-IP 0.0.0.0
	RequireSourceMatch   bool   // SESAME_REQUIRE_SOURCE_MATCH: allow-IP must equal the packet source
	AccessExpire         time.Time
	EnableCmdExec        bool
}

package server

import (
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/server"
)

// settings is everything the daemon needs from fwknopd.conf, access.conf and the command line,
// after defaults and overrides.
type settings struct {
	policy server.Policy

	udpServer    bool
	udpPort      int
	pcapIntf     string
	pcapFilter   string
	anyDirection bool
	promiscuous  bool
	snapLen      int

	digestPersistence bool
	digestFile        string
	pidFile           string
	runDir            string
	flushAtExit       bool
	flushAtInit       bool

	tableName     string
	guardPorts    []firewall.Port
	guardLoopback bool
	hostChain     string

	workers int

	// md5Listen and md5Upstream are SESAME_MD5_LISTEN and SESAME_MD5_UPSTREAM: the TCP-MD5
	// listener whose keys come from the grants of SESAME_MD5 stanzas ("" = none).
	md5Listen, md5Upstream string

	// dump is the text printed by -D.
	dump string
	// warnings are logged at start (unimplemented variables and the like).
	warnings []string
}

const (
	defaultRunDir       = "/run/fwknop"
	defaultUDPPort      = 62201
	defaultReplayMargin = 10 * time.Second
)

func sortStrings(s []string) { sort.Strings(s) }

func prefixes(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

package server

import (
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fleet"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/server"
)

// settings is everything the daemon needs from fwknopd.conf, access.conf and the command line,
// after defaults and overrides.
type settings struct {
	policy server.Policy

	udpServer    bool
	udpPort      int
	tcpServer    bool // ENABLE_TCP_SERVER: accept and close on tcpPort so -P tcp/http clients can send
	tcpPort      int
	pcapIntf     string
	pcapFilter   string
	pcapFile     string // PCAP_FILE / --pcap-file: decide the packets of a capture file (implies -t)
	anyDirection bool
	promiscuous  bool
	snapLen      int

	digestPersistence bool
	digestFile        string
	pidFile           string
	runDir            string
	flushAtExit       bool
	flushAtInit       bool
	exitAtIntfDown    bool
	ledgerFile        string

	tableName     string
	tableOwner    bool
	guardPorts    []firewall.Port // SESAME_GUARD_PORTS and every stanza's OPEN_PORTS
	guardLoopback bool
	hostChain     string
	// unguardable lists stanzas that allow any port: sesame cannot guard ports it does not know.
	unguardable []string

	workers int

	// md5Listen and md5Upstream are SESAME_MD5_LISTEN and SESAME_MD5_UPSTREAM: the TCP-MD5
	// listener whose keys come from the grants of SESAME_MD5 stanzas ("" = none).
	md5Listen, md5Upstream string

	// metricsListen is SESAME_METRICS_LISTEN ("" = no metrics).
	metricsListen string

	// fleet is the fleet's configuration (SESAME_FLEET_*, key and TLS files read), without
	// Local and Log; nil without SESAME_FLEET_REDIS.
	fleet *fleet.Config

	// locale is -l or LOCALE: exported as LC_ALL to the programs the server runs.
	locale string
	// syslogIdentity and syslogFacility are SYSLOG_IDENTITY and SYSLOG_FACILITY (fwknopd's
	// defaults "fwknopd" and "LOG_DAEMON").
	syslogIdentity, syslogFacility string

	// sc is the effective fwknopd.conf, for -D.
	sc *fwconf.Server

	// dump is the text printed by -D.
	dump string
	// warnings are logged at start (unimplemented variables and the like).
	warnings []string
}

const defaultUDPPort = 62201

package fwconf

// SesameVar documents one of sesame's own configuration variables for people (the man page
// sesame.conf(5) is generated from SesameVars). Scope, support and parsing come from Variables.
type SesameVar struct {
	Name    string
	Default string // the effective default as a reader sees it; "" = unset (the feature is off)
	Meaning string // one or two sentences, plain text
}

// SesameVars lists every SESAME_* entry of Variables, fwknopd.conf's first, with what it
// means. A test keeps the two in step.
var SesameVars = []SesameVar{
	{"SESAME_GUARD_PORTS", "", "Ports (proto/port list, \"tcp/22, tcp/5432\") that sesame's own nftables table drops for hosts without a grant, in addition to those every stanza's OPEN_PORTS names."},
	{"SESAME_HOST_CHAIN", "none", "Hook grants into a host ruleset that already drops by default: none, iptables, or \"nft ip|ip6|inet TABLE CHAIN\". Such a firewall is normally found automatically."},
	{"SESAME_TABLE", "sesame", "sesame's nftables table (inet family). A second server on the host needs its own table, guarding other ports."},
	{"SESAME_TABLE_OWNER", "Y", "Own the table (nftables flags owner and persist) where the kernel supports it (Linux 6.9 and later); N forces the self-healing fallback of older kernels."},
	{"SESAME_REPLAY_MARGIN", "60", "Seconds a replay digest is kept beyond the 2*MAX_SPA_PACKET_AGE window."},
	{"SESAME_METRICS_LISTEN", "", "IP:PORT where Prometheus metrics are served at /metrics; keep it on loopback."},
	{"SESAME_MD5_LISTEN", "", "IP:PORT (or :PORT) of the TCP-MD5 listener the server runs for SESAME_MD5 stanzas; needs SESAME_MD5_UPSTREAM."},
	{"SESAME_MD5_UPSTREAM", "", "HOST:PORT where the TCP-MD5 listener relays signed connections; needs SESAME_MD5_LISTEN."},
	{"SESAME_FLEET_REDIS", "", "The fleet's Redis or Valkey: a redis://, rediss://, redis+sentinel:// or rediss+sentinel:// URL with an ACL user and password. Unset: no fleet, and the other SESAME_FLEET_* variables only warn."},
	{"SESAME_FLEET_GROUP", "default", "The gateways that share grants and replay digests."},
	{"SESAME_FLEET_KEY_FILE", "", "Required with SESAME_FLEET_REDIS: the fleet key, one line of base64 (at least 32 bytes decoded), mode 600."},
	{"SESAME_FLEET_ON_ERROR", "closed", "When Redis is unreachable: closed refuses knocks, local checks replays locally (logged and counted)."},
	{"SESAME_FLEET_TIMEOUT", "200", "Milliseconds, the deadline of every Redis call."},
	{"SESAME_FLEET_MAX_SKEW", "2000", "Milliseconds, the clock difference tolerated between gateways and Redis."},
	{"SESAME_FLEET_WAIT_REPLICAS", "0", "Replicas every write waits for (Redis WAIT)."},
	{"SESAME_FLEET_NAME", "", "This gateway's name in fan-out messages, unique within the group; unset: a random name."},
	{"SESAME_FLEET_TLS_CA", "", "PEM CA certificates for a rediss URL; unset: the system's roots."},
	{"SESAME_FLEET_TLS_CERT", "", "PEM client certificate for a rediss URL; with SESAME_FLEET_TLS_KEY (both or neither)."},
	{"SESAME_FLEET_TLS_KEY", "", "PEM key of SESAME_FLEET_TLS_CERT, mode 600."},
	{"SESAME_REQUIRE_SOURCE_MATCH", "N", "Y: the allow-IP in the packet must equal the packet's source address. A SESAME_MD5 stanza implies Y unless it says N."},
	{"SESAME_MD5", "N", "Y: each grant of this stanza also lets the granted address connect to SESAME_MD5_LISTEN with a TCP-MD5 key derived from the stanza's KEY and HMAC_KEY, for the grant's lifetime, and opens only that listener's port."},
}

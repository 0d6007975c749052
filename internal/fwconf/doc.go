/*
Package fwconf reads fwknopd.conf and access.conf as fwknopd 2.6 does, into typed structs.

# Syntax

One "NAME value" per line; the value runs from the first non-blank after the name to the
first ';', CR or LF, and trailing blanks are trimmed (as fwknopd 2.6.11 does; 2.6.10 kept
them, so "KEY fwknoptest   " was a 13-byte key there and is a 10-byte key here). Lines that
are empty, blank, or start with '#' or ';' are ignored; CRLF line ends and a leading UTF-8
byte-order mark are accepted (fwknopd 2.6.10 takes a mark for part of the first name). A name
without a value is a warning in fwknopd.conf and an error in access.conf, as in fwknopd. In
access.conf a colon after the name is tolerated ("SOURCE: ANY"). In fwknopd.conf a value may
start with $NAME (A-Z and '_'), the value of a variable set on an earlier line
("$FWKNOP_RUN_DIR/digest.cache"); a $NAME not set earlier makes the line ignored with a
warning, as fwknopd ignores it, and '$' before anything else is kept as written.

access.conf directives: "%include FILE" and "%include_folder DIR" (every *.conf in DIR, in
name order) nest files up to MaxIncludeDepth deep; "%include_keys FILE" inside a SOURCE stanza
takes only KEY, KEY_BASE64, HMAC_KEY and HMAC_KEY_BASE64 from FILE. Relative paths are
resolved against the including file's directory; fwknopd uses its working directory, which
depends on where it was started from, so sesame warns when the two name different files.

# Variables

Variables lists every variable fwknopd 2.6 knows and what sesame does with it. Unknown
variables are warnings; variables sesame does not implement are errors naming file, line and
variable (every error of a load is returned at once, joined, one per line), unless set to
fwknopd's default or, for NAT, SNAT, OUTPUT and HTTP settings, while their switch is N; settings
without effect in sesame are warnings. FWKNOP_RUN_DIR must be absolute, as in fwknopd. Keys left at __CHANGEME__, an HMAC
key equal to the encryption key, Rijndael keys outside 1..32 bytes and HMAC keys over 128
bytes are refused. Files readable by group or other, or owned by another user, give warnings.

sesame's own variables:

	variable                     file          default  meaning
	SESAME_GUARD_PORTS           fwknopd.conf  (none)   proto/port list ("tcp/22, tcp/5432") that
	                                                    sesame's own nftables table drops unless
	                                                    granted
	SESAME_HOST_CHAIN            fwknopd.conf  none     hook grants into a host ruleset that already
	                                                    drops: "none", "iptables" or
	                                                    "nft ip|ip6|inet TABLE CHAIN"
	                                                    (firewall.ParseHostChain)
	SESAME_TABLE                 fwknopd.conf  sesame   sesame's nftables table (inet family); a second
	                                                    server on the host needs its own, guarding
	                                                    other ports
	SESAME_TABLE_OWNER           fwknopd.conf  Y        own the table (NFT_TABLE_F_OWNER|PERSIST) where
	                                                    the kernel supports it (6.9+); N forces the
	                                                    self-healing fallback of older kernels
	SESAME_REPLAY_MARGIN         fwknopd.conf  60       seconds a replay digest is kept beyond the
	                                                    2*MAX_SPA_PACKET_AGE window (Server.ReplayKeep)
	SESAME_METRICS_LISTEN        fwknopd.conf  (none)   IP:PORT where Prometheus metrics are served
	                                                    (/metrics); keep it on loopback
	SESAME_MD5_LISTEN            fwknopd.conf  (none)   IP:PORT (or :PORT) of the TCP-MD5 listener the
	                                                    server runs; with SESAME_MD5_UPSTREAM
	SESAME_MD5_UPSTREAM          fwknopd.conf  (none)   HOST:PORT where the MD5 listener relays signed
	                                                    connections; with SESAME_MD5_LISTEN
	SESAME_FLEET_REDIS           fwknopd.conf  (none)   the fleet's Redis (package fleet): redis://, rediss://,
	                                                    redis+sentinel:// or rediss+sentinel:// URL, with
	                                                    an ACL user and password; unset: no fleet, and
	                                                    the other SESAME_FLEET_* variables only warn
	SESAME_FLEET_GROUP           fwknopd.conf  default  gateways that share grants and replay digests
	SESAME_FLEET_KEY_FILE        fwknopd.conf  (none)   required with SESAME_FLEET_REDIS: the fleet key,
	                                                    one line of base64 (>= 32 bytes decoded), mode 600
	SESAME_FLEET_ON_ERROR        fwknopd.conf  closed   Redis unreachable: closed refuses knocks, local
	                                                    checks replays locally (logged and counted)
	SESAME_FLEET_TIMEOUT         fwknopd.conf  200      milliseconds, the deadline of every Redis call
	SESAME_FLEET_MAX_SKEW        fwknopd.conf  2000     milliseconds, the clock difference tolerated
	                                                    between gateways and Redis
	SESAME_FLEET_WAIT_REPLICAS   fwknopd.conf  0        replicas every write waits for (WAIT)
	SESAME_FLEET_NAME            fwknopd.conf  (random) this gateway's name in fan-out messages; unique
	                                                    within the group
	SESAME_FLEET_TLS_CA          fwknopd.conf  (none)   PEM CA for a rediss URL (default: system roots)
	SESAME_FLEET_TLS_CERT        fwknopd.conf  (none)   PEM client certificate and its key (mode 600),
	SESAME_FLEET_TLS_KEY                                both or neither
	SESAME_REQUIRE_SOURCE_MATCH  access.conf   N        Y: the allow-IP in the packet must equal the
	                                                    packet's source address (fwknop PR #281)
	SESAME_MD5                   access.conf   N        Y: each grant of this stanza also lets the
	                                                    granted address connect to SESAME_MD5_LISTEN
	                                                    with a TCP-MD5 key derived from the stanza's
	                                                    KEY and HMAC_KEY (package md5grant), for the
	                                                    grant's lifetime

sesame also accepts IPv6 addresses and prefixes in SOURCE and DESTINATION.
*/
package fwconf

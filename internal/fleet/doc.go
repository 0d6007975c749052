// Package fleet links the gateways of a fleet through Redis (or Valkey): a packet accepted by
// any gateway is a replay on every other, and a grant made by one is applied by all.
//
// # Redis keys
//
// All keys of group G carry the hash tag {G}, so they live on one Redis Cluster slot:
//
//	sesame:{G}:replay:<hex>  string "1", PX keep: a replay digest. <hex> is HMAC-SHA256 of the
//	                         digest under a key derived from the fleet key (HKDF-SHA256, info
//	                         "sesame fleet replay key v1"): it reveals nothing of the packet.
//	sesame:{G}:grants        stream, trimmed with XADD MAXLEN ~ StreamLen; one field "m" per
//	                         entry holding one message.
//	sesame:{G}:live          hash of live grants for catch-up: field "<src>/<proto>/<port>",
//	                         value the latest grant message for that key (the later expiry
//	                         wins); the hash expires (PEXPIREAT) with its longest grant, and
//	                         readers delete expired fields.
//
// The replay check is one SET key 1 NX PX keep. Grant, revoke and revoke-all are each one Lua
// script (EVALSHA) that appends to the stream and updates the hash atomically. Redis 7.0 or
// later is needed (PEXPIRETIME); Debian 12's redis-server 7.0.15 is what the tests run.
//
// # Messages
//
// One line of text, fields separated by one space, decimal numbers without leading zeros:
//
//	S1 g <sent> <origin> <id> <expires> <src> <proto> <port> <stanza> <mac>   grant
//	S1 r <sent> <origin> <id> <src>/<proto>/<port>[,...] <mac>                 revoke (≤ 256 keys)
//	S1 a <sent> <origin> <id> <mac>                                            revoke all
//
// sent and expires are Unix milliseconds (absolute times); origin is the publishing gateway's
// name; id is 32 lowercase hex digits, random per message; src is an address in netip text
// form (IPv4-mapped addresses unmapped, no zone); proto and port are 1 to 255 and 1 to 65535;
// stanza is the publisher's access.conf stanza number (meaningful only where gateways share
// access.conf). mac is the unpadded base64url HMAC-SHA256, under a key derived from the fleet
// key (info "sesame fleet message key v1"), of "sesame fleet v1" 0x00 G 0x00 and the text
// before " <mac>": a message of another group, or from anyone without the fleet key, fails.
// The MAC is checked before any other field is parsed; messages over 16 KiB are refused.
//
// # Guarantees
//
// Replay: of all gateways' CheckAndAdd calls for one digest, at most one is fresh, while the
// key lives in Redis (keep, or forever for keep 0). It survives gateway restarts; it does not
// survive Redis losing data: a Redis restarted without persistence, a FLUSHALL, or a failover
// to an asynchronous replica that had not received the last SETs (Redis replication is
// asynchronous: a write acknowledged by the master may be lost in a failover). A digest lost
// that way can be replayed, within MAX_SPA_PACKET_AGE, to a gateway that has not seen it
// (each gateway refuses what its own local cache holds). WaitReplicas makes each write wait
// until that many replicas have it (WAIT), which narrows but does not close the failover gap
// (WAIT does not make Redis strongly consistent); use appendonly yes to survive restarts.
//
// Fan-out: a grant published by one gateway is applied by every gateway running Run, each
// expiring it in its own kernel at the same absolute time. Clock assumption: the clocks of
// the gateways and of Redis differ by at most MaxSkew (NTP). A message whose stream entry id
// (Redis's clock at XADD) is more than MaxSkew from its sent time, or that was sent more than
// MaxSkew in the future, is refused.
//
// Write access to Redis does not open ports: without the fleet key no message verifies. What
// such an attacker can do: deny service (delete or flood keys, suppress a revocation), erase
// replay digests (see above), and copy a genuine message. A copy
// appended to the stream is refused when its id was read before or when it is written more
// than MaxSkew after it was signed; a copy in the live hash is refused once expired or when
// this gateway has seen a revocation of its key sent after it. What remains: a copy of a
// grant revoked before its expiry can reinstate it, until that expiry, on a gateway that did
// not see the revocation (one started after it); it opens only what was granted.
//
// # Failure policy
//
// Every Redis call has a deadline: Timeout (plus 150 ms for a write followed by WAIT, twice
// Timeout for a catch-up, 1 s more for a blocking stream read). When the replay check fails,
// policy Closed refuses the knock (CheckAndAdd returns an error) and Local answers from the
// local cache, logs the start of the outage and counts each fallback
// (Status.LocalFallbacks): a packet accepted by another gateway can then be replayed here.
// Digests accepted locally meanwhile are written to Redis when it answers again, and
// publishes that failed are retried in order (re-signed; expired grants dropped). Run
// retries with backoff and catches up from the live hash on every reconnect. Status shows
// the link's state.
//
// # URLs
//
//	redis://[user[:password]@]host[:port][/db]                 one server (go-redis ParseURL)
//	rediss://[user[:password]@]host[:port][/db]                the same over TLS (Config.TLS)
//	redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]
//	rediss+sentinel://...                                      the same over TLS
//
// user and password are an ACL user (or password alone for requirepass). In the sentinel forms
// the hosts are sentinels (port 26379 by default) and they authenticate to the master and its
// replicas; ?sentinel_user=U&sentinel_password=P authenticate to the sentinels.
package fleet

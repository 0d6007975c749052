// Package server is sesame's SPA packet pipeline: the logic of fwknopd 2.6 with the capture
// source, the replay cache, the firewall, the clock and the logger injected.
//
// For every candidate packet, in this order (fwknopd's, except that the HMAC is checked before
// anything that costs more than a hash):
//
//  1. cheap wire checks (length, base64, no Salted__ prefix); failures are "malformed",
//     logged at INFO through the same per-source rate limit as every rejection;
//  2. the access stanzas whose SOURCE (and DESTINATION, if set) match the packet, in file order;
//  3. per stanza: ACCESS_EXPIRE, then HMAC, decryption and plaintext decoding with the stanza's
//     keys; a failure moves on to the next stanza;
//  4. once a stanza decodes the packet: the replay check and, if fresh, the digest is recorded
//     (before any policy check, as fwknopd does, so a rejected packet cannot be retried);
//  5. per stanza policy: packet age, allow-IP (0.0.0.0 and REQUIRE_SOURCE_ADDRESS,
//     SESAME_REQUIRE_SOURCE_MATCH), REQUIRE_USERNAME, message type (command and NAT messages
//     are refused), RESTRICT_PORTS and OPEN_PORTS, the access timeout; a failure moves on to
//     the next stanza, which must decode the packet again with its own keys;
//  6. a firewall grant for each requested protocol and port of the first stanza that passes.
//
// A packet that no stanza grants is rejected with one log line carrying src=, reason= and
// stanza= (the stanza that got furthest), so fail2ban can match it, and counted per reason in
// Stats. No packet can make the pipeline panic or grant without passing every check.
//
// sesame extensions: IPv6 everywhere (sources, allow-IPs, prefixes, grants), and the access
// message "IP,none/0" (what fwknop's client sends without -A) means "open the stanza's
// OPEN_PORTS" instead of being refused.
package server

// Package server is sesame's SPA packet pipeline: the logic of fwknopd 2.6 with the capture
// source, the replay cache, the firewall, the clock and the logger injected.
//
// Reload compiles the policy: each access stanza gets its Opener (a spa.Decoder, keys
// validated and HMAC states keyed once), so a packet costs no key validation and no hmac.New.
// For every candidate packet, in this order (fwknopd's, except that the HMAC is checked before
// anything that costs more than a hash):
//
//  1. cheap wire checks (spa.CheckWire: length, base64, no Salted__ prefix); failures are
//     "malformed", logged at INFO through the same per-source rate limit as every rejection
//     (the others are logged at WARN);
//  2. the access stanzas that match the packet's source and destination
//     (fwconf.Stanza.Matches), in file order;
//  3. per stanza: ACCESS_EXPIRE (fwconf.Stanza.Expired, whole seconds as fwknopd), then HMAC,
//     decryption and plaintext decoding with the stanza's Opener: its Rijndael one for packets
//     under 400 characters, its GnuPG one (spa.GnuPGDecoder on spa/gnupg, keys read from the
//     stanza's GnuPG home by gpgkeys at Reload) for longer ones; a stanza without the right
//     kind of keys refuses (WrongMode). GnuPG packets on a stanza without HMAC key need a
//     token from the decryption Budget (per source and in total) before each private-key
//     decryption, else Throttled. Signature policy failures (NotSigned, BadSignature,
//     SignerNotValid, SignerNotAllowed) are decoding failures. A failure moves on to the next
//     stanza;
//  4. once a stanza decodes the packet: the replay check, one atomic CheckAndAdd on the
//     replay cache with a deadline and the packet's protocol and addresses
//     (replay.WithPacket, for fwknopd's digest file fields), before any policy check, as
//     fwknopd does, so a rejected packet cannot be retried; a cache error rejects the packet;
//  5. per stanza policy: packet age, allow-IP (0.0.0.0 and REQUIRE_SOURCE_ADDRESS,
//     SESAME_REQUIRE_SOURCE_MATCH), REQUIRE_USERNAME, message type (NAT messages need
//     their switch, Policy.NAT; see natPolicy for their grants), the access message (spa.ParseAccess), RESTRICT_PORTS and OPEN_PORTS
//     (fwconf.Stanza.CheckPorts), the access timeout (fwconf.Stanza.Timeout); a failure moves
//     on to the next stanza, which must decode the packet again with its own keys;
//  6. a firewall grant for each requested protocol and port of the first stanza that passes;
//     or, for a command message to a stanza with ENABLE_CMD_EXEC Y, its command, and for any
//     message a stanza with CMD_CYCLE_OPEN accepts, the cycle's open command (its close
//     recorded in the CloseStore and run CMD_CYCLE_TIMER later), queued on the CommandRunner,
//     never run on the packet path (command.go; verdict "command accepted").
//
// With several workers, Run's reading goroutine settles the packets that fail steps 1 to 3's
// HMAC itself, at one HMAC per matching stanza and no allocation. When the source is a
// capture.Screener (the Sniffer and the UDP server are) these checks run inside its Read, on
// the payload still in the receive buffer, so a forged packet is never copied; they take the
// time the source read the packet as now (one clock reading per batch) when the server runs on
// the real clock. The reader also settles GnuPG packets for stanzas without HMAC key once the
// decryption budget is exhausted, so a flood of forged 400-character packets costs a
// token-bucket check each and never queues ahead of valid knocks. Of the packets that pass, a
// lone one shorter than 400 characters (no worker busy, nothing waiting in a source that is a
// capture.Backlog) is handled by the reader itself, sparing a knock the hand-off; the rest go
// to the workers, whose grants arriving together share one firewall transaction.
//
// A packet that no stanza grants is rejected with one log line carrying src=, reason= and
// stanza= (the stanza that got furthest), so fail2ban can match it, and counted per reason in
// Stats. When no stanza could open it, stanzas= lists every stanza that matched ("1,3":
// each was tried, or was expired); when none matched although a SOURCE did, detail= names the
// DESTINATION rules that failed. No packet can make the pipeline panic or grant without passing every check; a panic
// all the same is recovered, logged with its stack and counted as InternalError.
//
// sesame extensions: IPv6 everywhere (sources, allow-IPs, prefixes, grants), and the access
// message "IP,none/0" (what fwknop's client would send without -A) means "open the stanza's
// OPEN_PORTS" instead of being refused.
package server

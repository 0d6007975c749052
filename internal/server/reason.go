package server

import (
	"sync/atomic"
)

// Reason is why a packet was not granted. The zero value, Granted, means it was.
type Reason uint8

// Rejection reasons, one per check of the pipeline. Their String is the reason= log value.
const (
	Granted          Reason = iota
	CommandAccepted         // not a rejection: a command message's command or a command cycle's open command was queued
	Malformed               // failed the cheap wire checks; not an SPA packet
	UnknownSource           // no stanza's SOURCE and DESTINATION match the packet (the log names DESTINATION rules that failed)
	StanzaExpired           // every matching stanza is past ACCESS_EXPIRE
	WrongMode               // a GnuPG packet (400+ characters) for a Rijndael-only stanza, or the reverse
	BadHMAC                 // HMAC mismatch (wrong HMAC key or tampered packet)
	Throttled               // GnuPG packet on a stanza without HMAC key, over the decryption budget
	DecryptFailed           // decryption failed (wrong key or mode; GnuPG: not for the server's key)
	NotSigned               // GnuPG packet without a signature (signatures required)
	BadSignature            // GnuPG signature that does not verify, or by a key not in the keyring
	SignerNotValid          // GnuPG signer's key not valid in the keyring (not lsigned; GPG_IGNORE_SIG_VERIFY_ERROR N)
	SignerNotAllowed        // GnuPG signer not in GPG_FINGERPRINT_ID / GPG_REMOTE_ID
	BadPlaintext            // decrypted, but the plaintext or its digest is invalid
	Replay                  // the packet was accepted (decoded) before
	TooOld                  // timestamp older than MAX_SPA_PACKET_AGE
	TooNew                  // timestamp further in the future than MAX_SPA_PACKET_AGE
	BadAccess               // the access message cannot be parsed
	SourceRequired          // allow-IP 0.0.0.0 with REQUIRE_SOURCE_ADDRESS
	SourceMismatch          // allow-IP differs from the packet source (SESAME_REQUIRE_SOURCE_MATCH)
	UsernameMismatch        // REQUIRE_USERNAME does not match
	CommandRefused          // command message (type 0) to a stanza without ENABLE_CMD_EXEC Y, or with a command cycle
	NATRefused              // NAT message (types 2, 4, 5, 6): its switch is off, or its target is refused
	RestrictedPort          // a requested port is in RESTRICT_PORTS
	PortNotAllowed          // a requested port is not in OPEN_PORTS
	NoPorts                 // "none/0" request but the stanza has no OPEN_PORTS
	CommandBusy             // the command queue is full: the command (or cycle) was not run
	FirewallError           // the firewall refused the grant
	InternalError           // replay cache failure or a recovered panic
	numReasons
)

var reasonNames = [numReasons]string{
	Granted:          "granted",
	CommandAccepted:  "command accepted",
	Malformed:        "malformed packet",
	UnknownSource:    "no stanza for source",
	StanzaExpired:    "stanza expired",
	WrongMode:        "no stanza for this encryption type",
	BadHMAC:          "HMAC mismatch",
	Throttled:        "GnuPG decryption budget exhausted",
	DecryptFailed:    "decryption failed",
	NotSigned:        "GnuPG packet not signed",
	BadSignature:     "bad GnuPG signature",
	SignerNotValid:   "GnuPG signer key not valid in keyring",
	SignerNotAllowed: "GnuPG signer not allowed",
	BadPlaintext:     "invalid plaintext",
	Replay:           "replay",
	TooOld:           "packet too old",
	TooNew:           "packet too new",
	BadAccess:        "invalid access message",
	SourceRequired:   "0.0.0.0 allow-IP with REQUIRE_SOURCE_ADDRESS",
	SourceMismatch:   "allow-IP differs from packet source",
	UsernameMismatch: "username mismatch",
	CommandRefused:   "command messages not allowed",
	NATRefused:       "NAT access refused",
	RestrictedPort:   "port in RESTRICT_PORTS",
	PortNotAllowed:   "port not in OPEN_PORTS",
	NoPorts:          "no ports requested and no OPEN_PORTS",
	CommandBusy:      "command queue full",
	FirewallError:    "firewall error",
	InternalError:    "internal error",
}

var reasonKeys = [numReasons]string{
	Granted: "granted", CommandAccepted: "command_accepted", Malformed: "malformed", UnknownSource: "unknown_source",
	StanzaExpired: "stanza_expired", WrongMode: "wrong_mode", BadHMAC: "bad_hmac", Throttled: "throttled",
	DecryptFailed: "decrypt_failed", NotSigned: "not_signed", BadSignature: "bad_signature",
	SignerNotValid: "signer_not_valid", SignerNotAllowed: "signer_not_allowed",
	BadPlaintext: "bad_plaintext", Replay: "replay", TooOld: "too_old", TooNew: "too_new",
	BadAccess: "bad_access", SourceRequired: "source_required", SourceMismatch: "source_mismatch",
	UsernameMismatch: "username_mismatch", CommandRefused: "command_refused", NATRefused: "nat_refused",
	RestrictedPort: "restricted_port", PortNotAllowed: "port_not_allowed", NoPorts: "no_ports",
	CommandBusy: "command_busy", FirewallError: "firewall_error", InternalError: "internal_error",
}

// Reasons lists every Reason, Granted first.
func Reasons() []Reason {
	rs := make([]Reason, numReasons)
	for i := range rs {
		rs[i] = Reason(i)
	}
	return rs
}

// Key is a short identifier for metrics and stats lines ("bad_hmac").
func (r Reason) Key() string {
	if r < numReasons {
		return reasonKeys[r]
	}
	return "unknown"
}

// String returns the reason as logged (reason=...).
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Stats is a snapshot of the pipeline's counters.
type Stats struct {
	Packets  uint64            // packets taken up (Handle entered, or settled by Run's reader)
	Handled  uint64            // packets settled: their outcome is final, logged and in ByReason
	Grants   uint64            // firewall grants made (one per proto/port)
	ByReason map[Reason]uint64 // packets per outcome; Granted counts granted packets
}

// Accepted reports whether r is a success: Granted or CommandAccepted.
func (r Reason) Accepted() bool { return r == Granted || r == CommandAccepted }

// Rejected is the number of packets that were not accepted (Reason.Accepted).
func (s Stats) Rejected() uint64 {
	var n uint64
	for r, c := range s.ByReason {
		if !r.Accepted() {
			n += c
		}
	}
	return n
}

type counters struct {
	packets  atomic.Uint64
	handled  atomic.Uint64
	grants   atomic.Uint64
	byReason [numReasons]atomic.Uint64
}

// settle counts a packet's final outcome; Handled is bumped last, so a test that waits for it
// sees the outcome's other effects.
func (c *counters) settle(r Reason) {
	c.byReason[r].Add(1)
	c.handled.Add(1)
}

func (c *counters) snapshot() Stats {
	s := Stats{Packets: c.packets.Load(), Handled: c.handled.Load(), Grants: c.grants.Load(), ByReason: map[Reason]uint64{}}
	for i := range c.byReason {
		if n := c.byReason[i].Load(); n > 0 {
			s.ByReason[Reason(i)] = n
		}
	}
	return s
}

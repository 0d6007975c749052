package server

import "github.com/sesame-spa/sesame/spa"

// Codec is the SPA protocol as the pipeline uses it; SPACodec implements it with package spa.
// Tests may substitute a fake.
type Codec interface {
	// CheckWire runs the cheap checks that need no key.
	CheckWire(wire []byte) error
	// VerifyHMAC checks only the HMAC of wire with one stanza's keys (nil without an HMAC
	// key): the cheap test that lets Run reject forged packets before handing them to workers.
	VerifyHMAC(wire []byte, k spa.Keys) error
	// Decode checks the HMAC, decrypts and decodes wire with one stanza's keys.
	Decode(wire []byte, k spa.Keys) (*spa.Message, error)
	// ReplayDigest is the replay-cache key of wire.
	ReplayDigest(wire []byte) string
	// ParseAccess parses an access message "ip,proto/port[,...]".
	ParseAccess(msg string) (spa.Access, error)
}

// defaultCodec is used when Config.Codec is nil.
var defaultCodec Codec

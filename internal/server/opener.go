package server

import "github.com/sesame-spa/sesame/spa"

// Opener opens the packets of one access stanza with the stanza's keys, built once per stanza
// by Reload so that a packet costs no key validation and no hmac.New. *spa.Decoder (Rijndael
// stanzas) implements it; a GnuPG opener will too. Implementations are safe for concurrent
// use.
type Opener interface {
	// VerifyHMAC checks only the HMAC of wire (a no-op without an HMAC key): the cheap test
	// that lets Run's reader reject forged packets before handing them to workers. Errors
	// wrap the spa sentinels (spa.ErrHMACMismatch for a forgery).
	VerifyHMAC(wire []byte) ([]byte, error)
	// Decode checks the HMAC, decrypts and decodes wire. Errors wrap the spa sentinels.
	Decode(wire []byte) (*spa.Message, error)
}

// NewSPAOpener is the default Config.NewOpener: spa.NewDecoder (fwknop 2.6's Rijndael
// packets). It fails for keys spa refuses (spa.Keys.Validate).
func NewSPAOpener(k spa.Keys) (Opener, error) { return spa.NewDecoder(k) }

package server

import "github.com/sesame-spa/sesame/spa"

// SPACodec is the Codec of package spa (fwknop 2.6 wire format).
type SPACodec struct{}

// CheckWire calls spa.CheckWire.
func (SPACodec) CheckWire(wire []byte) error { return spa.CheckWire(wire) }

// VerifyHMAC calls spa.VerifyHMAC.
func (SPACodec) VerifyHMAC(wire []byte, k spa.Keys) error {
	_, err := spa.VerifyHMAC(wire, k)
	return err
}

// Decode calls spa.Decode.
func (SPACodec) Decode(wire []byte, k spa.Keys) (*spa.Message, error) { return spa.Decode(wire, k) }

// ReplayDigest calls spa.ReplayDigest.
func (SPACodec) ReplayDigest(wire []byte) string { return spa.ReplayDigest(wire) }

// ParseAccess calls spa.ParseAccess.
func (SPACodec) ParseAccess(msg string) (spa.Access, error) { return spa.ParseAccess(msg) }

func init() { defaultCodec = SPACodec{} }

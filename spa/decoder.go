package spa

import (
	"fmt"
	"hash"
)

// Decoder decodes packets for one fixed key set (one access stanza): the keys are validated
// once and keyed HMAC states are reused, so rejecting a forged packet allocates nothing. Its
// methods behave like the package functions of the same names. A Decoder is safe for
// concurrent use; it keeps its own copy of the keys.
type Decoder struct {
	keys Keys
	macs macPool // keyed, in their initial state
}

// mac is a pooled keyed HMAC with room for its sum (a stack buffer would escape).
type mac struct {
	h   hash.Hash
	buf [64]byte
}

// NewDecoder validates k (see Keys.Validate) and returns a Decoder for it.
func NewDecoder(k Keys) (*Decoder, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	d := &Decoder{keys: Keys{
		Key:      append([]byte(nil), k.Key...),
		HMACType: k.HMACType,
		Mode:     k.Mode,
	}}
	if len(k.HMACKey) > 0 {
		d.keys.HMACKey = append([]byte(nil), k.HMACKey...)
		ht, _ := k.hmacType()
		d.macs.init(d.keys.HMACKey, ht)
	}
	return d, nil
}

// Decode is Decode(wire, keys) with the per-stanza work done ahead.
func (d *Decoder) Decode(wire []byte) (*Message, error) {
	if err := CheckWire(wire); err != nil {
		return nil, err
	}
	if len(wire) >= gnupgLen {
		return nil, fmt.Errorf("spa: %d characters: %w", len(wire), ErrGnuPG)
	}
	ct, err := d.VerifyHMAC(wire)
	if err != nil {
		return nil, err
	}
	return DecodeCiphertext(ct, d.keys)
}

// VerifyHMAC is VerifyHMAC(wire, keys) without allocating.
func (d *Decoder) VerifyHMAC(wire []byte) ([]byte, error) {
	return d.verifyHMAC(wire, true)
}

// VerifyCheckedHMAC is VerifyHMAC for a wire that has passed CheckWire: it does not scan the
// characters again, so a caller that tries several Decoders on one packet scans it once.
func (d *Decoder) VerifyCheckedHMAC(wire []byte) ([]byte, error) {
	return d.verifyHMAC(wire, false)
}

func (d *Decoder) verifyHMAC(wire []byte, scan bool) ([]byte, error) {
	if len(d.keys.HMACKey) == 0 {
		return wire, nil
	}
	ct, tag, err := sliceHMAC(wire, d.macs.ht, rijndaelPrefix, scan)
	if err != nil {
		return nil, err
	}
	if !d.macs.equal(rijndaelPrefix, ct, tag) {
		return nil, ErrHMACMismatch
	}
	return ct, nil
}

// DecodeCiphertext is DecodeCiphertext(ct, keys).
func (d *Decoder) DecodeCiphertext(ct []byte) (*Message, error) {
	return DecodeCiphertext(ct, d.keys)
}

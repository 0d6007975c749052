package spa

import (
	"crypto/hmac"
	"fmt"
	"hash"
	"sync"
)

// Decoder decodes packets for one fixed key set (one access stanza): the keys are validated
// once and keyed HMAC states are reused, so rejecting a forged packet allocates nothing. Its
// methods behave like the package functions of the same names. A Decoder is safe for
// concurrent use; it keeps its own copy of the keys.
type Decoder struct {
	keys Keys
	ht   DigestType
	macs sync.Pool // *mac values, keyed, in their initial state
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
		d.ht, _ = k.hmacType()
		key := d.keys.HMACKey
		newHash := d.ht.newHash()
		d.macs.New = func() any { return &mac{h: hmac.New(newHash, key)} }
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
	if len(d.keys.HMACKey) == 0 {
		return wire, nil
	}
	ct, tag, err := sliceHMAC(wire, d.ht, rijndaelPrefix)
	if err != nil {
		return nil, err
	}
	m := d.macs.Get().(*mac)
	ok := hmacEqual(m.h, m.buf[:0], rijndaelPrefix, ct, tag)
	m.h.Reset()
	d.macs.Put(m)
	if !ok {
		return nil, ErrHMACMismatch
	}
	return ct, nil
}

// DecodeCiphertext is DecodeCiphertext(ct, keys).
func (d *Decoder) DecodeCiphertext(ct []byte) (*Message, error) {
	return DecodeCiphertext(ct, d.keys)
}

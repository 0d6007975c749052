package spa

import "fmt"

// Opener is the seam for fwknop's GnuPG mode, which this package does not implement: Open
// receives the binary OpenPGP message (the base64 wire text with its stripped "hQ" restored,
// decoded) and returns the decrypted plaintext ("fields:digest"), after whatever signature
// policy the implementation enforces. A later package (e.g. on ProtonMail/go-crypto) plugs in
// here; DecodeGnuPG does the framing, HMAC and plaintext checks around it.
type Opener interface {
	Open(msg []byte) (plaintext []byte, err error)
}

// DecodeGnuPG decodes a GnuPG-mode packet: CheckWire, HMAC (when k has an HMAC key; computed
// over the text with "hQ" restored), at least 400 characters once restored, base64 decoding,
// o.Open, then DecodePlaintext. k.Key and k.Mode are not used. A nil Opener returns
// ErrUnsupported; an Open failure is wrapped with ErrDecrypt.
func DecodeGnuPG(wire []byte, k Keys, o Opener) (*Message, error) {
	if o == nil {
		return nil, fmt.Errorf("spa: GnuPG packets: %w", ErrUnsupported)
	}
	if err := CheckWire(wire); err != nil {
		return nil, err
	}
	ct, err := verifyHMAC(wire, k, gpgPrefix)
	if err != nil {
		return nil, err
	}
	if !isB64Text(ct) {
		return nil, fmt.Errorf("spa: GnuPG data: %w", ErrNotBase64)
	}
	var d b64Decoder
	var bin []byte
	n := len(ct)
	if !hasPrefix(ct, gpgPrefix) {
		n += len(gpgPrefix)
		bin, _ = d.write(bin, gpgPrefix)
	}
	if n < gnupgLen {
		return nil, fmt.Errorf("spa: GnuPG data of %d characters (min %d): %w", n, gnupgLen, ErrTooShort)
	}
	if n >= maxEncoded {
		return nil, fmt.Errorf("spa: GnuPG data of %d characters: %w", n, ErrTooLong)
	}
	bin, err = d.write(bin, ct)
	if err != nil {
		return nil, fmt.Errorf("spa: GnuPG data: %w", ErrNotBase64)
	}
	pt, err := o.Open(bin)
	if err != nil {
		return nil, fmt.Errorf("spa: GnuPG open: %w: %w", ErrDecrypt, err)
	}
	return DecodePlaintext(pt)
}

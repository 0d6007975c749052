package spa

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"sync"
)

// GnuPG mode (fwknop's "Asymmetric" mode 7, encryption type 2). The plaintext is the same
// "fields:digest" text as in Rijndael mode; the client encrypts it to the server's OpenPGP
// key (and, by default, signs it with its own), binary, without ASCII armour:
//
//	text = b64nopad(OpenPGP message)                   starts "hQ": 0x85 = old-format
//	                                                    public-key session key packet
//	                                                    with a 2-byte length < 4096
//	wire = text[2:] ‖ b64nopad(HMAC(hmac_key, text))   (HMAC optional)
//
// A receiver classifies a payload of 400 characters or more as GnuPG, restores "hQ" before
// checking the HMAC and decoding, and hands the binary message to an Opener. This package
// does the framing only; the OpenPGP work is behind Opener and Sealer (package spa/gnupg
// implements both on ProtonMail/go-crypto).

// Opener opens the binary OpenPGP message of a GnuPG-mode packet (the wire text with its
// stripped "hQ" restored, base64-decoded) and returns the decrypted plaintext
// ("fields:digest") after enforcing its signature policy. An error that wraps one of
// ErrNotSigned, ErrBadSignature, ErrSignerNotValid or ErrSignerNotAllowed is returned by
// DecodeGnuPG as is; any other error is a decryption failure (ErrDecrypt).
type Opener interface {
	Open(msg []byte) (plaintext []byte, err error)
}

// Sealer encrypts (and signs, if it has a signer) the plaintext of a GnuPG-mode packet and
// returns the binary OpenPGP message. EncodeGnuPG requires the message to start with an
// old-format packet header of tag 1 and a 2-byte length below 4096 (0x85 0x0?), whose base64
// is the "hQ" fwknop strips.
type Sealer interface {
	Seal(plaintext []byte) (msg []byte, err error)
}

// Signature policy failures of GnuPG packets (returned by Opener implementations; DecodeGnuPG
// passes them through instead of reporting a decryption failure).
var (
	ErrNotSigned        = errors.New("GnuPG packet is not signed")
	ErrBadSignature     = errors.New("bad GnuPG signature")
	ErrSignerNotValid   = errors.New("GnuPG signer's key is not valid in the server's keyring")
	ErrSignerNotAllowed = errors.New("GnuPG signer is not in GPG_FINGERPRINT_ID / GPG_REMOTE_ID")
	ErrNotGnuPG         = errors.New("packet under 400 characters is Rijndael, not GnuPG")
)

// sigErrors are the Opener errors DecodeGnuPG does not turn into ErrDecrypt.
var sigErrors = []error{ErrNotSigned, ErrBadSignature, ErrSignerNotValid, ErrSignerNotAllowed}

// DecodeGnuPG decodes a GnuPG-mode packet: CheckWire, at least 400 characters (ErrNotGnuPG:
// fwknop would treat it as Rijndael), the HMAC when k has an HMAC key (computed over the text
// with "hQ" restored), at least 400 characters once restored (ErrTooShort), base64 decoding,
// o.Open, then DecodePlaintext. Only k's HMAC fields are used. A nil Opener returns
// ErrUnsupported. An Open failure is wrapped with ErrDecrypt unless it is a signature failure
// (ErrNotSigned, ErrBadSignature, ErrSignerNotValid, ErrSignerNotAllowed), returned as is.
func DecodeGnuPG(wire []byte, k Keys, o Opener) (*Message, error) {
	if o == nil {
		return nil, fmt.Errorf("spa: GnuPG packets: %w", ErrUnsupported)
	}
	if err := checkGnuPGWire(wire); err != nil {
		return nil, err
	}
	ct, err := verifyHMAC(wire, k, gpgPrefix)
	if err != nil {
		return nil, err
	}
	return openGnuPG(ct, o)
}

func checkGnuPGWire(wire []byte) error {
	if err := CheckWire(wire); err != nil {
		return err
	}
	if len(wire) < gnupgLen {
		return fmt.Errorf("spa: %d characters: %w", len(wire), ErrNotGnuPG)
	}
	return nil
}

// openGnuPG is the second half of DecodeGnuPG: ct is the wire text without its HMAC.
func openGnuPG(ct []byte, o Opener) (*Message, error) {
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
	bin, err := d.write(bin, ct)
	if err != nil {
		return nil, fmt.Errorf("spa: GnuPG data: %w", ErrNotBase64)
	}
	pt, err := o.Open(bin)
	if err != nil {
		for _, s := range sigErrors {
			if errors.Is(err, s) {
				return nil, fmt.Errorf("spa: %w", err)
			}
		}
		return nil, fmt.Errorf("spa: GnuPG open: %w: %w", ErrDecrypt, err)
	}
	return DecodePlaintext(pt)
}

// EncodeGnuPG builds the wire string of a GnuPG-mode packet as fwknop's client does: it fills
// m.Random (16 digits read from rand) when empty, encodes m (EncodePlaintext), seals the
// plaintext with s, base64-encodes the message without '=', appends the HMAC when k has an
// HMAC key (over the whole text, "hQ" included) and strips the leading "hQ". Only k's HMAC
// fields are used. Errors: those of EncodePlaintext and s.Seal; ErrUnsupported when the
// sealed message does not start with 0x85 0x0? (no "hQ" to strip); ErrTooShort when the text
// has fewer than 400 characters (a receiver would take it for Rijndael) and ErrTooLong when
// the wire would exceed 1500 bytes (RSA keys above 3072 bits usually do).
func EncodeGnuPG(m *Message, k Keys, s Sealer, rand io.Reader) (string, error) {
	if s == nil {
		return "", fmt.Errorf("spa: GnuPG packets need a Sealer: %w", ErrUnsupported)
	}
	if err := k.validateHMAC(); err != nil {
		return "", err
	}
	if m.Random == "" {
		if rand == nil {
			return "", errors.New("spa: EncodeGnuPG needs a random source (crypto/rand.Reader)")
		}
		r, err := randomDigits(rand)
		if err != nil {
			return "", err
		}
		m.Random = r
	}
	pt, err := EncodePlaintext(m)
	if err != nil {
		return "", err
	}
	msg, err := s.Seal([]byte(pt))
	if err != nil {
		return "", fmt.Errorf("spa: GnuPG seal: %w", err)
	}
	if len(msg) < 3 || msg[0] != 0x85 || msg[1] >= 0x10 {
		return "", fmt.Errorf("spa: sealed message does not start with a 2-byte-length session key packet (0x85 0x0?): %w", ErrUnsupported)
	}
	text := b64.EncodeToString(msg)
	if len(text) < gnupgLen {
		return "", fmt.Errorf("spa: GnuPG text of %d characters (min %d): %w", len(text), gnupgLen, ErrTooShort)
	}
	wire := text[len(gnupgPrefix):]
	if len(k.HMACKey) > 0 {
		ht, _ := k.hmacType()
		wire += hmacB64([]byte(text), ht, k.HMACKey)
	}
	if len(wire) > maxWire || len(text) >= maxEncoded {
		return "", fmt.Errorf("spa: GnuPG packet of %d bytes (max %d): %w", len(wire), maxWire, ErrTooLong)
	}
	return wire, nil
}

// validateHMAC checks only the HMAC half of k (GnuPG mode has no Rijndael key): HMAC key of
// at most 136 bytes (ErrBadKey) and a known HMAC type (ErrHMACType).
func (k Keys) validateHMAC() error {
	if len(k.HMACKey) > maxHMACKeyLen {
		return fmt.Errorf("spa: HMAC key of %d bytes (max %d): %w", len(k.HMACKey), maxHMACKeyLen, ErrBadKey)
	}
	_, err := k.hmacType()
	return err
}

// GnuPGDecoder decodes GnuPG-mode packets for one HMAC key and one Opener (one access
// stanza), with keyed HMAC states reused so that rejecting a forged packet on a stanza with
// an HMAC key costs one HMAC and allocates nothing. It is safe for concurrent use if its
// Opener is.
type GnuPGDecoder struct {
	keys Keys
	o    Opener
	macs macPool
}

// NewGnuPGDecoder checks k's HMAC half (k.Key and k.Mode are ignored) and returns a decoder
// that opens messages with o. A nil o is ErrUnsupported.
func NewGnuPGDecoder(k Keys, o Opener) (*GnuPGDecoder, error) {
	if o == nil {
		return nil, fmt.Errorf("spa: GnuPG decoder without an Opener: %w", ErrUnsupported)
	}
	if err := k.validateHMAC(); err != nil {
		return nil, err
	}
	d := &GnuPGDecoder{o: o, keys: Keys{HMACType: k.HMACType}}
	if len(k.HMACKey) > 0 {
		d.keys.HMACKey = append([]byte(nil), k.HMACKey...)
		ht, _ := k.hmacType()
		d.macs.init(d.keys.HMACKey, ht)
	}
	return d, nil
}

// HasHMAC reports whether the decoder checks an HMAC (so that a forgery costs one HMAC and no
// decryption).
func (d *GnuPGDecoder) HasHMAC() bool { return len(d.keys.HMACKey) > 0 }

// VerifyHMAC checks the wire rules of a GnuPG packet (CheckWire, 400 characters or more:
// ErrNotGnuPG) and its HMAC ("hQ" restored) without allocating for a forgery, and returns the
// wire without its HMAC. Without an HMAC key it only checks the wire rules.
func (d *GnuPGDecoder) VerifyHMAC(wire []byte) ([]byte, error) {
	if err := CheckWire(wire); err != nil {
		return nil, err
	}
	return d.verifyHMAC(wire, true)
}

// VerifyCheckedHMAC is VerifyHMAC for a wire that has passed CheckWire: it checks the length
// and the HMAC without scanning the characters again.
func (d *GnuPGDecoder) VerifyCheckedHMAC(wire []byte) ([]byte, error) {
	return d.verifyHMAC(wire, false)
}

func (d *GnuPGDecoder) verifyHMAC(wire []byte, scan bool) ([]byte, error) {
	if len(wire) < gnupgLen {
		return nil, fmt.Errorf("spa: %d characters: %w", len(wire), ErrNotGnuPG)
	}
	if len(d.keys.HMACKey) == 0 {
		return wire, nil
	}
	ct, tag, err := sliceHMAC(wire, d.macs.ht, gpgPrefix, scan)
	if err != nil {
		return nil, err
	}
	if !d.macs.equal(gpgPrefix, ct, tag) {
		return nil, ErrHMACMismatch
	}
	return ct, nil
}

// Decode is DecodeGnuPG(wire, keys, opener) with the per-stanza work done ahead.
func (d *GnuPGDecoder) Decode(wire []byte) (*Message, error) {
	ct, err := d.VerifyHMAC(wire)
	if err != nil {
		return nil, err
	}
	return openGnuPG(ct, d.o)
}

// macPool holds keyed HMAC states in their initial state.
type macPool struct {
	p  sync.Pool
	ht DigestType
}

func (mp *macPool) init(key []byte, ht DigestType) {
	newHash := ht.newHash()
	mp.ht = ht
	mp.p.New = func() any { return &mac{h: hmac.New(newHash, key)} }
}

func (mp *macPool) equal(prefix, ct, tag []byte) bool {
	m := mp.p.Get().(*mac)
	ok := hmacEqual(m.h, m.buf[:0], prefix, ct, tag)
	m.h.Reset()
	mp.p.Put(m)
	return ok
}

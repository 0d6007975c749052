package spa

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// CheckWire runs fwknopd's cheap per-packet checks, before any key is tried: length 140..1500
// (ErrTooShort, ErrTooLong), no leading "U2FsdGVkX1" and, above 400 characters, no leading
// "hQ" (ErrPrefixPresent: a re-added prefix would dodge the replay cache), and only base64
// characters, '=' included (ErrNotBase64; a trailing newline fails here).
func CheckWire(wire []byte) error {
	if len(wire) < minWire {
		return fmt.Errorf("spa: packet of %d bytes (min %d): %w", len(wire), minWire, ErrTooShort)
	}
	if len(wire) > maxWire {
		return fmt.Errorf("spa: packet of %d bytes (max %d): %w", len(wire), maxWire, ErrTooLong)
	}
	if hasPrefix(wire, rijndaelPrefix) || len(wire) > gnupgLen && hasPrefix(wire, gpgPrefix) {
		return fmt.Errorf("spa: %w", ErrPrefixPresent)
	}
	if !isB64Text(wire) {
		return fmt.Errorf("spa: %w", ErrNotBase64)
	}
	return nil
}

// ReplayDigest is the replay-cache key of a packet: unpadded base64 of SHA-256 over the raw
// wire bytes (HMAC included), as fwknopd's digest cache stores it.
func ReplayDigest(wire []byte) string {
	s := sha256.Sum256(wire)
	return b64.EncodeToString(s[:])
}

// Decode runs every check fwknopd applies to a Rijndael packet for one key set, in fwknopd's
// order: CheckWire; 400 characters or more is GnuPG (ErrGnuPG); VerifyHMAC when k has an
// HMAC key; then DecodeCiphertext. With an HMAC key a forged packet costs one HMAC. Every
// failure wraps exactly one sentinel.
func Decode(wire []byte, k Keys) (*Message, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	if err := CheckWire(wire); err != nil {
		return nil, err
	}
	if len(wire) >= gnupgLen {
		return nil, fmt.Errorf("spa: %d characters: %w", len(wire), ErrGnuPG)
	}
	ct, err := VerifyHMAC(wire, k)
	if err != nil {
		return nil, err
	}
	return DecodeCiphertext(ct, k)
}

// DecodeCiphertext is the second half of decoding: ct is the base64 ciphertext text as on the
// wire (prefix stripped, HMAC already removed by VerifyHMAC). It restores "U2FsdGVkX1"
// (unless present), base64-decodes, derives key and IV from the salt, decrypts with k.Mode,
// removes PKCS#7 padding and applies libfko's checks: ErrNotBase64, ErrGnuPG (restored text
// of 400+ characters), ErrCipherLen (not a multiple of 16 bytes), ErrDecrypt (plaintext
// shorter than the ciphertext allows, or not starting with 16 digits and ':' – how a wrong
// key or mode shows), ErrPlaintext, then DecodePlaintext's checks. It does not apply the
// 400-character wire rule, so a server may use it for fwknop's ENABLE_CMD_EXEC case.
func DecodeCiphertext(ct []byte, k Keys) (*Message, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	mode, _ := k.mode()
	if !isB64Text(ct) {
		return nil, fmt.Errorf("spa: ciphertext: %w", ErrNotBase64)
	}
	n := len(ct)
	if !hasPrefix(ct, rijndaelPrefix) {
		n += len(rijndaelPrefix)
	}
	if err := checkEncodedLen(n); err != nil {
		return nil, err
	}
	if n >= gnupgLen {
		return nil, fmt.Errorf("spa: ciphertext of %d characters: %w", n, ErrGnuPG)
	}
	raw := make([]byte, 0, n*3/4+3)
	raw, err := decodeWithPrefix(raw, ct)
	if err != nil {
		return nil, err
	}
	if len(raw)%16 != 0 {
		return nil, fmt.Errorf("spa: %d ciphertext bytes: %w", len(raw), ErrCipherLen)
	}
	pt, err := decryptRaw(raw, k.Key, mode)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	if len(pt) == 0 || len(pt) < len(raw)-32 {
		return nil, fmt.Errorf("spa: %d plaintext bytes from %d: %w", len(pt), len(raw), ErrDecrypt)
	}
	if len(pt) < minEncoded || len(pt) >= maxEncoded {
		return nil, fmt.Errorf("spa: plaintext of %d bytes: %w", len(pt), ErrPlaintext)
	}
	if !allDigits(pt[:randLen]) || pt[randLen] != ':' {
		return nil, fmt.Errorf("spa: %w", ErrDecrypt)
	}
	return DecodePlaintext(pt)
}

// decodeWithPrefix base64-decodes "U2FsdGVkX1" ‖ ct (or ct alone when it already starts with
// the prefix) into dst.
func decodeWithPrefix(dst, ct []byte) ([]byte, error) {
	var err error
	if hasPrefix(ct, rijndaelPrefix) {
		dst, err = b64Decode(dst, ct)
	} else {
		// The 10 prefix characters end mid-byte, so decode prefix and text as one stream.
		var d b64Decoder
		if dst, err = d.write(dst, rijndaelPrefix); err == nil {
			dst, err = d.write(dst, ct)
		}
	}
	if err != nil {
		return dst, fmt.Errorf("spa: ciphertext: %w", ErrNotBase64)
	}
	return dst, nil
}

// Encode builds the wire string for m with keys k, as fwknop's client does: it fills
// m.Random (16 digits read from rand) when empty, normalises and encodes m (EncodePlaintext),
// reads an 8-byte salt from rand, encrypts with AES-256 in k.Mode, base64-encodes, appends
// the HMAC when k has an HMAC key, and strips the leading "U2FsdGVkX1". Use crypto/rand.Reader
// in production. Packets of 400 characters or more are valid Rijndael but fwknopd only tries
// them on ENABLE_CMD_EXEC stanzas (Decode returns ErrGnuPG for them).
func Encode(m *Message, k Keys, rand io.Reader) (string, error) {
	if err := k.Validate(); err != nil {
		return "", err
	}
	mode, _ := k.mode()
	if rand == nil {
		return "", errors.New("spa: Encode needs a random source (crypto/rand.Reader)")
	}
	if m.Random == "" {
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
	var salt [saltLen]byte
	if _, err := io.ReadFull(rand, salt[:]); err != nil {
		return "", fmt.Errorf("spa: reading salt: %w", err)
	}
	raw, err := encryptRaw([]byte(pt), k.Key, mode, &salt)
	if err != nil {
		return "", err
	}
	text := b64.EncodeToString(raw)
	wire := text[len(b64Prefix):]
	if len(k.HMACKey) > 0 {
		ht, _ := k.hmacType()
		wire += hmacB64([]byte(text), ht, k.HMACKey)
	}
	return wire, nil
}

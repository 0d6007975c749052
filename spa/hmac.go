package spa

import (
	"crypto/hmac"
	"crypto/subtle"
	"fmt"
	"hash"
)

var (
	rijndaelPrefix = []byte(b64Prefix)
	gpgPrefix      = []byte(gnupgPrefix)
)

// VerifyHMAC is the cheap first half of decoding, run once per candidate key set: it slices
// the HMAC (of k.HMACType, SHA256 when zero) off the end of wire, recomputes it over the
// ciphertext text with the stripped "U2FsdGVkX1" restored, compares in constant time and
// returns the ciphertext part (wire without the HMAC, still without the prefix; it aliases
// wire). It costs one HMAC and does no key derivation or decryption. With no HMAC key
// (nil or empty) it returns wire unchanged. It does not run CheckWire.
//
// Errors: ErrTooShort/ErrTooLong (wire outside libfko's 36..1499), ErrHMACType, ErrBadKey
// (HMAC key over 136 bytes), ErrHMACMissing (fewer than 36 characters left once the HMAC is
// removed), ErrNotBase64, ErrHMACMismatch (returned unwrapped, without allocating).
func VerifyHMAC(wire []byte, k Keys) ([]byte, error) {
	return verifyHMAC(wire, k, rijndaelPrefix)
}

func verifyHMAC(wire []byte, k Keys, prefix []byte) ([]byte, error) {
	if len(k.HMACKey) == 0 {
		return wire, nil
	}
	ht, err := k.hmacType()
	if err != nil {
		return nil, err
	}
	if len(k.HMACKey) > maxHMACKeyLen {
		return nil, fmt.Errorf("spa: HMAC key of %d bytes (max %d): %w", len(k.HMACKey), maxHMACKeyLen, ErrBadKey)
	}
	ct, tag, err := sliceHMAC(wire, ht, prefix, true)
	if err != nil {
		return nil, err
	}
	var sum [64]byte
	if !hmacEqual(hmac.New(ht.newHash(), k.HMACKey), sum[:0], prefix, ct, tag) {
		return nil, ErrHMACMismatch
	}
	return ct, nil
}

// sliceHMAC does the cheap checks and splits wire into ciphertext text and HMAC text. scan
// false skips the base64 character scan of the ciphertext, for a wire that passed CheckWire.
func sliceHMAC(wire []byte, ht DigestType, prefix []byte, scan bool) (ct, tag []byte, err error) {
	if err := checkEncodedLen(len(wire)); err != nil {
		return nil, nil, err
	}
	n := ht.b64Len()
	if len(wire)-n < minEncoded {
		return nil, nil, fmt.Errorf("spa: %d characters cannot hold a %d-character %v HMAC and a ciphertext: %w",
			len(wire), n, ht, ErrHMACMissing)
	}
	ct, tag = wire[:len(wire)-n], wire[len(wire)-n:]
	if scan && !isB64Text(ct) {
		return nil, nil, fmt.Errorf("spa: ciphertext: %w", ErrNotBase64)
	}
	return ct, tag, nil
}

// hmacEqual computes the HMAC of prefix ‖ ct (prefix only if ct lacks it) with the keyed hash
// h, in its initial state, and compares its unpadded base64 form with tag in constant time.
// buf (capacity 64) receives the raw sum.
func hmacEqual(h hash.Hash, buf, prefix, ct, tag []byte) bool {
	if !hasPrefix(ct, prefix) {
		h.Write(prefix)
	}
	h.Write(ct)
	var want [88]byte
	b64.Encode(want[:], h.Sum(buf))
	return len(tag) <= len(want) && subtle.ConstantTimeCompare(want[:len(tag)], tag) == 1
}

// hmacB64 returns the unpadded base64 HMAC of text (the full base64 ciphertext, prefix
// included).
func hmacB64(text []byte, t DigestType, key []byte) string {
	h := hmac.New(t.newHash(), key)
	h.Write(text)
	return b64.EncodeToString(h.Sum(nil))
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// checkEncodedLen is libfko's is_valid_encoded_msg_len: 36 <= n < 1500.
func checkEncodedLen(n int) error {
	if n < minEncoded {
		return fmt.Errorf("spa: %d characters (min %d): %w", n, minEncoded, ErrTooShort)
	}
	if n >= maxEncoded {
		return fmt.Errorf("spa: %d characters (max %d): %w", n, maxEncoded-1, ErrTooLong)
	}
	return nil
}

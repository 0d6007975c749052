// Package keygen generates fwknop-style key pairs (what --key-gen prints), shared by sesame
// keygen, sesame knock -k and sesame server --key-gen.
package keygen

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"

	"github.com/sesame-spa/sesame/spa"
)

// Key length limits and defaults, as fwknop's --key-gen has them.
const (
	DefaultKeyLen = 32  // Rijndael keys: 1..32 bytes
	MaxKeyLen     = 32  // libfko refuses longer keys
	MaxHMACKeyLen = 128 // the fwknop client truncates longer command-line HMAC keys
)

// ErrKeyLen is returned by Generate for a length outside the allowed range.
var ErrKeyLen = errors.New("invalid key length")

// DefaultHMACKeyLen is the HMAC key length fwknop 2.6.10's --key-gen uses for t: 16 for MD5,
// 20 for SHA1, 64 for SHA256, 128 for SHA384 and SHA512. For SHA3 fwknop 2.6.10 has no
// working default (--key-gen --hmac-digest-type sha3_256 fails with libfko error 69), so
// sesame uses the SHA-2 sizes of the same width: 64 for SHA3_256 and 128 for SHA3_512 (the
// same as "sesame server --key-gen").
func DefaultHMACKeyLen(t spa.DigestType) int {
	switch t {
	case spa.MD5:
		return 16
	case spa.SHA1:
		return 20
	case spa.SHA384, spa.SHA512, spa.SHA3_512:
		return 128
	}
	return 64
}

// Pair is a generated Rijndael key and HMAC key.
type Pair struct {
	Key, HMACKey []byte
}

// Generate reads a keyLen-byte key and an hmacLen-byte HMAC key from rng (crypto/rand.Reader
// in production). keyLen must be 1..32 and hmacLen 1..128 (ErrKeyLen).
func Generate(rng io.Reader, keyLen, hmacLen int) (Pair, error) {
	if keyLen < 1 || keyLen > MaxKeyLen {
		return Pair{}, fmt.Errorf("--key-len %d: must be in [1-%d]: %w", keyLen, MaxKeyLen, ErrKeyLen)
	}
	if hmacLen < 1 || hmacLen > MaxHMACKeyLen {
		return Pair{}, fmt.Errorf("--hmac-key-len %d: must be in [1-%d]: %w", hmacLen, MaxHMACKeyLen, ErrKeyLen)
	}
	buf := make([]byte, keyLen+hmacLen)
	if _, err := io.ReadFull(rng, buf); err != nil {
		return Pair{}, fmt.Errorf("read random bytes: %w", err)
	}
	return Pair{Key: buf[:keyLen:keyLen], HMACKey: buf[keyLen:]}, nil
}

// KeyBase64 and HMACKeyBase64 are the keys in standard base64 with '=' padding.
func (p Pair) KeyBase64() string     { return base64.StdEncoding.EncodeToString(p.Key) }
func (p Pair) HMACKeyBase64() string { return base64.StdEncoding.EncodeToString(p.HMACKey) }

// String is fwknop's --key-gen output: "KEY_BASE64: k\nHMAC_KEY_BASE64: h\n".
func (p Pair) String() string {
	return "KEY_BASE64: " + p.KeyBase64() + "\nHMAC_KEY_BASE64: " + p.HMACKeyBase64() + "\n"
}

// QRText is the text the Fwknop2 app reads from a QR code: "KEY_BASE64:k HMAC_KEY_BASE64:h".
func (p Pair) QRText() string {
	return "KEY_BASE64:" + p.KeyBase64() + " HMAC_KEY_BASE64:" + p.HMACKeyBase64()
}

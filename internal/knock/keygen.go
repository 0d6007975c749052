package knock

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"github.com/sesame-spa/sesame/spa"
)

// Keys are generated keys in the form fwknop's --key-gen prints them (standard base64 with
// '=' padding).
type Keys struct {
	KeyBase64, HMACKeyBase64 string
}

// String renders the keys as fwknop -k does: "KEY_BASE64: ...\nHMAC_KEY_BASE64: ...\n".
func (k Keys) String() string {
	return "KEY_BASE64: " + k.KeyBase64 + "\nHMAC_KEY_BASE64: " + k.HMACKeyBase64 + "\n"
}

// DefaultHMACKeyLen is the HMAC key size fwknop's --key-gen uses for an HMAC type: 16 bytes
// for MD5, 20 for SHA-1, 128 for SHA-384, SHA-512 and SHA3-512, 64 otherwise (SHA-256, the
// default).
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

// GenerateKeys draws a keyLen-byte Rijndael key (1..32) and an hmacLen-byte HMAC key
// (1..128) from r (crypto/rand when nil).
func GenerateKeys(r io.Reader, keyLen, hmacLen int) (Keys, error) {
	if r == nil {
		r = rand.Reader
	}
	if keyLen < 1 || keyLen > 32 {
		return Keys{}, fmt.Errorf("%w: --key-len %d: Rijndael keys are 1..32 bytes", ErrKeyLength, keyLen)
	}
	if hmacLen < 1 || hmacLen > maxHMACKey {
		return Keys{}, fmt.Errorf("%w: --hmac-key-len %d: HMAC keys are 1..%d bytes", ErrKeyLength, hmacLen, maxHMACKey)
	}
	buf := make([]byte, keyLen+hmacLen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Keys{}, fmt.Errorf("generate keys: %w", err)
	}
	return Keys{
		KeyBase64:     base64.StdEncoding.EncodeToString(buf[:keyLen]),
		HMACKeyBase64: base64.StdEncoding.EncodeToString(buf[keyLen:]),
	}, nil
}

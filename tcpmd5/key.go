package tcpmd5

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MaxKeyLen is the longest key the kernel accepts (TCP_MD5SIG_MAXKEYLEN).
const MaxKeyLen = 80

// ErrKeyLength is returned for keys shorter than 1 byte or longer than [MaxKeyLen].
var ErrKeyLength = errors.New("tcpmd5: key must be 1 to 80 bytes")

// A Key is a TCP-MD5 secret of 1 to [MaxKeyLen] bytes. The zero Key is not valid. Its
// String method does not reveal the secret.
type Key struct {
	b string // immutable copy of the bytes
}

// NewKey returns a Key holding a copy of b.
func NewKey(b []byte) (Key, error) {
	if len(b) < 1 || len(b) > MaxKeyLen {
		return Key{}, fmt.Errorf("%w (got %d)", ErrKeyLength, len(b))
	}
	return Key{b: string(b)}, nil
}

// ParseKey reads a key written as text:
//
//	hex:6f70656e       hexadecimal bytes (either case, even length)
//	base64:b3Blbg==    standard base64, padding optional
//	raw:anything       the bytes after "raw:", verbatim
//	anything           any other string is the key's bytes, verbatim
//
// The decoded key must be 1 to 80 bytes. Use "raw:" for a literal key that starts with
// one of the prefixes above.
func ParseKey(s string) (Key, error) {
	var b []byte
	var err error
	switch {
	case strings.HasPrefix(s, "hex:"):
		b, err = hex.DecodeString(s[len("hex:"):])
		if err != nil {
			return Key{}, fmt.Errorf("tcpmd5: bad hex key: %w", err)
		}
	case strings.HasPrefix(s, "base64:"):
		t := s[len("base64:"):]
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(t, "="))
		if err != nil {
			return Key{}, fmt.Errorf("tcpmd5: bad base64 key: %w", err)
		}
	case strings.HasPrefix(s, "raw:"):
		b = []byte(s[len("raw:"):])
	default:
		b = []byte(s)
	}
	return NewKey(b)
}

// Bytes returns a copy of the key's bytes.
func (k Key) Bytes() []byte { return []byte(k.b) }

// Len returns the key's length in bytes; 0 for the zero Key.
func (k Key) Len() int { return len(k.b) }

// IsZero reports whether k is the zero (invalid) Key.
func (k Key) IsZero() bool { return k.b == "" }

// Equal reports whether k and o hold the same bytes, in constant time for equal lengths.
func (k Key) Equal(o Key) bool {
	return subtle.ConstantTimeCompare([]byte(k.b), []byte(o.b)) == 1
}

// String describes the key without revealing it.
func (k Key) String() string { return fmt.Sprintf("tcpmd5.Key(%d bytes)", len(k.b)) }

// GoString describes the key without revealing it.
func (k Key) GoString() string { return k.String() }

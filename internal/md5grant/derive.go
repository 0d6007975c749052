package md5grant

import (
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/tcpmd5"
)

// Derivation constants (see the package doc).
const (
	Salt   = "sesame tcp-md5 v1"
	Info   = "tcp-md5"
	KeyLen = 32
)

// legacyKeyLen is how much of the key fwknop's legacy mode uses.
const legacyKeyLen = 16

// ErrNoKey is returned by Derive for keys without a Rijndael key.
var ErrNoKey = errors.New("md5grant: no Rijndael key to derive from")

// Derive returns the TCP-MD5 key of a stanza's SPA keys, as specified in the package doc.
func Derive(keys spa.Keys) (tcpmd5.Key, error) {
	k := keys.Key
	if keys.Mode == spa.Legacy && len(k) > legacyKeyLen {
		k = k[:legacyKeyLen]
	}
	if len(k) == 0 {
		return tcpmd5.Key{}, ErrNoKey
	}
	out, err := hkdf.Key(sha256.New, ikm(k, keys.HMACKey), []byte(Salt), Info, KeyLen)
	if err != nil {
		return tcpmd5.Key{}, fmt.Errorf("md5grant: hkdf: %w", err)
	}
	return tcpmd5.NewKey(out)
}

// ikm is len(k) || k || len(h) || h with 4-byte big-endian lengths.
func ikm(k, h []byte) []byte {
	b := make([]byte, 0, 8+len(k)+len(h))
	b = binary.BigEndian.AppendUint32(b, uint32(len(k)))
	b = append(b, k...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h)))
	return append(b, h...)
}

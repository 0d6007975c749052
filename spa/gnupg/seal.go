package gnupg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesame-spa/sesame/spa"
)

// minText is the base64 length a GnuPG packet must reach: receivers take anything shorter
// for Rijndael.
const minText = 400

// Sealer encrypts packets to a server's key and, with a signer, signs them: what fwknop's
// client does with gpgme (-g, --gpg-recipient-key, --gpg-signer-key). It implements
// spa.Sealer and is safe for concurrent use if rand is.
type Sealer struct {
	to     *openpgp.Entity
	signer *openpgp.Entity
	rand   io.Reader
	now    func() time.Time
}

// NewSealer returns a Sealer for the recipient's public key (it needs a valid encryption key
// at now()) and an optional signer, whose private signing key must be decrypted. rand
// (crypto/rand.Reader in production) and now are required.
func NewSealer(recipient, signer *openpgp.Entity, rand io.Reader, now func() time.Time) (*Sealer, error) {
	if recipient == nil || rand == nil || now == nil {
		return nil, errors.New("gnupg: NewSealer needs a recipient, a random source and a clock")
	}
	if _, ok := recipient.EncryptionKey(now()); !ok {
		return nil, fmt.Errorf("gnupg: key %X has no valid encryption key", recipient.PrimaryKey.KeyId)
	}
	if signer != nil {
		k, ok := signer.SigningKey(now())
		if !ok || k.PrivateKey == nil {
			return nil, fmt.Errorf("gnupg: key %X has no usable secret signing key", signer.PrimaryKey.KeyId)
		}
		if k.PrivateKey.Encrypted {
			return nil, fmt.Errorf("gnupg: signing key %X is still passphrase-protected: decrypt it first", signer.PrimaryKey.KeyId)
		}
	}
	return &Sealer{to: recipient, signer: signer, rand: rand, now: now}, nil
}

// Seal encrypts (and signs) plaintext as one binary OpenPGP message: session key packet, SEIPD
// v1 with MDC, uncompressed literal data (binary). Its first packet header is rewritten in
// the old format with a 2-byte length (0x85 0x0?), so its base64 starts with the "hQ" fwknop
// strips; go-crypto writes new-format headers, and gpg writes ECDH session keys with a 1-byte
// length (0x84, "hF": fwknop issue #247). A message too short for the 400-character rule (an
// unsigned packet to an ECC key) is padded with a literal-data file name, which receivers
// ignore. Seal implements spa.Sealer.
func (s *Sealer) Seal(plaintext []byte) ([]byte, error) {
	msg, err := s.seal(plaintext, "")
	if err != nil {
		return nil, err
	}
	if n := len(msg) * 4 / 3; n < minText {
		// Each file name byte adds one byte to the message, 4/3 characters to the text.
		if msg, err = s.seal(plaintext, strings.Repeat("_", (minText-n)*3/4+3)); err != nil {
			return nil, err
		}
	}
	return msg, nil
}

func (s *Sealer) seal(plaintext []byte, name string) ([]byte, error) {
	var buf bytes.Buffer
	cfg := &packet.Config{Rand: s.rand, Time: s.now, DefaultCompressionAlgo: packet.CompressionNone}
	w, err := openpgp.Encrypt(&buf, []*openpgp.Entity{s.to}, s.signer, &openpgp.FileHints{IsBinary: true, FileName: name}, cfg)
	if err != nil {
		return nil, fmt.Errorf("gnupg: encrypt: %w", err)
	}
	if _, err := w.Write(plaintext); err != nil {
		return nil, fmt.Errorf("gnupg: encrypt: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("gnupg: encrypt: %w", err)
	}
	return OldFormatFirstHeader(buf.Bytes())
}

// OldFormatFirstHeader rewrites the header of msg's first packet, which must be a public-key
// session key packet (tag 1) with a definite length below 4096, as an old-format header with a
// 2-byte length (0x85, length high byte, length low byte) and returns the new message. Both
// gpg and go-crypto read such headers whatever the length.
func OldFormatFirstHeader(msg []byte) ([]byte, error) {
	tag, hdr, n, err := firstHeader(msg)
	if err != nil {
		return nil, err
	}
	if tag != 1 {
		return nil, fmt.Errorf("gnupg: message starts with packet tag %d, not a public-key session key (1)", tag)
	}
	if n >= 4096 || hdr+n > len(msg) {
		return nil, fmt.Errorf("gnupg: first packet of %d bytes does not fit a 2-byte old-format header", n)
	}
	out := make([]byte, 0, 3+len(msg)-hdr)
	out = append(out, 0x85, byte(n>>8), byte(n))
	return append(out, msg[hdr:]...), nil
}

// firstHeader parses the first OpenPGP packet header (RFC 9580 §4.2): tag, header length and
// body length. Partial and indeterminate lengths are refused.
func firstHeader(msg []byte) (tag, hdr, n int, err error) {
	bad := errors.New("gnupg: malformed first packet header")
	if len(msg) < 2 || msg[0]&0x80 == 0 {
		return 0, 0, 0, bad
	}
	if msg[0]&0x40 != 0 { // new format
		tag = int(msg[0] & 0x3f)
		switch b := int(msg[1]); {
		case b < 192:
			return tag, 2, b, nil
		case b < 224:
			if len(msg) < 3 {
				return 0, 0, 0, bad
			}
			return tag, 3, (b-192)<<8 + int(msg[2]) + 192, nil
		case b == 255:
			if len(msg) < 6 {
				return 0, 0, 0, bad
			}
			v := uint32(msg[2])<<24 | uint32(msg[3])<<16 | uint32(msg[4])<<8 | uint32(msg[5])
			if v > 1<<20 {
				return 0, 0, 0, bad
			}
			return tag, 6, int(v), nil
		}
		return 0, 0, 0, bad // partial length
	}
	tag = int(msg[0]>>2) & 0x0f
	switch msg[0] & 3 {
	case 0:
		return tag, 2, int(msg[1]), nil
	case 1:
		if len(msg) < 3 {
			return 0, 0, 0, bad
		}
		return tag, 3, int(msg[1])<<8 | int(msg[2]), nil
	case 2:
		if len(msg) < 5 {
			return 0, 0, 0, bad
		}
		v := uint32(msg[1])<<24 | uint32(msg[2])<<16 | uint32(msg[3])<<8 | uint32(msg[4])
		if v > 1<<20 {
			return 0, 0, 0, bad
		}
		return tag, 5, int(v), nil
	}
	return 0, 0, 0, bad // indeterminate length
}

// Encode builds a GnuPG-mode wire packet for m: spa.EncodeGnuPG with a Sealer for recipient
// and signer (nil: unsigned, which fwknopd refuses unless the stanza says GPG_DISABLE_SIG Y).
// hmac carries the optional HMAC key and type (its Key and Mode are ignored). This is the one
// call fwknop-style clients need (sesame knock -g).
func Encode(m *spa.Message, hmac spa.Keys, recipient, signer *openpgp.Entity, rand io.Reader, now func() time.Time) (string, error) {
	s, err := NewSealer(recipient, signer, rand, now)
	if err != nil {
		return "", err
	}
	return spa.EncodeGnuPG(m, hmac, s, rand)
}

var _ spa.Sealer = (*Sealer)(nil)

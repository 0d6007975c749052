package gnupg

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesame-spa/sesame/spa"
)

// maxPlaintext bounds the decrypted body: libfko's plaintext limit is 1500 bytes.
const maxPlaintext = 1500

// maxDecompressed caps what a compressed packet may expand to.
const maxDecompressed = 4096

// Keyring holds the keys an Opener uses.
type Keyring struct {
	// Decrypt holds the server's secret keys (GPG_DECRYPT_ID), already decrypted
	// (Entity.DecryptPrivateKeys). Only subkeys flagged for encryption are used.
	Decrypt openpgp.EntityList
	// Signers holds the public keys that may sign packets: the server's public keyring.
	Signers openpgp.EntityList
	// Valid reports whether the key with this primary fingerprint (upper-case hex) has a
	// GnuPG validity of at least marginal in the server's keyring. nil counts every key in
	// Signers as valid.
	Valid func(primaryFingerprint string) bool
}

// Policy is a stanza's signature policy (see the package doc).
type Policy struct {
	RequireSig        bool     // GPG_REQUIRE_SIG, default Y unless GPG_DISABLE_SIG Y
	IgnoreVerifyError bool     // GPG_IGNORE_SIG_VERIFY_ERROR: accept a signer key that is not valid
	Fingerprints      []string // GPG_FINGERPRINT_ID: full fingerprints (hex, spaces ignored)
	RemoteIDs         []string // GPG_REMOTE_ID: short IDs, the last 8 hex digits of a fingerprint
}

// Signer describes the signature of an opened message.
type Signer struct {
	Signed      bool   // the message carries a one-pass signature
	KeyID       string // upper-case hex key ID the signature names (16 digits), "" if unsigned
	Fingerprint string // upper-case hex fingerprint of the signing key, "" if not in the keyring
	Primary     string // upper-case hex fingerprint of its primary key, "" if not in the keyring
	Verified    bool   // the signature verified with a key of the keyring
	Valid       bool   // that key is valid in the keyring (Keyring.Valid)
}

// ShortID is the fwknop signature ID of the signer: the last 8 hex digits of the signing
// key's fingerprint (of the key ID when the key is unknown).
func (s Signer) ShortID() string {
	id := s.Fingerprint
	if id == "" {
		id = s.KeyID
	}
	if len(id) < 8 {
		return id
	}
	return id[len(id)-8:]
}

// Opener opens GnuPG-mode messages for one stanza. It implements spa.Opener and is safe for
// concurrent use.
type Opener struct {
	kr     Keyring
	policy Policy
	now    func() time.Time
	fprs   map[string]bool
	ids    map[string]bool
	config *packet.Config
}

// NewOpener checks that kr has at least one decrypted secret key that can decrypt, and that
// the policy's fingerprints and IDs are hex, and returns an Opener. now is the clock used for
// key and signature expiry; it is required.
func NewOpener(kr Keyring, p Policy, now func() time.Time) (*Opener, error) {
	if now == nil {
		return nil, errors.New("gnupg: NewOpener needs a clock")
	}
	keys := kr.Decrypt.DecryptionKeys()
	if len(keys) == 0 {
		return nil, errors.New("gnupg: no secret key that can decrypt (an encryption subkey with its private part)")
	}
	for _, k := range keys {
		if k.PrivateKey.Encrypted {
			return nil, fmt.Errorf("gnupg: secret key %X is still passphrase-protected: decrypt it first", k.PublicKey.KeyId)
		}
	}
	o := &Opener{kr: kr, policy: p, now: now, fprs: map[string]bool{}, ids: map[string]bool{},
		config: &packet.Config{Time: now, MaxDecompressedMessageSize: ptr(int64(maxDecompressed))}}
	for _, f := range p.Fingerprints {
		n, err := NormalizeFingerprint(f)
		if err != nil {
			return nil, err
		}
		o.fprs[n] = true
	}
	for _, id := range p.RemoteIDs {
		n, err := NormalizeKeyID(id)
		if err != nil {
			return nil, err
		}
		o.ids[n] = true
	}
	return o, nil
}

func ptr[T any](v T) *T { return &v }

// NormalizeFingerprint returns a GPG_FINGERPRINT_ID entry as upper-case hex without spaces:
// 40 hex digits (v4 keys) or 64 (v5/v6).
func NormalizeFingerprint(s string) (string, error) {
	n := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(s), "0x"), " ", ""))
	if (len(n) != 40 && len(n) != 64) || !isHex(n) {
		return "", fmt.Errorf("gnupg: fingerprint %q: want 40 hex digits (gpg --fingerprint)", s)
	}
	return n, nil
}

// NormalizeKeyID returns a GPG_REMOTE_ID entry as upper-case hex: the last 8 hex digits of a
// fingerprint (fwknop's signature ID). A 16-digit long key ID or a 40-digit fingerprint is
// cut to its last 8 digits.
func NormalizeKeyID(s string) (string, error) {
	n := strings.ToUpper(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if (len(n) != 8 && len(n) != 16 && len(n) != 40) || !isHex(n) {
		return "", fmt.Errorf("gnupg: key ID %q: want the last 8 hex digits of the signer's fingerprint", s)
	}
	return n[len(n)-8:], nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && s != ""
}

// Open decrypts msg and enforces the policy; it implements spa.Opener. Errors: the spa
// signature sentinels (see the package doc) for policy failures, anything else for a message
// that cannot be decrypted (spa.DecodeGnuPG reports those as spa.ErrDecrypt).
func (o *Opener) Open(msg []byte) ([]byte, error) {
	pt, _, err := o.OpenDetails(msg)
	return pt, err
}

// OpenDetails is Open that also describes the signature (for sesame decode and logs). The
// Signer is filled as far as the message was read, also on a policy failure.
func (o *Opener) OpenDetails(msg []byte) (pt []byte, sig Signer, err error) {
	pt, sig, err = o.decrypt(msg)
	if err != nil {
		return nil, sig, err
	}
	if err := o.check(sig); err != nil {
		return nil, sig, err
	}
	return pt, sig, nil
}

// decrypt reads msg to its end (integrity and signature checks happen there).
func (o *Opener) decrypt(msg []byte) (pt []byte, sig Signer, err error) {
	defer func() {
		if r := recover(); r != nil { // go-crypto on hostile input: a failure, never a crash
			pt, err = nil, fmt.Errorf("gnupg: malformed message (%v)", r)
		}
	}()
	kr := &onceKeyring{o: o}
	md, err := openpgp.ReadMessage(bytes.NewReader(msg), kr, nil, o.config)
	if err != nil {
		return nil, sig, fmt.Errorf("gnupg: %w", err)
	}
	if !md.IsEncrypted || md.DecryptedWith.PrivateKey == nil {
		return nil, sig, errors.New("gnupg: message is not encrypted to the server's key")
	}
	pt, err = io.ReadAll(io.LimitReader(md.UnverifiedBody, maxPlaintext+1))
	if err != nil {
		return nil, sig, fmt.Errorf("gnupg: %w", err)
	}
	if len(pt) > maxPlaintext {
		return nil, sig, fmt.Errorf("gnupg: plaintext over %d bytes", maxPlaintext)
	}
	if md.IsSigned {
		sig.Signed = true
		sig.KeyID = fmt.Sprintf("%016X", md.SignedByKeyId)
		if md.SignedBy != nil {
			sig.Fingerprint = fmt.Sprintf("%X", md.SignedBy.PublicKey.Fingerprint)
			sig.Primary = fmt.Sprintf("%X", md.SignedBy.Entity.PrimaryKey.Fingerprint)
			sig.Verified = md.Signature != nil && md.SignatureError == nil
			sig.Valid = o.kr.Valid == nil || o.kr.Valid(sig.Primary)
		}
	}
	return pt, sig, nil
}

// check applies the policy to a decrypted message's signature.
func (o *Opener) check(s Signer) error {
	p := o.policy
	switch {
	case !p.RequireSig:
		return nil
	case !s.Signed:
		return spa.ErrNotSigned
	case s.Fingerprint == "":
		return fmt.Errorf("signer key %s is not in the server's keyring: %w", s.KeyID, spa.ErrBadSignature)
	case !s.Verified:
		return fmt.Errorf("signature by %s does not verify: %w", s.Fingerprint, spa.ErrBadSignature)
	case !s.Valid && !p.IgnoreVerifyError:
		return fmt.Errorf("signer %s: %w (sign it with the server's key: gpg --quick-lsign-key %s)", s.Primary, spa.ErrSignerNotValid, s.Primary)
	}
	if len(o.fprs) > 0 && !o.fprs[s.Fingerprint] && !o.fprs[s.Primary] {
		return fmt.Errorf("signer fingerprint %s not in GPG_FINGERPRINT_ID: %w", s.Fingerprint, spa.ErrSignerNotAllowed)
	}
	if len(o.ids) > 0 && !o.ids[s.ShortID()] && !o.ids[s.Primary[len(s.Primary)-8:]] {
		return fmt.Errorf("signer ID %s not in GPG_REMOTE_ID: %w", s.ShortID(), spa.ErrSignerNotAllowed)
	}
	return nil
}

// onceKeyring is the keyring of one ReadMessage call: it answers the first session key
// packet that names one of the server's keys (or the wildcard ID) and no later one, so a
// message costs at most one private-key operation per decryption key; signers come from
// Keyring.Signers.
type onceKeyring struct {
	o    *Opener
	used bool
}

func (k *onceKeyring) KeysById(id uint64) []openpgp.Key {
	if k.used {
		return nil
	}
	var keys []openpgp.Key
	for _, key := range k.o.kr.Decrypt.DecryptionKeys() {
		if key.PublicKey.KeyId == id {
			keys = append(keys, key)
		}
	}
	k.used = len(keys) > 0
	return keys
}

func (k *onceKeyring) KeysByIdUsage(id uint64, usage byte) []openpgp.Key {
	return k.o.kr.Signers.KeysByIdUsage(id, usage)
}

func (k *onceKeyring) DecryptionKeys() []openpgp.Key {
	if k.used {
		return nil
	}
	k.used = true
	return k.o.kr.Decrypt.DecryptionKeys()
}

// Interface checks.
var (
	_ spa.Opener      = (*Opener)(nil)
	_ openpgp.KeyRing = (*onceKeyring)(nil)
)

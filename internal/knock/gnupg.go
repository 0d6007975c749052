package knock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// GnuPG mode (-g), as fwknop 2.6.10's client: the packet is encrypted to GPGRecipient and,
// when GPGSigner is set, signed by it; an HMAC is added when an HMAC key is given, as in
// Rijndael mode. The keys come from the GnuPG home (GPGHomeDir), read once per knock by
// running gpg (gpgkeys.LoadClient); the OpenPGP work is done in-process (spa/gnupg), never by
// gpg per packet.
//
// The signer's passphrase is, in fwknop's order: a "key" option (KEY, KEY_BASE64, KEY_FILE,
// GPG_SIGNING_PW, GPG_SIGNING_PW_BASE64, --key-rijndael, -G), which fwknop keeps in the same
// place as a Rijndael key; none with --gpg-agent or --gpg-no-signing-pw; the line read by
// --stdin/--fd; else the terminal (Env.Passphrase), which sesame asks only when the key is
// protected.
//
// --gpg-agent: gpg-agent keeps passphrases but never hands out an unprotected key (gpg
// exports secret keys protected by their passphrase), so sesame cannot sign through it. With
// --gpg-agent a key without passphrase works; a protected one is refused with
// ErrAgentUnsupported, naming the alternatives (drop --gpg-agent to be asked, or
// GPG_SIGNING_PW_BASE64 in the rc stanza).

// ErrAgentUnsupported: --gpg-agent with a passphrase-protected signer key.
var ErrAgentUnsupported = errors.New("sesame cannot sign through gpg-agent")

// GnuPGPacket describes the OpenPGP side of a GnuPG-mode packet.
type GnuPGPacket struct {
	Recipient      string // as given (--gpg-recipient-key)
	Signer         string // as given (--gpg-signer-key); "" for an unsigned packet
	RecipientKeyID uint64 // the key the session key is encrypted to
	HomeDir        string // the GnuPG home the keys came from
	Exe            string // the gpg that read them
}

// KeyWanted reports whether --stdin/--fd would give the key no other option gives: the
// Rijndael key, or in GnuPG mode the signer's passphrase (not with --gpg-agent or
// --gpg-no-signing-pw, nor without a signer).
func (o *Options) KeyWanted() bool {
	if o.KeySet() {
		return false
	}
	return !o.UseGPG || o.GPGSigner != "" && !o.GPGAgent && !o.GPGNoSigningPW
}

// checkGnuPG refuses GnuPG settings fwknop refuses.
func (o *Options) checkGnuPG() error {
	if o.Mode == spa.Asymmetric && !o.UseGPG {
		return fmt.Errorf("%w: -M/ENCRYPTION_MODE asymmetric is GnuPG mode: give -g with --gpg-recipient-key", ErrBadOption)
	}
	if o.UseGPG && o.GPGRecipient == "" {
		return fmt.Errorf("%w: GnuPG mode (-g, USE_GPG) needs --gpg-recipient-key (GPG_RECIPIENT): the server's key", ErrNoKey)
	}
	return nil
}

// givenPassphrase returns the signer's passphrase from the key options, if one is given.
func (o *Options) givenPassphrase(warn *[]string) (string, bool, error) {
	switch {
	case o.Key != "":
		return o.Key, true, nil
	case o.KeyBase64 != "":
		b, err := spa.DecodeKey(o.KeyBase64, true)
		if err != nil {
			return "", false, fmt.Errorf("%w: --key-base64-rijndael/KEY_BASE64 is not base64", ErrBadOption)
		}
		return string(b), true, nil
	case o.KeyFile != "":
		s, err := rcfile.LookupKey(o.KeyFile, o.Server)
		if err != nil {
			return "", false, fmt.Errorf("%w: -G: %v", ErrNoKey, err)
		}
		keyFileMode(o.KeyFile, warn)
		return s, true, nil
	case o.GPGSigningPW != "":
		return o.GPGSigningPW, true, nil
	case o.GPGSigningPWBase64 != "":
		b, err := spa.DecodeKey(o.GPGSigningPWBase64, true)
		if err != nil {
			return "", false, fmt.Errorf("%w: GPG_SIGNING_PW_BASE64 is not base64", ErrBadOption)
		}
		return string(b), true, nil
	}
	return "", false, nil
}

// loadGnuPG reads the recipient's and the signer's keys, getting the signer's passphrase as
// the comment at the top of this file says.
func (o *Options) loadGnuPG(ctx context.Context, env Env, warn *[]string) (*gpgkeys.ClientKeys, string, error) {
	spec := gpgkeys.ClientSpec{HomeDir: o.GPGHomeDir, Exe: o.GPGExe, Recipient: o.GPGRecipient, Signer: o.GPGSigner}
	if o.GPGSigner == "" {
		k, err := env.GnuPG(ctx, spec)
		return k, "", wrapGnuPG(err)
	}
	pw, given, err := o.givenPassphrase(warn)
	if err != nil {
		return nil, "", err
	}
	var refuse string
	switch {
	case given:
		spec.Passphrase = pw
	case o.GPGAgent:
		refuse = "agent"
	case o.GPGNoSigningPW:
		refuse = "nopw"
	case env.StdinKey != "":
		spec.Passphrase = env.StdinKey
	}
	k, err := env.GnuPG(ctx, spec)
	if !errors.Is(err, gpgkeys.ErrNeedPassphrase) {
		return k, spec.Passphrase, wrapGnuPG(err)
	}
	switch {
	case refuse == "agent":
		return nil, "", fmt.Errorf("%w: --gpg-agent/USE_GPG_AGENT: signer key %s is passphrase-protected, and sesame reads keys in-process: "+
			"drop --gpg-agent to be asked for the passphrase, or set GPG_SIGNING_PW_BASE64 in the rc stanza", ErrAgentUnsupported, o.GPGSigner)
	case refuse == "nopw":
		return nil, "", fmt.Errorf("%w: --gpg-no-signing-pw/GPG_NO_SIGNING_PW, but signer key %s is passphrase-protected: "+
			"drop it to be asked for the passphrase, or give it with --stdin or GPG_SIGNING_PW_BASE64", ErrNoKey, o.GPGSigner)
	case env.Passphrase == nil:
		return nil, "", fmt.Errorf("%w: signer key %s is passphrase-protected and there is no terminal to ask on: "+
			"give the passphrase with --stdin or --fd, or GPG_SIGNING_PW_BASE64 in the rc stanza", ErrNoKey, o.GPGSigner)
	}
	if spec.Passphrase, err = env.Passphrase("Enter passphrase for signing: "); err != nil {
		return nil, "", fmt.Errorf("%w: signer key %s is passphrase-protected, and asking for it failed (%v): "+
			"give the passphrase with --stdin or --fd, or GPG_SIGNING_PW_BASE64 in the rc stanza", ErrNoKey, o.GPGSigner, err)
	}
	k, err = env.GnuPG(ctx, spec)
	return k, spec.Passphrase, wrapGnuPG(err)
}

// wrapGnuPG turns passphrase errors into ErrNoKey (the passphrase is the GnuPG "key").
func wrapGnuPG(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gpgkeys.ErrNeedPassphrase), errors.Is(err, gpgkeys.ErrBadPassphrase):
		return fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	return fmt.Errorf("GnuPG keys: %w", err)
}

// encodeGnuPG builds the wire string of a GnuPG-mode packet for m (the access fields are
// already set) and fills p.
func (o *Options) encodeGnuPG(ctx context.Context, m *spa.Message, keys spa.Keys, env Env, p *Packet) error {
	k, pw, err := o.loadGnuPG(ctx, env, &p.Warnings)
	if err != nil {
		return err
	}
	if pw != "" && keys.HMACKey != nil && pw == string(keys.HMACKey) {
		return fmt.Errorf("%w: the signing passphrase and the HMAC key are identical; fwknop refuses that, use two keys", ErrBadOption)
	}
	wire, err := gnupg.Encode(m, keys, k.Recipient, k.Signer, env.Rand, env.Now)
	if err != nil {
		return fmt.Errorf("build GnuPG SPA packet: %w", err)
	}
	info := &GnuPGPacket{Recipient: o.GPGRecipient, Signer: o.GPGSigner, HomeDir: k.HomeDir, Exe: o.GPGExe}
	if info.Exe == "" {
		info.Exe = "gpg"
	}
	if ek, ok := k.Recipient.EncryptionKey(env.Now()); ok {
		info.RecipientKeyID = ek.PublicKey.KeyId
	}
	p.Wire, p.GnuPG = wire, info
	return nil
}

// SelfCheck decodes p's wire string as a receiver would (what -T checks). A Rijndael packet
// is decrypted with p.Keys. A GnuPG packet cannot be decrypted without the server's secret
// key, so its HMAC, its framing, its session key packet (addressed to the recipient's key)
// and its plaintext digest are checked instead.
func SelfCheck(p *Packet) (*spa.Message, error) {
	if p.GnuPG == nil {
		return spa.Decode([]byte(p.Wire), p.Keys)
	}
	m := p.Msg
	pt, err := spa.EncodePlaintext(&m)
	if err != nil {
		return nil, err
	}
	return spa.DecodeGnuPG([]byte(p.Wire), p.Keys, checkOpener{pt: pt, keyID: p.GnuPG.RecipientKeyID})
}

// checkOpener "opens" a message by checking that it starts with a public-key session key
// packet for keyID and returning the plaintext the client sealed.
type checkOpener struct {
	pt    string
	keyID uint64
}

func (c checkOpener) Open(msg []byte) ([]byte, error) {
	pk, err := packet.Read(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("session key packet: %w", err)
	}
	ek, ok := pk.(*packet.EncryptedKey)
	if !ok {
		return nil, fmt.Errorf("first packet is %T, not a public-key session key", pk)
	}
	if ek.KeyId != c.keyID {
		return nil, fmt.Errorf("session key for key %016X, not the recipient's %016X", ek.KeyId, c.keyID)
	}
	return []byte(c.pt), nil
}

// defaultGnuPG is Env.GnuPG's default.
func defaultGnuPG(ctx context.Context, s gpgkeys.ClientSpec) (*gpgkeys.ClientKeys, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return gpgkeys.LoadClient(ctx, s)
}

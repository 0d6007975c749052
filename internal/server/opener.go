package server

import (
	"context"
	"sync"
	"time"

	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// Opener opens the packets of one access stanza with the stanza's keys, built once per stanza
// by Reload so that a packet costs no key validation and no hmac.New. *spa.Decoder (Rijndael
// stanzas) and *spa.GnuPGDecoder (GnuPG stanzas) implement it. Implementations are safe for
// concurrent use.
type Opener interface {
	// VerifyCheckedHMAC checks only the HMAC of wire, which has passed spa.CheckWire (a no-op
	// without an HMAC key): the cheap test that lets Run's reader reject forged packets before
	// handing them to workers. Errors wrap the spa sentinels (spa.ErrHMACMismatch for a
	// forgery).
	VerifyCheckedHMAC(wire []byte) ([]byte, error)
	// Decode checks the HMAC, decrypts and decodes wire. Errors wrap the spa sentinels.
	Decode(wire []byte) (*spa.Message, error)
}

// GnuPGOpener is the Opener of a stanza's GnuPG packets (400 characters or more).
// *spa.GnuPGDecoder implements it.
type GnuPGOpener interface {
	Opener
	// HasHMAC reports whether the stanza has an HMAC key: then a forged packet costs one
	// HMAC; without one every packet costs a private-key decryption (see Budget).
	HasHMAC() bool
}

// NewSPAOpener is the default Config.NewOpener: spa.NewDecoder (fwknop 2.6's Rijndael
// packets). It fails for keys spa refuses (spa.Keys.Validate).
func NewSPAOpener(k spa.Keys) (Opener, error) { return spa.NewDecoder(k) }

// KeyLoader gets the GnuPG keys a stanza names (gpgkeys.Load runs gpg for them).
type KeyLoader func(gpgkeys.Spec) (*gpgkeys.Keys, error)

// NewGnuPGOpener builds the GnuPG opener of a stanza with GPG.Enabled: its keys from load,
// its signature policy from the GPG_* settings (spa/gnupg's Policy), its HMAC key from
// Keys, and now as the clock for key and signature expiry. Errors name the stanza's GnuPG
// home and key (gpgkeys) or the invalid setting.
func NewGnuPGOpener(st *fwconf.Stanza, load KeyLoader, now func() time.Time) (GnuPGOpener, error) {
	g := st.GPG
	keys, err := load(gpgkeys.Spec{HomeDir: g.HomeDir, Exe: g.Exe, DecryptID: g.DecryptID,
		Passphrase: g.DecryptPW, NoPassphrase: g.AllowNoPW})
	if err != nil {
		return nil, err
	}
	o, err := gnupg.NewOpener(gnupg.Keyring{Decrypt: keys.Secret, Signers: keys.Public, Valid: keys.Valid},
		gnupg.Policy{RequireSig: g.RequireSig, IgnoreVerifyError: g.IgnoreSigVerifyError,
			Fingerprints: g.FingerprintIDs, RemoteIDs: g.RemoteIDs}, now)
	if err != nil {
		return nil, err
	}
	return spa.NewGnuPGDecoder(spa.Keys{HMACKey: st.Keys.HMACKey, HMACType: st.Keys.HMACType}, o)
}

// keyCache loads each distinct Spec once (one Reload: stanzas sharing a GnuPG home and key
// run gpg once).
type keyCache struct {
	mu   sync.Mutex
	load KeyLoader
	m    map[gpgkeys.Spec]*gpgkeys.Keys
}

func newKeyCache(load KeyLoader) *keyCache {
	if load == nil {
		load = func(s gpgkeys.Spec) (*gpgkeys.Keys, error) { return gpgkeys.Load(context.Background(), s) }
	}
	return &keyCache{load: load, m: map[gpgkeys.Spec]*gpgkeys.Keys{}}
}

func (c *keyCache) get(s gpgkeys.Spec) (*gpgkeys.Keys, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.m[s]; ok {
		return k, nil
	}
	k, err := c.load(s)
	if err != nil {
		return nil, err
	}
	c.m[s] = k
	return k, nil
}

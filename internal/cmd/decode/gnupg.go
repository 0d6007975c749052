package decode

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// gnupgLen is the length from which fwknop treats a packet as GnuPG.
const gnupgLen = 400

// errGnuPGSetup marks failures to get at the keys (a usage error, exit 2).
var errGnuPGSetup = errors.New("GnuPG keys")

// decodeGnuPG opens a GnuPG packet with the keys of --gpg-home-dir. Signatures are enforced
// only when signers are listed.
func (o options) decodeGnuPG(wire []byte, k spa.Keys) (*spa.Message, *gnupg.Signer, error) {
	keys, err := gpgkeys.Load(context.Background(), gpgkeys.Spec{HomeDir: o.gpgHome, Exe: o.gpgExe, DecryptID: o.gpgID,
		Passphrase: o.gpgPW, NoPassphrase: o.gpgPW == ""})
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errGnuPGSetup, err)
	}
	p := gnupg.Policy{RequireSig: len(o.gpgRemoteIDs)+len(o.gpgFprs) > 0, RemoteIDs: o.gpgRemoteIDs, Fingerprints: o.gpgFprs}
	op, err := gnupg.NewOpener(gnupg.Keyring{Decrypt: keys.Secret, Signers: keys.Public, Valid: keys.Valid}, p, time.Now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errGnuPGSetup, err)
	}
	rec := &recorder{o: op}
	m, err := spa.DecodeGnuPG(wire, spa.Keys{HMACKey: k.HMACKey, HMACType: k.HMACType}, rec)
	return m, rec.sig, err
}

// recorder is an spa.Opener that keeps the signer of the message it opened.
type recorder struct {
	o   *gnupg.Opener
	sig *gnupg.Signer
}

func (r *recorder) Open(msg []byte) ([]byte, error) {
	pt, sig, err := r.o.OpenDetails(msg)
	r.sig = &sig
	return pt, err
}

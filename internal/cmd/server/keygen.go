package server

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"

	"github.com/sesame-spa/sesame/internal/keygen"
	"github.com/sesame-spa/sesame/spa"
)

// keyGen prints (or writes to o.keyGenFile, mode 600) a random KEY_BASE64 and HMAC_KEY_BASE64
// in fwknop's --key-gen format.
func keyGen(o *options, stdout io.Writer) error {
	hl := o.hmacKeyLen
	if hl == 0 {
		t, err := spa.ParseDigestType(o.hmacDigest)
		if err != nil {
			return fmt.Errorf("--hmac-digest-type %q: %w", o.hmacDigest, err)
		}
		hl = keygen.DefaultHMACKeyLen(t)
	}
	p, err := keygen.Generate(rand.Reader, o.keyLen, hl)
	if err != nil {
		return err
	}
	if o.keyGenFile != "" {
		if err := os.WriteFile(o.keyGenFile, []byte(p.String()), 0o600); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
		return nil
	}
	_, err = io.WriteString(stdout, p.String())
	return err
}

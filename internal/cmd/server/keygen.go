package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"strings"
)

// hmacKeyLens are the default HMAC key sizes per digest type, as fwknop's --key-gen prints them.
var hmacKeyLens = map[string]int{"md5": 16, "sha1": 20, "sha256": 64, "sha384": 128, "sha512": 128,
	"sha3_256": 64, "sha3_512": 128}

// keyGen prints (or writes to o.keyGenFile) a random KEY_BASE64 and HMAC_KEY_BASE64 in
// fwknop's --key-gen format.
func keyGen(o *options, stdout io.Writer) error {
	if o.keyLen < 1 || o.keyLen > 32 {
		return fmt.Errorf("--key-len %d: must be 1..32", o.keyLen)
	}
	hl := o.hmacKeyLen
	if hl == 0 {
		var ok bool
		if hl, ok = hmacKeyLens[strings.ToLower(o.hmacDigest)]; !ok {
			return fmt.Errorf("--hmac-digest-type %q: unknown", o.hmacDigest)
		}
	}
	if hl < 1 || hl > 128 {
		return fmt.Errorf("--hmac-key-len %d: must be 1..128", hl)
	}
	key, hkey := make([]byte, o.keyLen), make([]byte, hl)
	rand.Read(key)
	rand.Read(hkey)
	text := fmt.Sprintf("KEY_BASE64: %s\nHMAC_KEY_BASE64: %s\n",
		base64.StdEncoding.EncodeToString(key), base64.StdEncoding.EncodeToString(hkey))
	if o.keyGenFile != "" {
		if err := os.WriteFile(o.keyGenFile, []byte(text), 0o600); err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
		return nil
	}
	_, err := io.WriteString(stdout, text)
	return err
}

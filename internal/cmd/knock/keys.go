package knock

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sesame-spa/sesame/internal/keygen"
	"github.com/sesame-spa/sesame/internal/knock"
	"github.com/sesame-spa/sesame/internal/rcfile"
)

// maxKeyLine bounds what --stdin/--fd read.
const maxKeyLine = 4096

// readKey implements --stdin and --fd N: as fwknop, one line is read, and it is the key that
// no other option gives: the Rijndael key (in GnuPG mode the signing passphrase), else (with
// HMAC on) the HMAC key. code is -1 to go on.
func (c *cli) readKey(f *flags, o *knock.Options, env *knock.Env) int {
	src := "--stdin"
	if f.fs.Changed("fd") {
		src = fmt.Sprintf("--fd %d", f.fd)
	}
	needKey := o.KeyWanted() && c.env.StdinKey == ""
	needHMAC := o.HMACOn() && !o.HMACKeySet() && c.env.StdinHMACKey == ""
	if !needKey && !needHMAC {
		return -1 // every key is given elsewhere: nothing to read
	}
	var r *bufio.Reader
	if f.fs.Changed("fd") {
		fh := os.NewFile(uintptr(f.fd), "fd")
		if f.fd < 0 || fh == nil {
			return c.errorf("%s: not a file descriptor", src)
		}
		if _, err := fh.Stat(); err != nil {
			return c.errorf("%s: not an open file descriptor: %v", src, err)
		}
		defer fh.Close()
		r = bufio.NewReader(fh)
	} else {
		r = c.reader()
	}
	line, err := readLine(r)
	if err != nil {
		return c.errorf("%s: %v", src, err)
	}
	if line == "" {
		return c.errorf("%s: no key read; write the key on the first line", src)
	}
	if needKey {
		if needHMAC {
			what := "the Rijndael key"
			if o.UseGPG {
				what = "the signing passphrase"
			}
			return c.errorf("%s reads one key, %s; give the HMAC key with --key-hmac, --key-base64-hmac or --get-hmac-key", src, what)
		}
		env.StdinKey = line
	} else {
		env.StdinHMACKey = line
	}
	return -1
}

// readLine reads one line (at most maxKeyLine bytes) without its line ending.
func readLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for b.Len() <= maxKeyLine {
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) || c == '\n' {
			return strings.TrimSuffix(b.String(), "\r"), nil
		}
		if err != nil {
			return "", fmt.Errorf("reading the key: %w", err)
		}
		b.WriteByte(c)
	}
	return "", fmt.Errorf("the key line is longer than %d bytes", maxKeyLine)
}

// keyGen implements -k: print (or -K write) new keys; with --save-rc-stanza, store them in
// the stanza instead (as fwknop does).
func (c *cli) keyGen(f *flags, o *knock.Options, rc *rcfile.File) int {
	hmacLen := f.hmacKeyLen
	if !f.fs.Changed("hmac-key-len") {
		hmacLen = keygen.DefaultHMACKeyLen(o.HMAC)
	}
	rng := c.env.Rand
	if rng == nil {
		rng = rand.Reader
	}
	k, err := keygen.Generate(rng, f.keyLen, hmacLen)
	if err != nil {
		return c.errorf("%v", err)
	}
	if f.saveRC {
		o.Key, o.KeyFile, o.KeyBase64 = "", "", k.KeyBase64()
		o.HMACKey, o.HMACKeyFile, o.HMACKeyBase64 = "", "", k.HMACKeyBase64()
		o.UseHMAC = true
		if code := c.saveStanza(f, o, rc); code >= 0 {
			return code
		}
		return 0
	}
	text := k.String()
	if f.keyGenFile != "" {
		if err := os.WriteFile(f.keyGenFile, []byte(text), 0o600); err != nil {
			return c.errorf("-K: %v", err)
		}
		fmt.Fprintf(c.stdout, "[+] Wrote Rijndael and HMAC keys to: %s\n", f.keyGenFile)
		return 0
	}
	fmt.Fprint(c.stdout, text)
	return 0
}

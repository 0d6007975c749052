// Package keygen implements "sesame keygen": fwknop --key-gen compatible key generation.
//
//	sesame keygen [--key-len 32] [--hmac-digest-type sha256] [--hmac-key-len N] [--qr [--qr-invert]]
//
// It prints
//
//	KEY_BASE64: <key-len random bytes, standard base64 with '=' padding>
//	HMAC_KEY_BASE64: <hmac-key-len random bytes, same encoding>
//
// as fwknop's --key-gen does, ready for access.conf and .fwknoprc. With --qr it also prints
// the pair as a terminal QR code encoding "KEY_BASE64:<k> HMAC_KEY_BASE64:<h>", the text the
// Fwknop2 mobile app scans.
package keygen

import (
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/sesame-spa/sesame/internal/keygen"
	"io"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/spa"
)

// Main runs the subcommand with its arguments and returns the process exit code: 0, or 2 for
// usage errors.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(args, rand.Reader, stdout, stderr)
}

// flagSet defines keygen's flags (--help writes the usage to stderr) and returns the set and
// the flags' values.
func flagSet(stderr io.Writer) (fs *pflag.FlagSet, keyLen, hmacLen *int, hmacType *string, qr, invert *bool) {
	fs = pflag.NewFlagSet("sesame keygen", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	keyLen = fs.Int("key-len", keygen.DefaultKeyLen, "Rijndael key length in bytes (1..32)")
	hmacLen = fs.Int("hmac-key-len", 0, "HMAC key length in bytes (1..128; default by HMAC type)")
	hmacType = fs.String("hmac-digest-type", "sha256", "HMAC type: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512")
	qr = fs.Bool("qr", false, "also print the keys as a QR code for the Fwknop2 app")
	invert = fs.Bool("qr-invert", false, "draw the QR code for a light terminal background")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame keygen [flags]\n\nPrint a random KEY_BASE64 and HMAC_KEY_BASE64 pair (fwknop --key-gen format).\n\nflags:")
		fs.PrintDefaults()
	}
	return fs, keyLen, hmacLen, hmacType, qr, invert
}

func run(args []string, rng io.Reader, stdout, stderr io.Writer) int {
	fs, keyLen, hmacLen, hmacType, qr, invert := flagSet(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "sesame keygen: %v (see sesame keygen --help)\n", err)
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "sesame keygen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ht, err := spa.ParseDigestType(*hmacType)
	if err != nil {
		fmt.Fprintf(stderr, "sesame keygen: --hmac-digest-type: %v\n", err)
		return 2
	}
	if !fs.Changed("hmac-key-len") {
		*hmacLen = keygen.DefaultHMACKeyLen(ht)
	}
	p, err := keygen.Generate(rng, *keyLen, *hmacLen)
	if err != nil {
		fmt.Fprintf(stderr, "sesame keygen: %v\n", err)
		return 2
	}
	if _, err := io.WriteString(stdout, p.String()); err != nil {
		fmt.Fprintf(stderr, "sesame keygen: %v\n", err)
		return 1
	}
	if *qr {
		if err := WriteQR(stdout, p.QRText(), *invert); err != nil {
			fmt.Fprintf(stderr, "sesame keygen: %v\n", err)
			return 1
		}
	}
	return 0
}

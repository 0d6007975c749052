// Package decode implements "sesame decode": verify, decrypt and print one SPA packet.
//
//	sesame decode [--key-rijndael K | --key-base64-rijndael B64] [--key-hmac K |
//	              --key-base64-hmac B64] [--hmac-digest-type sha256] [-M cbc]
//	              [--gpg-home-dir DIR [--gpg-decrypt-id ID] [--gpg-decrypt-pw PW]
//	               [--gpg-remote-id IDS] [--gpg-fingerprint-id FPRS] [--gpg-exe PATH]]
//	              [--json] [FILE]
//
// The packet is read from FILE or stdin; surrounding whitespace is trimmed. The key flags
// are fwknop client's. Without an HMAC key no HMAC is expected. The fields are printed like
// fwknop's -v dump, or with --json as one JSON object (see Fields). A packet failing any
// check exits 1 with one line on stderr naming the check ("sesame decode: HMAC mismatch");
// usage errors exit 2.
//
// GnuPG packets (400 characters or more) are opened with --gpg-home-dir: the server's secret
// key (--gpg-decrypt-id, default any; --gpg-decrypt-pw for a protected key) and public
// keyring are read from that GnuPG home by running gpg once, as sesame server does
// (internal/gpgkeys). The signer is printed (GPG sig ID, fingerprint, verdict); the signature
// is enforced as by a server stanza only when --gpg-remote-id or --gpg-fingerprint-id lists
// signers. A Rijndael key is then optional.
package decode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// Exit codes.
const (
	exitOK      = 0
	exitInvalid = 1 // the packet failed a check
	exitUsage   = 2
)

// maxInput bounds what is read from the file or stdin; fwknop packets are below 1500 bytes.
const maxInput = 64 << 10

type options struct {
	key, keyB64, hmacKey, hmacKeyB64, hmacType, mode string
	json                                             bool

	gpgHome, gpgExe, gpgID, gpgPW string
	gpgRemoteIDs, gpgFprs         []string
}

// flagSet defines decode's flags on o; --help writes the usage to stderr.
func (o *options) flagSet(stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sesame decode", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.key, "key-rijndael", "", "Rijndael key as text")
	fs.StringVar(&o.keyB64, "key-base64-rijndael", "", "Rijndael key, base64")
	fs.StringVar(&o.hmacKey, "key-hmac", "", "HMAC key as text (none: no HMAC expected)")
	fs.StringVar(&o.hmacKeyB64, "key-base64-hmac", "", "HMAC key, base64")
	fs.StringVar(&o.hmacType, "hmac-digest-type", "sha256", "HMAC type: md5 sha1 sha256 sha384 sha512 sha3_256 sha3_512")
	fs.StringVarP(&o.mode, "encryption-mode", "M", "cbc", "encryption mode: cbc ecb cfb ofb ctr legacy")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the field dump")
	fs.StringVar(&o.gpgHome, "gpg-home-dir", "", "GnuPG home with the server's key: open GnuPG packets")
	fs.StringVar(&o.gpgExe, "gpg-exe", "", "gpg binary (default /usr/bin/gpg)")
	fs.StringVar(&o.gpgID, "gpg-decrypt-id", "", "the server's GnuPG key (default: any secret key of the home)")
	fs.StringVar(&o.gpgPW, "gpg-decrypt-pw", "", "its passphrase (none: a key without passphrase)")
	fs.StringSliceVar(&o.gpgRemoteIDs, "gpg-remote-id", nil, "require a signature by one of these short key IDs (GPG_REMOTE_ID)")
	fs.StringSliceVar(&o.gpgFprs, "gpg-fingerprint-id", nil, "require a signature by one of these fingerprints (GPG_FINGERPRINT_ID)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sesame decode [flags] [FILE]\n\nVerify, decrypt and print one SPA packet (from FILE or stdin).\n\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// Main runs the subcommand with its arguments and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := o.flagSet(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "sesame decode: %v (see sesame decode --help)\n", err)
		return exitUsage
	}
	keys, err := o.keys()
	if err != nil {
		fmt.Fprintf(stderr, "sesame decode: %v\n", err)
		return exitUsage
	}
	wire, err := readPacket(fs.Args(), stdin)
	if err != nil {
		fmt.Fprintf(stderr, "sesame decode: %v\n", err)
		return exitUsage
	}
	var m *spa.Message
	var sig *gnupg.Signer
	if len(wire) >= gnupgLen && o.gpgHome != "" {
		m, sig, err = o.decodeGnuPG(wire, keys)
		if errors.Is(err, errGnuPGSetup) {
			fmt.Fprintf(stderr, "sesame decode: %v\n", err)
			return exitUsage
		}
	} else {
		if len(keys.Key) == 0 {
			fmt.Fprintln(stderr, "sesame decode: a key is needed: --key-rijndael or --key-base64-rijndael (or --gpg-home-dir for GnuPG packets)")
			return exitUsage
		}
		m, err = spa.Decode(wire, keys)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame decode: %s\n", describe(err))
		return exitInvalid
	}
	f := fieldsOf(m, wire, keys)
	f.setGnuPG(sig)
	if o.json {
		err = f.writeJSON(stdout)
	} else {
		err = f.writeDump(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sesame decode: %v\n", err)
		return exitUsage
	}
	return exitOK
}

// keys builds spa.Keys from the flags.
func (o options) keys() (spa.Keys, error) {
	var k spa.Keys
	var err error
	switch {
	case o.key != "" && o.keyB64 != "":
		return k, errors.New("give --key-rijndael or --key-base64-rijndael, not both")
	case o.key != "":
		k.Key, err = spa.DecodeKey(o.key, false)
	case o.keyB64 != "":
		k.Key, err = spa.DecodeKey(o.keyB64, true)
	case o.gpgHome == "":
		return k, errors.New("a key is needed: --key-rijndael or --key-base64-rijndael (or --gpg-home-dir for GnuPG packets)")
	}
	if err != nil {
		return k, fmt.Errorf("the Rijndael key: %w", err)
	}
	switch {
	case o.hmacKey != "" && o.hmacKeyB64 != "":
		return k, errors.New("give --key-hmac or --key-base64-hmac, not both")
	case o.hmacKey != "":
		k.HMACKey, err = spa.DecodeKey(o.hmacKey, false)
	case o.hmacKeyB64 != "":
		k.HMACKey, err = spa.DecodeKey(o.hmacKeyB64, true)
	}
	if err != nil {
		return k, fmt.Errorf("the HMAC key: %w", err)
	}
	if k.HMACType, err = spa.ParseDigestType(o.hmacType); err != nil {
		return k, fmt.Errorf("--hmac-digest-type: %w", err)
	}
	if k.Mode, err = spa.ParseMode(o.mode); err != nil {
		return k, fmt.Errorf("--encryption-mode: %w", err)
	}
	if len(k.Key) == 0 {
		return k, nil // GnuPG only: the HMAC part is checked by the GnuPG decoder
	}
	if err := k.Validate(); err != nil {
		return k, err
	}
	return k, nil
}

// readPacket reads the packet from the single file argument, or stdin without one, and trims
// surrounding whitespace.
func readPacket(args []string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	switch len(args) {
	case 0:
		r = stdin
	case 1:
		f, err := os.Open(args[0])
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	default:
		return nil, fmt.Errorf("one packet file at most, got %d arguments", len(args))
	}
	b, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("read packet: %w", err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("input over %d bytes is not one SPA packet", maxInput)
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, errors.New("no packet on input")
	}
	return b, nil
}

// sentinels are the checks a decode failure can name, most specific first.
var sentinels = []error{
	spa.ErrTooShort, spa.ErrTooLong, spa.ErrPrefixPresent, spa.ErrNotBase64, spa.ErrGnuPG,
	spa.ErrHMACMissing, spa.ErrHMACMismatch, spa.ErrCipherLen, spa.ErrDecrypt, spa.ErrPlaintext,
	spa.ErrDigestType, spa.ErrDigestMismatch, spa.ErrFieldCount, spa.ErrRandom,
	spa.ErrUsernameTooBig, spa.ErrUsername, spa.ErrTimestamp, spa.ErrVersion, spa.ErrMsgType,
	spa.ErrMessage, spa.ErrNATAccess, spa.ErrServerAuth, spa.ErrClientTimeout, spa.ErrAccess,
	spa.ErrBadKey, spa.ErrHMACType, spa.ErrMode, spa.ErrUnsupported,
	spa.ErrNotGnuPG, spa.ErrNotSigned, spa.ErrBadSignature, spa.ErrSignerNotValid, spa.ErrSignerNotAllowed,
}

// describe names the failed check first, then any detail, on one line:
// "packet too short: packet of 100 bytes (min 140)".
func describe(err error) string {
	msg := strings.TrimPrefix(err.Error(), "spa: ")
	for _, s := range sentinels {
		if !errors.Is(err, s) {
			continue
		}
		detail := strings.TrimSuffix(strings.TrimSuffix(msg, s.Error()), ": ")
		if detail == "" || detail == msg {
			return oneLine(s.Error())
		}
		return oneLine(s.Error() + ": " + detail)
	}
	return oneLine(msg)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

package spa

// This file holds the package's types and sentinel errors; the functions are in the files
// named for what they do (wire.go, plaintext.go, cipher.go, hmac.go, ...).

import (
	"errors"
	"net/netip"
)

// MessageType is field 5 of the plaintext.
type MessageType int

// The seven message types fwknop 2.6 defines.
const (
	CommandMsg                     MessageType = 0
	AccessMsg                      MessageType = 1
	NATAccessMsg                   MessageType = 2
	ClientTimeoutAccessMsg         MessageType = 3
	ClientTimeoutNATAccessMsg      MessageType = 4
	LocalNATAccessMsg              MessageType = 5
	ClientTimeoutLocalNATAccessMsg MessageType = 6
)

// DigestType names a hash, used both for the inner digest and for the HMAC. The numbers are
// fwknop's.
type DigestType int

// Digest and HMAC types.
const (
	MD5      DigestType = 1
	SHA1     DigestType = 2
	SHA256   DigestType = 3
	SHA384   DigestType = 4
	SHA512   DigestType = 5
	SHA3_256 DigestType = 6
	SHA3_512 DigestType = 7
)

// Mode is the AES mode of a stanza or client. The numbers are fwknop's.
type Mode int

// Encryption modes. PCBC is defined by fwknop but refused; Asymmetric is GnuPG.
const (
	ECB        Mode = 1
	CBC        Mode = 2
	CFB        Mode = 3
	PCBC       Mode = 4
	OFB        Mode = 5
	CTR        Mode = 6
	Asymmetric Mode = 7
	Legacy     Mode = 8
)

// Message is one decoded SPA plaintext. Optional text fields are "" when absent.
type Message struct {
	Random        string // 16 ASCII digits; Encode fills it when empty
	Username      string
	Timestamp     int64  // Unix seconds, 64-bit on our side
	Version       string // "3.0.0" when empty on encode
	Type          MessageType
	Message       string // access "ip,proto/port[,...]" or command "ip,text"
	NATAccess     string // "host,port" for types 2, 4, 5, 6
	ServerAuth    string
	ClientTimeout uint32     // types 3, 4, 6 only; 0 = absent
	DigestType    DigestType // inner digest; SHA256 when zero on encode
	Digest        string     // unpadded base64 digest (set by Encode and Decode)
}

// Keys are what one side knows: the Rijndael passphrase and, optionally, an HMAC key.
type Keys struct {
	Key      []byte     // 1..32 bytes
	HMACKey  []byte     // nil: no HMAC on the wire
	HMACType DigestType // SHA256 when zero
	Mode     Mode       // CBC when zero
}

// Access is a parsed access message ("10.0.0.2,tcp/22,udp/53"). AllowIP is the zero Addr for
// "0.0.0.0" (use the packet's source). sesame also accepts IPv6 allow-IPs.
type Access struct {
	AllowIP netip.Addr
	Ports   []ProtoPort
}

// ProtoPort is one "proto/port" pair; Proto is "tcp" or "udp" (lower case).
type ProtoPort struct {
	Proto string
	Port  uint16
}

// Sentinel errors callers branch on. Every decode failure wraps exactly one sentinel, and its
// Error() text names the check (sesame decode prints it, the server logs it).
var (
	ErrTooShort       = errors.New("packet too short")
	ErrTooLong        = errors.New("packet too long")
	ErrPrefixPresent  = errors.New("packet starts with a prefix the client strips (U2FsdGVkX1, or hQ on 400+ characters)")
	ErrNotBase64      = errors.New("packet is not base64")
	ErrGnuPG          = errors.New("packet of 400 or more characters is GnuPG, not Rijndael")
	ErrHMACMissing    = errors.New("HMAC expected but packet too short to hold one")
	ErrHMACMismatch   = errors.New("HMAC mismatch")
	ErrDecrypt        = errors.New("decryption failed")
	ErrDigestType     = errors.New("invalid digest type")
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrUsernameTooBig = errors.New("username too long")
	ErrBadKey         = errors.New("invalid key")
	ErrUnsupported    = errors.New("not supported")

	// Added by the spa implementation (one sentinel per decoder check).
	ErrHMACType      = errors.New("invalid HMAC type")
	ErrMode          = errors.New("invalid encryption mode")
	ErrCipherLen     = errors.New("ciphertext length is not a multiple of the AES block size")
	ErrPlaintext     = errors.New("invalid plaintext length or non-printable plaintext")
	ErrFieldCount    = errors.New("wrong number of fields")
	ErrRandom        = errors.New("invalid random value")
	ErrUsername      = errors.New("invalid username")
	ErrTimestamp     = errors.New("invalid timestamp")
	ErrVersion       = errors.New("invalid version")
	ErrMsgType       = errors.New("invalid message type")
	ErrMessage       = errors.New("invalid access or command message")
	ErrNATAccess     = errors.New("invalid NAT access")
	ErrServerAuth    = errors.New("invalid server auth")
	ErrClientTimeout = errors.New("invalid client timeout")
	ErrAccess        = errors.New("invalid access message")
)

package spa

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"
)

// DefaultVersion is the protocol version string libfko 2.6 writes.
const DefaultVersion = "3.0.0"

// maxTimestamp is the largest value that fits the 12-character timestamp field.
const maxTimestamp = 999_999_999_999

// maxColons is how far libfko counts ':' separators (MAX_SPA_FIELDS + 2).
const maxColons = 11

// EncodePlaintext validates m, normalises it the way libfko does and returns the plaintext
// that gets encrypted: the encoded fields, ':', and the digest. It fills m.Version
// ("3.0.0") and m.DigestType (SHA256) when they are zero and always sets m.Digest. m.Random
// must already hold 16 digits (Encode fills it). Normalisation: a NAT access string on a
// non-NAT type makes it type 2 (or 4); a client timeout turns types 1/2/5 into 3/4/6, a zero
// timeout turns 3/4/6 back into 1/2/5, and a command message drops its timeout.
func EncodePlaintext(m *Message) (string, error) {
	enc, err := encodeFields(m)
	if err != nil {
		return "", err
	}
	m.Digest = m.DigestType.digestB64([]byte(enc))
	pt := enc + ":" + m.Digest
	if len(pt) >= maxEncoded {
		return "", fmt.Errorf("spa: plaintext of %d bytes: %w", len(pt), ErrPlaintext)
	}
	return pt, nil
}

func encodeFields(m *Message) (string, error) {
	if err := normalize(m); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(m.Random)
	b.WriteByte(':')
	b.WriteString(b64.EncodeToString([]byte(m.Username)))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(m.Timestamp, 10))
	b.WriteByte(':')
	b.WriteString(m.Version)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(int(m.Type)))
	b.WriteByte(':')
	b.WriteString(b64.EncodeToString([]byte(m.Message)))
	if m.NATAccess != "" {
		b.WriteByte(':')
		b.WriteString(b64.EncodeToString([]byte(m.NATAccess)))
	}
	if m.ServerAuth != "" {
		b.WriteByte(':')
		b.WriteString(b64.EncodeToString([]byte(m.ServerAuth)))
	}
	if m.ClientTimeout > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(m.ClientTimeout), 10))
	}
	enc := b.String()
	if len(enc) < minEncoded || len(enc) >= maxEncoded {
		return "", fmt.Errorf("spa: encoded data of %d bytes: %w", len(enc), ErrPlaintext)
	}
	return enc, nil
}

// normalize fills defaults, adjusts the type like libfko and validates every field with the
// limits the decoder enforces, so that whatever encodes also decodes.
func normalize(m *Message) error {
	if m.DigestType == 0 {
		m.DigestType = SHA256
	}
	if !m.DigestType.valid() {
		return fmt.Errorf("spa: digest type %d: %w", int(m.DigestType), ErrDigestType)
	}
	if m.Version == "" {
		m.Version = DefaultVersion
	}
	if len(m.Version) > maxVersionLen || !printableNoColon(m.Version) {
		return fmt.Errorf("spa: version %q: %w", m.Version, ErrVersion)
	}
	if len(m.Random) != randLen || !allDigits([]byte(m.Random)) {
		return fmt.Errorf("spa: random value %q: %w", m.Random, ErrRandom)
	}
	if len(m.Username) > maxUsername {
		return fmt.Errorf("spa: username of %d bytes (max %d): %w", len(m.Username), maxUsername, ErrUsernameTooBig)
	}
	if !validUsername([]byte(m.Username)) {
		return fmt.Errorf("spa: username %q: %w", m.Username, ErrUsername)
	}
	if m.Timestamp < 0 || m.Timestamp > maxTimestamp {
		return fmt.Errorf("spa: timestamp %d: %w", m.Timestamp, ErrTimestamp)
	}
	if !m.Type.valid() {
		return fmt.Errorf("spa: message type %d: %w", int(m.Type), ErrMsgType)
	}
	if m.ClientTimeout > maxClientTO {
		return fmt.Errorf("spa: client timeout %d (max %d): %w", m.ClientTimeout, maxClientTO, ErrClientTimeout)
	}
	if m.NATAccess != "" && !m.Type.HasNAT() {
		if m.ClientTimeout > 0 {
			m.Type = ClientTimeoutNATAccessMsg
		} else {
			m.Type = NATAccessMsg
		}
	}
	m.Type = m.Type.withTimeout(m.ClientTimeout > 0)
	if m.Type == CommandMsg {
		m.ClientTimeout = 0
	}
	if err := checkMessage(m.Type, m.Message); err != nil {
		return err
	}
	if m.Type.HasNAT() {
		if m.NATAccess == "" || b64.EncodedLen(len(m.NATAccess)) > maxFieldB64 ||
			strings.IndexByte(m.NATAccess, 0) >= 0 || !validNATAccess(m.NATAccess) {
			return fmt.Errorf("spa: NAT access %q: %w", m.NATAccess, ErrNATAccess)
		}
	}
	if b64.EncodedLen(len(m.ServerAuth)) > maxFieldB64 || strings.IndexByte(m.ServerAuth, 0) >= 0 {
		return fmt.Errorf("spa: server auth of %d bytes: %w", len(m.ServerAuth), ErrServerAuth)
	}
	return nil
}

// withTimeout maps a type to its client-timeout variant (or back), as libfko does.
func (t MessageType) withTimeout(on bool) MessageType {
	pairs := [...][2]MessageType{
		{AccessMsg, ClientTimeoutAccessMsg},
		{NATAccessMsg, ClientTimeoutNATAccessMsg},
		{LocalNATAccessMsg, ClientTimeoutLocalNATAccessMsg},
	}
	for _, p := range pairs {
		if t == p[0] || t == p[1] {
			if on {
				return p[1]
			}
			return p[0]
		}
	}
	return t
}

// checkMessage validates the message field for type t (command or access rules) and that its
// base64 form fits the decoder's 256 characters.
func checkMessage(t MessageType, msg string) error {
	if b64.EncodedLen(len(msg)) > maxFieldB64 || strings.IndexByte(msg, 0) >= 0 {
		return fmt.Errorf("spa: message of %d bytes: %w", len(msg), ErrMessage)
	}
	if t == CommandMsg {
		if !validCommandMsg(msg) {
			return fmt.Errorf("spa: command message %q: %w", msg, ErrMessage)
		}
		return nil
	}
	if _, err := ParseAccess(msg); err != nil {
		return fmt.Errorf("spa: access message %q: %w", msg, ErrMessage)
	}
	return nil
}

func printableNoColon(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == ':' {
			return false
		}
	}
	return true
}

// DecodePlaintext decodes decrypted SPA data ("fields:digest") with libfko's checks in
// libfko's order: length 36..1499, printable ASCII only, at least 6 ':' separators, digest
// length → type, digest match (SHA-2 tried before SHA-3), then the fields in order. Each
// failure wraps one sentinel: ErrPlaintext, ErrFieldCount, ErrDigestType, ErrDigestMismatch,
// ErrRandom, ErrUsername, ErrUsernameTooBig, ErrTimestamp, ErrVersion, ErrMsgType,
// ErrMessage, ErrNATAccess, ErrServerAuth or ErrClientTimeout. Decoded text fields are cut at
// a NUL byte, as C strings are.
func DecodePlaintext(pt []byte) (*Message, error) {
	if len(pt) < minEncoded || len(pt) >= maxEncoded {
		return nil, fmt.Errorf("spa: plaintext of %d bytes: %w", len(pt), ErrPlaintext)
	}
	for _, c := range pt {
		if c < 0x20 || c > 0x7e {
			return nil, fmt.Errorf("spa: plaintext byte %#02x: %w", c, ErrPlaintext)
		}
	}
	n, last := countColons(pt)
	if n < 6 {
		return nil, fmt.Errorf("spa: %d field separators (need 6): %w", n, ErrFieldCount)
	}
	enc, digest := pt[:last], pt[last+1:]
	types := digestTypesForLen(len(digest))
	if types == nil {
		return nil, fmt.Errorf("spa: digest of %d characters: %w", len(digest), ErrDigestType)
	}
	m := &Message{}
	for _, d := range types {
		var buf [64]byte
		var want [88]byte
		sum := d.sum(buf[:0], enc)
		b64.Encode(want[:], sum)
		if subtle.ConstantTimeCompare(want[:len(digest)], digest) == 1 {
			m.DigestType = d
			break
		}
	}
	if m.DigestType == 0 {
		return nil, fmt.Errorf("spa: %w", ErrDigestMismatch)
	}
	m.Digest = string(digest)
	if err := decodeFields(m, enc); err != nil {
		return nil, err
	}
	return m, nil
}

// countColons counts ':' in b the way libfko does (it stops counting at maxColons) and
// returns the index of the last one counted.
func countColons(b []byte) (n, last int) {
	last = -1
	for i, c := range b {
		if c == ':' {
			n++
			last = i
			if n == maxColons {
				break
			}
		}
	}
	return n, last
}

// fieldReader walks the ':'-separated encoded data.
type fieldReader struct {
	rest []byte
	done bool // no bytes remain, not even an empty field
}

// next returns the bytes up to the next ':' (or the end) and moves past the separator.
func (r *fieldReader) next() []byte {
	if r.done {
		return nil
	}
	i := bytes.IndexByte(r.rest, ':')
	if i < 0 {
		f := r.rest
		r.rest, r.done = nil, true
		return f
	}
	f := r.rest[:i]
	r.rest = r.rest[i+1:]
	return f
}

func decodeFields(m *Message, enc []byte) error {
	r := fieldReader{rest: enc}

	f := r.next()
	// libfko keeps the first 16 characters of a longer field, but its post-decryption check
	// (16 digits, then ':') has already refused those; here the field must be 16 digits.
	if len(f) != randLen || !allDigits(f) {
		return fmt.Errorf("spa: random value %q: %w", f, ErrRandom)
	}
	m.Random = string(f)

	f = r.next()
	switch {
	case len(f) > maxUserB64:
		return fmt.Errorf("spa: base64 username of %d characters (max %d): %w", len(f), maxUserB64, ErrUsernameTooBig)
	case len(f) == 0:
		return fmt.Errorf("spa: empty username: %w", ErrUsername)
	}
	u, err := b64Decode(nil, f)
	if u = cString(u); err != nil || !validUsername(u) {
		return fmt.Errorf("spa: username %q: %w", f, ErrUsername)
	}
	m.Username = string(u)

	f = r.next()
	if len(f) == 0 || len(f) > maxTimestampLen || !allDigits(f) {
		return fmt.Errorf("spa: timestamp %q: %w", f, ErrTimestamp)
	}
	m.Timestamp, _ = strconv.ParseInt(string(f), 10, 64) // <= 12 digits cannot overflow

	f = r.next()
	if len(f) == 0 || len(f) > maxVersionLen {
		return fmt.Errorf("spa: version %q: %w", f, ErrVersion)
	}
	m.Version = string(f)

	typeStart := r.rest
	f = r.next()
	if len(f) == 0 || len(f) > maxTypeLen || !allDigits(f) {
		return fmt.Errorf("spa: message type %q: %w", f, ErrMsgType)
	}
	t, _ := strconv.Atoi(string(f))
	m.Type = MessageType(t)
	if !m.Type.valid() {
		return fmt.Errorf("spa: message type %d: %w", t, ErrMsgType)
	}
	if n, _ := countColons(typeStart); n > m.Type.maxColonsFromType() {
		return fmt.Errorf("spa: %d fields after the type for a %v: %w", n, m.Type, ErrFieldCount)
	}

	f = r.next()
	if len(f) == 0 || len(f) > maxFieldB64 {
		return fmt.Errorf("spa: message field of %d characters: %w", len(f), ErrMessage)
	}
	msg, err := b64Decode(nil, f)
	if err != nil {
		return fmt.Errorf("spa: message field: %w", ErrMessage)
	}
	m.Message = string(cString(msg))
	if m.Type == CommandMsg {
		if !validCommandMsg(m.Message) {
			return fmt.Errorf("spa: command message %q: %w", m.Message, ErrMessage)
		}
	} else if _, err := ParseAccess(m.Message); err != nil {
		return fmt.Errorf("spa: access message %q: %w", m.Message, ErrMessage)
	}

	if m.Type.HasNAT() {
		f = r.next()
		if len(f) == 0 || len(f) > maxFieldB64 {
			return fmt.Errorf("spa: NAT access field of %d characters: %w", len(f), ErrNATAccess)
		}
		nat, err := b64Decode(nil, f)
		if nat = cString(nat); err != nil || !validNATAccess(string(nat)) {
			return fmt.Errorf("spa: NAT access %q: %w", nat, ErrNATAccess)
		}
		m.NATAccess = string(nat)
	}

	rest := r.rest
	if r.done || len(rest) == 0 {
		rest = nil
	}
	if len(rest) > maxFieldB64 {
		return fmt.Errorf("spa: trailing fields of %d characters: %w", len(rest), ErrServerAuth)
	}
	if !m.Type.HasTimeout() {
		if len(rest) > 0 {
			sa, err := b64Decode(nil, rest)
			if err != nil {
				return fmt.Errorf("spa: server auth: %w", ErrServerAuth)
			}
			m.ServerAuth = string(cString(sa))
		}
		return nil
	}
	if i := bytes.IndexByte(rest, ':'); i >= 0 {
		sa, err := b64Decode(nil, rest[:i])
		if err != nil {
			return fmt.Errorf("spa: server auth: %w", ErrServerAuth)
		}
		m.ServerAuth = string(cString(sa))
		rest = rest[i+1:]
	}
	if len(rest) == 0 || !allDigits(rest) {
		return fmt.Errorf("spa: client timeout %q: %w", rest, ErrClientTimeout)
	}
	to, err := strconv.ParseUint(string(rest), 10, 32)
	if err != nil || to > maxClientTO {
		return fmt.Errorf("spa: client timeout %q: %w", rest, ErrClientTimeout)
	}
	m.ClientTimeout = uint32(to)
	return nil
}

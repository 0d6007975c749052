package fleet

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sesame-spa/sesame/internal/ledger"
)

// Message kinds (the second field of a message).
const (
	kindGrant     = 'g'
	kindRevoke    = 'r'
	kindRevokeAll = 'a'
)

const (
	version    = "S1"
	maxMessage = 16 << 10 // bytes of one message's text
	maxKeys    = 256      // keys in one revoke message
	maxMillis  = 1 << 53  // Unix milliseconds beyond this are refused (Lua numbers are doubles)
	idLen      = 32       // hex digits of a message id (16 random bytes)
	macLen     = 43       // unpadded base64url of an HMAC-SHA256
)

// message is one fan-out message (see the package doc for its text form).
type message struct {
	Kind   byte
	Sent   int64  // publisher's clock, Unix ms
	Origin string // publishing gateway
	ID     string // unique per message
	Grant  ledger.Entry
	Keys   []ledger.Key // kindRevoke
}

var (
	errMalformed = errors.New("malformed message")
	errForged    = errors.New("bad message authentication code (not made with the fleet key for this group)")
)

var mac64 = base64.RawURLEncoding.Strict()

// codec signs and opens messages of one group under the fleet's message key.
type codec struct {
	key   []byte // derived message key
	group string
}

// mac returns the MAC of body: HMAC-SHA256(key, "sesame fleet v1" 0x00 group 0x00 body).
func (c *codec) mac(body string) []byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte("sesame fleet v1\x00"))
	h.Write([]byte(c.group))
	h.Write([]byte{0})
	h.Write([]byte(body))
	return h.Sum(nil)
}

// seal returns m's text with its MAC appended.
func (c *codec) seal(m *message) string {
	body := m.body()
	return body + " " + mac64.EncodeToString(c.mac(body))
}

// open authenticates text and parses it. The MAC is checked before any field is parsed.
// Errors wrap errForged or errMalformed.
func (c *codec) open(text string) (message, error) {
	if len(text) > maxMessage {
		return message{}, fmt.Errorf("%w: %d bytes", errMalformed, len(text))
	}
	i := strings.LastIndexByte(text, ' ')
	if i < 0 || len(text)-i-1 != macLen {
		return message{}, fmt.Errorf("%w: no MAC", errMalformed)
	}
	got, err := mac64.DecodeString(text[i+1:])
	if err != nil {
		return message{}, fmt.Errorf("%w: MAC: %v", errMalformed, err)
	}
	body := text[:i]
	if !hmac.Equal(got, c.mac(body)) {
		return message{}, errForged
	}
	return parseBody(body)
}

// body is m's text without the MAC.
func (m *message) body() string {
	b := make([]byte, 0, 96+48*len(m.Keys))
	b = append(b, version...)
	b = append(b, ' ', m.Kind, ' ')
	b = strconv.AppendInt(b, m.Sent, 10)
	b = append(b, ' ')
	b = append(b, m.Origin...)
	b = append(b, ' ')
	b = append(b, m.ID...)
	switch m.Kind {
	case kindGrant:
		g := m.Grant
		b = append(b, ' ')
		b = strconv.AppendInt(b, g.Expires.UnixMilli(), 10)
		b = append(b, ' ')
		b = g.Src.AppendTo(b)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(g.Proto), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(g.Port), 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(g.Stanza), 10)
	case kindRevoke:
		b = append(b, ' ')
		for i, k := range m.Keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendKey(b, k)
		}
	}
	return string(b)
}

// appendKey appends k as src/proto/port (also the live hash's field name).
func appendKey(b []byte, k ledger.Key) []byte {
	b = k.Src.AppendTo(b)
	b = append(b, '/')
	b = strconv.AppendUint(b, uint64(k.Proto), 10)
	b = append(b, '/')
	return strconv.AppendUint(b, uint64(k.Port), 10)
}

func keyString(k ledger.Key) string { return string(appendKey(nil, k)) }

// parseBody parses a message body (the text without its MAC). It accepts only the canonical
// form that body produces, so parse and body are inverses.
func parseBody(s string) (message, error) {
	bad := func(what string) (message, error) { return message{}, fmt.Errorf("%w: %s", errMalformed, what) }
	f := strings.Split(s, " ")
	if len(f) < 5 || f[0] != version || len(f[1]) != 1 {
		return bad("header")
	}
	var m message
	m.Kind = f[1][0]
	var ok bool
	if m.Sent, ok = millis(f[2]); !ok {
		return bad("sent time")
	}
	if m.Origin = f[3]; !validName(m.Origin) {
		return bad("origin")
	}
	if m.ID = f[4]; !validID(m.ID) {
		return bad("id")
	}
	switch m.Kind {
	case kindGrant:
		if len(f) != 10 {
			return bad("grant fields")
		}
		exp, ok := millis(f[5])
		if !ok {
			return bad("expiry")
		}
		k, ok := parseKeyFields(f[6], f[7], f[8])
		if !ok {
			return bad("grant key")
		}
		st, ok := decimal(f[9], 1<<31-1)
		if !ok {
			return bad("stanza")
		}
		m.Grant = ledger.Entry{Key: k, Expires: unixMilli(exp), Stanza: int(st)}
	case kindRevoke:
		if len(f) != 6 {
			return bad("revoke fields")
		}
		ks := strings.Split(f[5], ",")
		if len(ks) > maxKeys {
			return bad("too many keys")
		}
		m.Keys = make([]ledger.Key, len(ks))
		for i, t := range ks {
			k, ok := parseKey(t)
			if !ok {
				return bad("revoke key")
			}
			m.Keys[i] = k
		}
	case kindRevokeAll:
		if len(f) != 5 {
			return bad("revoke-all fields")
		}
	default:
		return bad("kind")
	}
	return m, nil
}

// parseKey parses src/proto/port.
func parseKey(s string) (ledger.Key, bool) {
	src, rest, ok1 := strings.Cut(s, "/")
	proto, port, ok2 := strings.Cut(rest, "/")
	if !ok1 || !ok2 {
		return ledger.Key{}, false
	}
	return parseKeyFields(src, proto, port)
}

func parseKeyFields(src, proto, port string) (ledger.Key, bool) {
	a, err := netip.ParseAddr(src)
	if err != nil || a.Zone() != "" || a.Is4In6() || a.String() != src {
		return ledger.Key{}, false
	}
	pr, ok1 := decimal(proto, 255)
	po, ok2 := decimal(port, 65535)
	if !ok1 || !ok2 || pr == 0 || po == 0 {
		return ledger.Key{}, false
	}
	return ledger.Key{Src: a, Proto: uint8(pr), Port: uint16(po)}, true
}

// decimal parses a canonical decimal (no sign, no leading zero) of at most max.
func decimal(s string, max uint64) (uint64, bool) {
	if s == "" || len(s) > 20 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v <= max
}

func millis(s string) (int64, bool) {
	v, ok := decimal(s, maxMillis)
	return int64(v), ok && v > 0
}

// validName reports whether s may be a group or gateway name: 1 to 64 of [A-Za-z0-9._-].
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

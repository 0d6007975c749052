package spa

import (
	"net/netip"
	"strings"
)

// Field limits from libfko (fko_limits.h), in bytes or characters.
const (
	randLen         = 16   // random value digits
	maxUserB64      = 64   // base64 username on decode
	maxUsername     = 48   // raw username whose base64 fits maxUserB64
	maxTimestampLen = 12   // timestamp digits
	maxVersionLen   = 8    // version text
	maxTypeLen      = 2    // message type digits
	maxFieldB64     = 256  // message / NAT / server auth / timeout text on decode
	maxMessage      = 256  // access or command message: len < maxMessage
	maxCmdLen       = 1400 // command message: len < maxCmdLen
	maxNATAccess    = 128  // NAT access on encode: len < maxNATAccess
	maxServerAuth   = 64   // server auth on encode: len < maxServerAuth
	maxHostLen      = 70   // NAT host part
	maxClientTO     = 65536
	minEncoded      = 36   // encoded / plaintext / ciphertext text: minEncoded <= n
	maxEncoded      = 1500 // ... n < maxEncoded
	minWire         = 140  // fwknopd drops shorter payloads
	maxWire         = 1500 // fwknopd drops longer payloads
	gnupgLen        = 400  // payloads this long or longer are GnuPG
	maxKeyLen       = 32   // Rijndael passphrase
	maxHMACKeyLen   = 136  // libfko's HMAC key limit (SHA3-256 block size)
	b64Prefix       = "U2FsdGVkX1"
	gnupgPrefix     = "hQ"
)

// validUsername applies libfko's username rule: non-empty; every byte alphanumeric, or
// printable ASCII other than " / \ [ ] : ; | = , + * ? < >.
func validUsername(u []byte) bool {
	if len(u) == 0 {
		return false
	}
	for _, c := range u {
		if isAlnum(c) {
			continue
		}
		if c < 0x20 || c > 0x7e || strings.IndexByte(`"/\[]:;|=,+*?<>`, c) >= 0 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s []byte) bool {
	for _, c := range s {
		if !isDigit(c) {
			return false
		}
	}
	return len(s) > 0
}

// parseAllowIP checks the allow-IP that starts an access or command message (the text before
// the first comma). fwknop accepts dotted-quad IPv4 only; sesame also accepts IPv6. Unlike
// inet_aton, leading zeros (octal in C) are refused.
func parseAllowIP(s string) (netip.Addr, bool) {
	if strings.IndexByte(s, ':') >= 0 {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
			return netip.Addr{}, false
		}
		return a, true
	}
	if len(s) < 7 || len(s) > 15 {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, false
	}
	return a, true
}

// parsePort applies libfko's port rule to the digits before the next comma or the end:
// 1..5 digits, value 1..65535. It returns the port and the rest of s.
func parsePort(s string) (uint16, string, bool) {
	end := strings.IndexByte(s, ',')
	if end < 0 {
		end = len(s)
	}
	d := s[:end]
	if len(d) == 0 || len(d) > 5 || !allDigits([]byte(d)) {
		return 0, "", false
	}
	n := 0
	for i := 0; i < len(d); i++ {
		n = n*10 + int(d[i]-'0')
	}
	if n < 1 || n > 65535 {
		return 0, "", false
	}
	return uint16(n), s[end:], true
}

// validCommandMsg: allow-IP, a comma, and at least one more byte; shorter than 1400 bytes
// (the decoder's 256-character base64 limit is the stricter bound in practice).
func validCommandMsg(msg string) bool {
	if len(msg) >= maxCmdLen {
		return false
	}
	comma := strings.IndexByte(msg, ',')
	if comma < 0 {
		return false
	}
	if _, ok := parseAllowIP(msg[:comma]); !ok {
		return false
	}
	return comma+1 < len(msg)
}

// validNATAccess applies libfko's NAT access rule: "host,port", exactly one comma, host of at
// most 70 bytes without any of ` /?"'\`, a valid port, no trailing comma, shorter than 256.
func validNATAccess(s string) bool {
	if len(s) >= maxMessage || strings.Count(s, ",") != 1 {
		return false
	}
	comma := strings.IndexByte(s, ',')
	host := s[:comma]
	if len(host) > maxHostLen || strings.ContainsAny(host, " /?\"'\\") {
		return false
	}
	_, rest, ok := parsePort(s[comma+1:])
	return ok && rest == ""
}

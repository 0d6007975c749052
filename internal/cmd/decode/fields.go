package decode

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// Fields is the --json output: exactly these keys. nat_access and server_auth are null when
// absent; client_timeout is 0 when absent.
type Fields struct {
	RandomValue   string  `json:"random_value"`
	Username      string  `json:"username"`
	Timestamp     int64   `json:"timestamp"`
	Version       string  `json:"version"`
	MessageType   int     `json:"message_type"`
	Message       string  `json:"message"`
	NATAccess     *string `json:"nat_access"`
	ServerAuth    *string `json:"server_auth"`
	ClientTimeout uint32  `json:"client_timeout"`
	DigestType    string  `json:"digest_type"` // MD5 SHA1 SHA256 SHA384 SHA512 SHA3_256 SHA3_512
	Digest        string  `json:"digest"`
	ReplayDigest  string  `json:"replay_digest"`

	// GnuPG packets only.
	GnuPG *GnuPGFields `json:"gnupg,omitempty"`

	// For the dump only.
	msg     *spa.Message
	keys    spa.Keys
	hmac    string // the HMAC characters at the end of the wire, "" without HMAC
	wire    string
	encoded string // the plaintext before ":digest", "" if it cannot be rebuilt
}

func fieldsOf(m *spa.Message, wire []byte, k spa.Keys) Fields {
	f := Fields{
		RandomValue: m.Random, Username: m.Username, Timestamp: m.Timestamp, Version: m.Version,
		MessageType: int(m.Type), Message: m.Message, ClientTimeout: m.ClientTimeout,
		DigestType: m.DigestType.String(), Digest: m.Digest, ReplayDigest: spa.ReplayDigest(wire),
		msg: m, keys: k, wire: string(wire),
	}
	if m.NATAccess != "" {
		f.NATAccess = &m.NATAccess
	}
	if m.ServerAuth != "" {
		f.ServerAuth = &m.ServerAuth
	}
	if len(k.HMACKey) > 0 {
		if ct, err := spa.VerifyHMAC(wire, k); err == nil {
			f.hmac = string(wire[len(ct):])
		}
	}
	// Rebuild the encoded text from the fields; shown only when it hashes to the received
	// digest, that is when it is the text the sender encoded (fwknop accepts variants, such
	// as base64 fields with '=' padding, that re-encode differently).
	cp := *m
	if pt, err := spa.EncodePlaintext(&cp); err == nil && strings.HasSuffix(pt, ":"+m.Digest) {
		f.encoded = strings.TrimSuffix(pt, ":"+m.Digest)
	}
	return f
}

// GnuPGFields describe a GnuPG packet's signature.
type GnuPGFields struct {
	Signed         bool   `json:"signed"`
	SigID          string `json:"sig_id"`          // fwknop's GPG sig ID: last 8 hex digits of the signing key
	SigFingerprint string `json:"sig_fingerprint"` // signing key ("" if not in the keyring)
	Verified       bool   `json:"verified"`        // the signature verified with a key of the keyring
	Valid          bool   `json:"valid"`           // that key is valid in the keyring (lsigned)
}

func (f *Fields) setGnuPG(s *gnupg.Signer) {
	if s == nil {
		return
	}
	f.GnuPG = &GnuPGFields{Signed: s.Signed, SigID: s.ShortID(), SigFingerprint: s.Fingerprint, Verified: s.Verified, Valid: s.Valid}
}

func (f Fields) writeJSON(w io.Writer) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// writeDump prints the fields with fwknop's -v labels and layout, then the replay digest.
func (f Fields) writeDump(w io.Writer) error {
	null := func(s string) string {
		if s == "" {
			return "<NULL>"
		}
		return s
	}
	hmacType := "0 (None)"
	if len(f.keys.HMACKey) > 0 {
		ht := f.keys.HMACType
		if ht == 0 {
			ht = spa.SHA256
		}
		hmacType = fmt.Sprintf("%d (%v)", int(ht), ht)
	}
	mode := f.keys.Mode
	if mode == 0 {
		mode = spa.CBC
	}
	m := f.msg
	rows := []struct{ label, value string }{
		{"Random Value", m.Random},
		{"Username", m.Username},
		{"Timestamp", fmt.Sprint(m.Timestamp)},
		{"FKO Version", m.Version},
		{"Message Type", fmt.Sprintf("%d (%v)", int(m.Type), m.Type)},
		{"Message String", m.Message},
		{"Nat Access", null(m.NATAccess)},
		{"Server Auth", null(m.ServerAuth)},
		{"Client Timeout", fmt.Sprint(m.ClientTimeout)},
		{"Digest Type", fmt.Sprintf("%d (%v)", int(m.DigestType), m.DigestType)},
		{"HMAC Type", hmacType},
		{"Encryption Type", "1 (Rijndael)"},
		{"Encryption Mode", fmt.Sprintf("%d (%v)", int(mode), mode)},
	}
	if g := f.GnuPG; g != nil {
		rows[len(rows)-2].value = "2 (GPG)"
		rows[len(rows)-1].value = "7 (Asymmetric)"
		rows = append(rows, []struct{ label, value string }{
			{"GPG sig ID", null(g.SigID)},
			{"GPG sig fpr", null(g.SigFingerprint)},
			{"GPG sig verified", map[bool]string{true: "Yes", false: "No"}[g.Verified]},
			{"GPG sig valid", map[bool]string{true: "Yes", false: "No"}[g.Valid]},
		}...)
	}
	rows = append(rows, []struct{ label, value string }{
		{"Encoded Data", null(f.encoded)},
		{"SPA Data Digest", m.Digest},
		{"HMAC", null(f.hmac)},
		{"Final SPA Data", f.wire},
		{"Replay Digest", f.ReplayDigest},
	}...)
	var b strings.Builder
	b.WriteString("SPA Field Values:\n=================\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%15s: %s\n", r.label, r.value)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

package knock

import (
	"fmt"
	"io"
	"strings"

	"github.com/sesame-spa/sesame/spa"
)

// Dump writes the packet's fields in the layout of fwknop's "SPA Field Values" block (what
// fwknop -v and -T print), so tools that read fwknop's output read sesame's.
func Dump(w io.Writer, p *Packet) error {
	m := &p.Msg
	null := func(s string) string {
		if s == "" {
			return "<NULL>"
		}
		return s
	}
	pt, err := spa.EncodePlaintext(&spa.Message{
		Random: m.Random, Username: m.Username, Timestamp: m.Timestamp, Version: m.Version,
		Type: m.Type, Message: m.Message, NATAccess: m.NATAccess, ServerAuth: m.ServerAuth,
		ClientTimeout: m.ClientTimeout, DigestType: m.DigestType,
	})
	if err != nil {
		return fmt.Errorf("dump: %w", err)
	}
	encoded := pt[:strings.LastIndexByte(pt, ':')]
	hmacType, hmacName, hmac := 0, "None", "<NULL>"
	if p.Keys.HMACKey != nil {
		t := p.Keys.HMACType
		if t == 0 {
			t = spa.SHA256
		}
		hmacType, hmacName = int(t), t.String()
		if n := hmacB64Len(t); n > 0 && n < len(p.Wire) {
			hmac = p.Wire[len(p.Wire)-n:]
		}
	}
	mode := p.Keys.Mode
	if mode == 0 {
		mode = spa.CBC
	}
	rows := []struct{ k, v string }{
		{"Random Value", m.Random},
		{"Username", m.Username},
		{"Timestamp", fmt.Sprint(m.Timestamp)},
		{"FKO Version", m.Version},
		{"Message Type", fmt.Sprintf("%d (%s)", int(m.Type), m.Type)},
		{"Message String", m.Message},
		{"Nat Access", null(m.NATAccess)},
		{"Server Auth", null(m.ServerAuth)},
		{"Client Timeout", fmt.Sprint(m.ClientTimeout)},
		{"Digest Type", fmt.Sprintf("%d (%s)", int(m.DigestType), m.DigestType)},
		{"HMAC Type", fmt.Sprintf("%d (%s)", hmacType, hmacName)},
		{"Encryption Type", "1 (Rijndael)"},
		{"Encryption Mode", fmt.Sprintf("%d (%s)", int(mode), mode)},
	}
	if g := p.GnuPG; g != nil {
		rows[len(rows)-2].v = "2 (GPG)"
		rows[len(rows)-1].v = fmt.Sprintf("%d (%s)", int(spa.Asymmetric), spa.Asymmetric)
		// The signature rows are what fwknop prints for a packet it built: nothing verified.
		rows = append(rows, []struct{ k, v string }{
			{"GPG signer", null(g.Signer)},
			{"GPG recipient", g.Recipient},
			{"GPG sig verify", "Yes"},
			{"GPG ignore sig", "No"},
			{"GPG sig ID", "<NULL>"},
			{"GPG sig fpr", "<NULL>"},
			{"GPG sig summary", "-1"},
			{"GPG sig status", "-1"},
			{"GPG home dir", g.HomeDir},
			{"GPG exe", g.Exe},
		}...)
	}
	rows = append(rows, []struct{ k, v string }{
		{"Encoded Data", encoded},
		{"SPA Data Digest", m.Digest},
		{"HMAC", hmac},
		{"Final SPA Data", p.Wire},
	}...)
	var b strings.Builder
	b.WriteString("\nSPA Field Values:\n=================\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%15s: %s\n", r.k, r.v)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// hmacB64Len is the unpadded base64 length of an HMAC of type t.
func hmacB64Len(t spa.DigestType) int {
	return map[spa.DigestType]int{spa.MD5: 22, spa.SHA1: 27, spa.SHA256: 43, spa.SHA384: 64,
		spa.SHA512: 86, spa.SHA3_256: 43, spa.SHA3_512: 86}[t]
}

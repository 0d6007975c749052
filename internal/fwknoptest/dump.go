package fwknoptest

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sesame-spa/sesame/spa"
)

// Dump is one "SPA Field Values" block as printed by "fwknop -v" and by fwknopd at -v -v.
// Fields printed as "<NULL>" are "". Numeric fields keep fwknop's numbers; the *Name fields
// hold the text in parentheses ("SHA256", "CBC", "Access msg").
type Dump struct {
	Random          string `json:"random"`
	Username        string `json:"username"`
	Timestamp       int64  `json:"timestamp"`
	Version         string `json:"version"`
	MessageType     int    `json:"message_type"`
	MessageTypeName string `json:"message_type_name"`
	Message         string `json:"message"`
	NATAccess       string `json:"nat_access"`
	ServerAuth      string `json:"server_auth"`
	ClientTimeout   uint32 `json:"client_timeout"`
	DigestType      int    `json:"digest_type"`
	DigestName      string `json:"digest_name"`
	HMACType        int    `json:"hmac_type"`       // 0 = no HMAC
	HMACName        string `json:"hmac_name"`       // "None" when no HMAC
	EncryptionType  int    `json:"encryption_type"` // 1 = Rijndael, 2 = GnuPG
	EncryptionMode  int    `json:"encryption_mode"`
	ModeName        string `json:"mode_name"` // "CBC", "legacy", ...
	EncodedData     string `json:"encoded_data"`
	Digest          string `json:"digest"`
	HMAC            string `json:"hmac"`
	FinalSPAData    string `json:"final_spa_data"` // fwknop -v: the wire packet, HMAC included
}

// ErrNoDump is returned by ParseDump when the text holds no "SPA Field Values:" block.
var ErrNoDump = errors.New("no SPA field dump found")

// The labels fwknop prints, in order. Every one must be present in a block.
var dumpLabels = []string{
	"Random Value", "Username", "Timestamp", "FKO Version", "Message Type", "Message String",
	"Nat Access", "Server Auth", "Client Timeout", "Digest Type", "HMAC Type", "Encryption Type",
	"Encryption Mode", "Encoded Data", "SPA Data Digest", "HMAC", "Final SPA Data",
}

// ParseDump parses the first "SPA Field Values:" block in text (a client's -v output or a
// server log). The block ends at the first line that is not a "Label: value" line of the
// dump. Unknown labels are an error, so a changed fwknop output format is noticed.
func ParseDump(text string) (Dump, error) {
	_, rest, ok := strings.Cut(text, "SPA Field Values:")
	if !ok {
		return Dump{}, ErrNoDump
	}
	return parseBlock(rest)
}

// parseBlock parses the lines after "SPA Field Values:".
func parseBlock(rest string) (Dump, error) {
	raw := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(rest))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	first := true
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if first && strings.TrimSpace(line) == "" {
			continue // the newline right after "SPA Field Values:"
		}
		first = false
		if strings.Trim(line, "= ") == "" && strings.Contains(line, "=") {
			continue // the "=================" underline
		}
		label, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(line) == "" {
			break
		}
		label = strings.TrimSpace(label)
		if !isDumpLabel(label) {
			break
		}
		if _, dup := raw[label]; dup {
			break // the next block starts without a header (should not happen)
		}
		raw[label] = strings.TrimPrefix(value, " ")
	}
	if err := sc.Err(); err != nil {
		return Dump{}, fmt.Errorf("read dump: %w", err)
	}
	for _, l := range dumpLabels {
		if _, ok := raw[l]; !ok {
			return Dump{}, fmt.Errorf("dump: missing field %q", l)
		}
	}
	var d Dump
	var err error
	text := func(l string) string {
		if v := raw[l]; v != "<NULL>" {
			return v
		}
		return ""
	}
	d.Random = text("Random Value")
	d.Username = text("Username")
	d.Version = text("FKO Version")
	d.Message = text("Message String")
	d.NATAccess = text("Nat Access")
	d.ServerAuth = text("Server Auth")
	d.EncodedData = text("Encoded Data")
	d.Digest = text("SPA Data Digest")
	d.HMAC = text("HMAC")
	d.FinalSPAData = text("Final SPA Data")
	if d.Timestamp, err = strconv.ParseInt(raw["Timestamp"], 10, 64); err != nil {
		return Dump{}, fmt.Errorf("dump: Timestamp: %w", err)
	}
	ct, err := strconv.ParseUint(raw["Client Timeout"], 10, 32)
	if err != nil {
		return Dump{}, fmt.Errorf("dump: Client Timeout: %w", err)
	}
	d.ClientTimeout = uint32(ct)
	for _, f := range []struct {
		label string
		num   *int
		name  *string
	}{
		{"Message Type", &d.MessageType, &d.MessageTypeName},
		{"Digest Type", &d.DigestType, &d.DigestName},
		{"HMAC Type", &d.HMACType, &d.HMACName},
		{"Encryption Type", &d.EncryptionType, nil},
		{"Encryption Mode", &d.EncryptionMode, &d.ModeName},
	} {
		n, name, err := numberAndName(raw[f.label])
		if err != nil {
			return Dump{}, fmt.Errorf("dump: %s: %w", f.label, err)
		}
		*f.num = n
		if f.name != nil {
			*f.name = name
		}
	}
	return d, nil
}

func isDumpLabel(l string) bool {
	for _, k := range dumpLabels {
		if k == l {
			return true
		}
	}
	return false
}

// numberAndName splits "3 (SHA256)" into 3 and "SHA256".
func numberAndName(v string) (int, string, error) {
	num, rest, _ := strings.Cut(v, " ")
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", fmt.Errorf("bad number in %q: %w", v, err)
	}
	rest = strings.TrimSpace(rest)
	if rest != "" {
		if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
			return 0, "", fmt.Errorf("bad name in %q", v)
		}
		rest = rest[1 : len(rest)-1]
	}
	return n, rest, nil
}

// SPAMessage returns the dump as the spa.Message that spa.Decode should return for the packet.
func (d Dump) SPAMessage() spa.Message {
	return spa.Message{
		Random:        d.Random,
		Username:      d.Username,
		Timestamp:     d.Timestamp,
		Version:       d.Version,
		Type:          spa.MessageType(d.MessageType),
		Message:       d.Message,
		NATAccess:     d.NATAccess,
		ServerAuth:    d.ServerAuth,
		ClientTimeout: d.ClientTimeout,
		DigestType:    spa.DigestType(d.DigestType),
		Digest:        d.Digest,
	}
}

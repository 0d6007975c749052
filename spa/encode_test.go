package spa

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestRoundTripMatrix encodes and decodes every mode x inner digest x HMAC type (and none)
// x message type.
func TestRoundTripMatrix(t *testing.T) {
	modes := []Mode{CBC, ECB, CFB, OFB, CTR, Legacy}
	hmacs := []DigestType{0, MD5, SHA1, SHA256, SHA384, SHA512, SHA3_256, SHA3_512}
	rnd := &fixedRand{}
	n := 0
	for _, mode := range modes {
		for d := MD5; d <= SHA3_512; d++ {
			for _, h := range hmacs {
				for typ := CommandMsg; typ <= ClientTimeoutLocalNATAccessMsg; typ++ {
					m := &Message{Username: "alice", Timestamp: 1795432440 + int64(n), Type: typ,
						Message: "10.99.0.2,tcp/22,udp/53", DigestType: d}
					if typ == CommandMsg {
						m.Message = "10.99.0.2,echo hi"
					}
					if typ.HasNAT() {
						m.NATAccess = "192.168.1.10,2222"
					}
					if typ.HasTimeout() {
						m.ClientTimeout = 120
					}
					if n%3 == 0 {
						m.ServerAuth = "s3cret"
					}
					k := Keys{Key: []byte("k3y-" + mode.String()), Mode: mode}
					if h != 0 {
						k.HMACKey, k.HMACType = []byte("hmac-key"), h
					}
					name := fmt.Sprintf("%v/%v/hmac=%v/%v", mode, d, h, typ)
					wire, err := Encode(m, k, rnd)
					if err != nil {
						t.Fatalf("%s: Encode: %v", name, err)
					}
					got, err := Decode([]byte(wire), k)
					if err != nil {
						t.Fatalf("%s: Decode(%d chars): %v", name, len(wire), err)
					}
					if *got != *m {
						t.Fatalf("%s:\n got %+v\nwant %+v", name, *got, *m)
					}
					n++
				}
			}
		}
	}
	if n != 6*7*8*7 {
		t.Fatalf("ran %d cases", n)
	}
}

// TestEncodeChecks: the encoder refuses what the decoder would refuse.
func TestEncodeChecks(t *testing.T) {
	with := func(f func(*Message)) *Message { m := testMessage(); f(m); return m }
	tests := []struct {
		name string
		m    *Message
		k    Keys
		want error
	}{
		{"username 49 bytes", with(func(m *Message) { m.Username = strings.Repeat("u", 49) }), testKeys, ErrUsernameTooBig},
		{"empty username", with(func(m *Message) { m.Username = "" }), testKeys, ErrUsername},
		{"username with colon", with(func(m *Message) { m.Username = "bad:user" }), testKeys, ErrUsername},
		{"username with comma first", with(func(m *Message) { m.Username = ",user" }), testKeys, ErrUsername},
		{"username non-ASCII", with(func(m *Message) { m.Username = "usér" }), testKeys, ErrUsername},
		{"random not 16 digits", with(func(m *Message) { m.Random = "123" }), testKeys, ErrRandom},
		{"random letters", with(func(m *Message) { m.Random = "123456789012345x" }), testKeys, ErrRandom},
		{"negative timestamp", with(func(m *Message) { m.Timestamp = -1 }), testKeys, ErrTimestamp},
		{"13-digit timestamp", with(func(m *Message) { m.Timestamp = 1e12 }), testKeys, ErrTimestamp},
		{"long version", with(func(m *Message) { m.Version = "123456789" }), testKeys, ErrVersion},
		{"version with colon", with(func(m *Message) { m.Version = "3:0" }), testKeys, ErrVersion},
		{"type 7", with(func(m *Message) { m.Type = 7 }), testKeys, ErrMsgType},
		{"bad digest type", with(func(m *Message) { m.DigestType = 8 }), testKeys, ErrDigestType},
		{"bad access", with(func(m *Message) { m.Message = "10.99.0.2,icmp/8" }), testKeys, ErrMessage},
		{"access without port", with(func(m *Message) { m.Message = "10.99.0.2" }), testKeys, ErrMessage},
		{"access trailing comma", with(func(m *Message) { m.Message = "10.99.0.2,tcp/22," }), testKeys, ErrMessage},
		{"message too long", with(func(m *Message) { m.Message = "10.99.0.2" + strings.Repeat(",tcp/22", 30) }), testKeys, ErrMessage},
		{"command without text", with(func(m *Message) { m.Type = CommandMsg; m.Message = "10.99.0.2," }), testKeys, ErrMessage},
		{"NAT type without NAT", with(func(m *Message) { m.Type = NATAccessMsg }), testKeys, ErrNATAccess},
		{"bad NAT", with(func(m *Message) { m.NATAccess = "10.0.0.1:22" }), testKeys, ErrNATAccess},
		{"timeout too big", with(func(m *Message) { m.ClientTimeout = 65537 }), testKeys, ErrClientTimeout},
		{"server auth with NUL", with(func(m *Message) { m.ServerAuth = "a\x00b" }), testKeys, ErrServerAuth},
		{"server auth too long", with(func(m *Message) { m.ServerAuth = strings.Repeat("s", 193) }), testKeys, ErrServerAuth},
		{"key too long", testMessage(), Keys{Key: bytes.Repeat([]byte("k"), 33)}, ErrBadKey},
		{"empty key", testMessage(), Keys{}, ErrBadKey},
		{"PCBC", testMessage(), Keys{Key: []byte("k"), Mode: PCBC}, ErrUnsupported},
		{"bad HMAC type", testMessage(), Keys{Key: []byte("k"), HMACKey: []byte("h"), HMACType: 8}, ErrHMACType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.m, tt.k, &fixedRand{})
			checkSentinel(t, err, tt.want)
		})
	}
	// The limits themselves are accepted.
	ok := with(func(m *Message) {
		m.Username = strings.Repeat("u", 48)
		m.Timestamp = 999999999999
		m.ClientTimeout = 65536
	})
	if _, err := Encode(ok, testKeys, &fixedRand{}); err != nil {
		t.Errorf("limits: %v", err)
	}
}

// TestEncodeNormalises mirrors libfko's message-type adjustments.
func TestEncodeNormalises(t *testing.T) {
	tests := []struct {
		typ     MessageType
		nat     string
		timeout uint32
		want    MessageType
		wantTO  uint32
	}{
		{AccessMsg, "", 60, ClientTimeoutAccessMsg, 60},
		{ClientTimeoutAccessMsg, "", 0, AccessMsg, 0},
		{NATAccessMsg, "10.0.0.5,22", 30, ClientTimeoutNATAccessMsg, 30},
		{ClientTimeoutNATAccessMsg, "10.0.0.5,22", 0, NATAccessMsg, 0},
		{LocalNATAccessMsg, "10.0.0.5,22", 5, ClientTimeoutLocalNATAccessMsg, 5},
		{ClientTimeoutLocalNATAccessMsg, "10.0.0.5,22", 0, LocalNATAccessMsg, 0},
		{AccessMsg, "10.0.0.5,22", 0, NATAccessMsg, 0},
		{ClientTimeoutAccessMsg, "10.0.0.5,22", 9, ClientTimeoutNATAccessMsg, 9},
		{CommandMsg, "", 60, CommandMsg, 0},
	}
	for _, tt := range tests {
		m := testMessage()
		m.Type, m.NATAccess, m.ClientTimeout = tt.typ, tt.nat, tt.timeout
		if tt.typ == CommandMsg {
			m.Message = "10.99.0.2,uptime"
		}
		wire, err := Encode(m, testKeys, &fixedRand{})
		if err != nil {
			t.Fatalf("%v: %v", tt.typ, err)
		}
		if m.Type != tt.want || m.ClientTimeout != tt.wantTO {
			t.Errorf("%v nat=%q timeout=%d: became %v/%d, want %v/%d", tt.typ, tt.nat, tt.timeout, m.Type, m.ClientTimeout, tt.want, tt.wantTO)
		}
		got, err := Decode([]byte(wire), testKeys)
		if err != nil || *got != *m {
			t.Errorf("%v: decoded %+v, %v", tt.typ, got, err)
		}
	}
}

// TestEncodeFills checks the defaults and the use of the random source.
func TestEncodeFills(t *testing.T) {
	m := testMessage()
	w1, err := Encode(m, testKeys, &fixedRand{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Random) != 16 || !allDigits([]byte(m.Random)) || m.Version != "3.0.0" || m.DigestType != SHA256 || len(m.Digest) != 43 {
		t.Errorf("defaults not filled: %+v", *m)
	}
	if len(w1) != 204 { // notes §1: 204 bytes for this message with HMAC-SHA256
		t.Errorf("wire of %d chars, want 204", len(w1))
	}
	m2 := testMessage()
	w2, _ := Encode(m2, testKeys, &fixedRand{b: 99})
	if w1 == w2 || m.Random == m2.Random {
		t.Error("different random sources gave the same packet")
	}
	// Deterministic for the same source.
	m3 := testMessage()
	if w3, _ := Encode(m3, testKeys, &fixedRand{}); w3 != w1 {
		t.Error("same random source, different packet")
	}
	if _, err := Encode(testMessage(), testKeys, nil); err == nil {
		t.Error("nil random source accepted")
	}
	// A failing random source is reported.
	if _, err := Encode(testMessage(), testKeys, bytes.NewReader(nil)); err == nil {
		t.Error("empty random source accepted")
	}
	m4 := testMessage()
	m4.Random = "1234567890123456"
	if _, err := Encode(m4, testKeys, bytes.NewReader([]byte{1, 2, 3})); err == nil {
		t.Error("short salt accepted")
	}
}

// TestTimestamp64 checks that timestamps past 2038 survive (a sesame extension).
func TestTimestamp64(t *testing.T) {
	m := testMessage()
	m.Timestamp = 5_000_000_000
	got, err := Decode([]byte(mustEncode(t, m, testKeys)), testKeys)
	if err != nil || got.Timestamp != 5_000_000_000 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestReplayDigest(t *testing.T) {
	// python3: base64.b64encode(hashlib.sha256(b'hello sesame').digest()).rstrip(b'=')
	if got := ReplayDigest([]byte("hello sesame")); got != "pXIeVBDunjb3fxvviH1LLVqqcmZggRsnpq+jkL9tLpU" {
		t.Errorf("ReplayDigest = %s", got)
	}
}

func TestParseAccess(t *testing.T) {
	tests := []struct {
		in   string
		want string // Access.String(), "" = error
	}{
		{"10.99.0.2,tcp/22", "10.99.0.2,tcp/22"},
		{"10.99.0.2,tcp/22,udp/53,tcp/65535", "10.99.0.2,tcp/22,udp/53,tcp/65535"},
		{"0.0.0.0,tcp/22", "0.0.0.0,tcp/22"},
		{"fd99::2,udp/51820", "fd99::2,udp/51820"},
		{"::,tcp/22", "0.0.0.0,tcp/22"},
		{"10.99.0.2,tcp/00022", "10.99.0.2,tcp/22"},
		{"10.99.0.2,tcp/0", ""},
		{"10.99.0.2,tcp/65536", ""},
		{"10.99.0.2,tcp/123456", ""},
		{"10.99.0.2,TCP/22", ""},
		{"10.99.0.2,icmp/8", ""},
		{"10.99.0.2,none/0", "10.99.0.2,none/0"}, // sesame: no ports = the stanza's OPEN_PORTS
		{"10.99.0.2,NONE/0", ""},                 // the extension is lower case only, like tcp and udp
		{"10.99.0.2,None/0", ""},
		{"10.99.0.2,none/0,tcp/22", ""},
		{"10.99.0.2,none/1", ""},
		{"10.99.0.2,tcp/22,", ""},
		{"10.99.0.2,tcp/", ""},
		{"10.99.0.2,tcp/2x", ""},
		{"10.99.0.2", ""},
		{"10.99.0,tcp/22", ""},
		{"010.99.0.2,tcp/22", ""},
		{"10.99.0.256,tcp/22", ""},
		{"host.example,tcp/22", ""},
		{"fe80::1%eth0,tcp/22", ""},
		{"::ffff:10.0.0.1,tcp/22", ""},
		{"10.99.0.2" + strings.Repeat(",tcp/22", 35), "10.99.0.2" + strings.Repeat(",tcp/22", 35)}, // 254 bytes
		{"10.99.0.22" + strings.Repeat(",tcp/2", 41), ""},                                          // 256 bytes
	}
	for _, tt := range tests {
		a, err := ParseAccess(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseAccess(%q) = %v, want error", tt.in, a)
			} else if !errors.Is(err, ErrAccess) {
				t.Errorf("ParseAccess(%q): %v does not wrap ErrAccess", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAccess(%q): %v", tt.in, err)
			continue
		}
		if a.String() != tt.want {
			t.Errorf("ParseAccess(%q).String() = %q, want %q", tt.in, a, tt.want)
		}
	}
	a, _ := ParseAccess("0.0.0.0,udp/53")
	if a.AllowIP.IsValid() || len(a.Ports) != 1 || a.Ports[0] != (ProtoPort{"udp", 53}) {
		t.Errorf("0.0.0.0 access parsed as %+v", a)
	}
}

// ParseAllowIP is ParseAccess's allow-IP rule, returning 0.0.0.0 and :: as written.
func TestParseAllowIP(t *testing.T) {
	for in, want := range map[string]string{"10.99.0.2": "10.99.0.2", "0.0.0.0": "0.0.0.0", "::": "::",
		"fd99::2": "fd99::2", "010.99.0.2": "", "0127.0.0.1": "", "::ffff:10.0.0.1": "", "fe80::1%eth0": "",
		"10.99.0": "", "": "", " 10.99.0.2": ""} {
		a, err := ParseAllowIP(in)
		switch {
		case want == "" && !errors.Is(err, ErrAccess):
			t.Errorf("ParseAllowIP(%q) = %v, %v; want an ErrAccess", in, a, err)
		case want != "" && (err != nil || a.String() != want):
			t.Errorf("ParseAllowIP(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	tests := []struct {
		raw  string
		b64  bool
		want string
		err  bool
	}{
		{"fwknoptest", false, "fwknoptest", false},
		{"", false, "", true},
		{"Zndrbm9wdGVzdA==", true, "fwknoptest", false},
		{"Zndrbm9wdGVzdA", true, "fwknoptest", false},
		{"Zndr!m9w", true, "", true},
		{"", true, "", true},
		{"==", true, "", true},
	}
	for _, tt := range tests {
		k, err := DecodeKey(tt.raw, tt.b64)
		if tt.err {
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("DecodeKey(%q, %v): %v, want ErrBadKey", tt.raw, tt.b64, err)
			}
			continue
		}
		if err != nil || string(k) != tt.want {
			t.Errorf("DecodeKey(%q, %v) = %q, %v", tt.raw, tt.b64, k, err)
		}
	}
}

func TestNames(t *testing.T) {
	for d := MD5; d <= SHA3_512; d++ {
		for _, s := range []string{d.String(), strings.ToLower(d.String())} {
			if got, err := ParseDigestType(s); err != nil || got != d {
				t.Errorf("ParseDigestType(%q) = %v, %v", s, got, err)
			}
		}
	}
	if _, err := ParseDigestType("sha3-256"); !errors.Is(err, ErrDigestType) {
		t.Errorf("sha3-256: %v", err)
	}
	for _, m := range []Mode{CBC, ECB, CFB, OFB, CTR, Legacy} {
		for _, s := range []string{m.String(), strings.ToUpper(m.String()), strings.ToLower(m.String())} {
			if got, err := ParseMode(s); err != nil || got != m {
				t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
			}
		}
	}
	for _, s := range []string{"pcbc", "asymmetric", "gcm", ""} {
		if _, err := ParseMode(s); !errors.Is(err, ErrMode) {
			t.Errorf("ParseMode(%q): %v", s, err)
		}
	}
	if AccessMsg.String() != "Access msg" || ClientTimeoutLocalNATAccessMsg.String() != "Client timeout local NAT access msg" ||
		MessageType(9).String() != "MessageType(9)" || SHA3_256.String() != "SHA3_256" || Legacy.String() != "legacy" {
		t.Error("String methods")
	}
}

// fakeOpener stands in for an OpenPGP implementation: the "message" is 0x85 0x01 + plaintext.
type fakeOpener struct{}

func (fakeOpener) Open(msg []byte) ([]byte, error) {
	if len(msg) < 2 || msg[0] != 0x85 {
		return nil, errors.New("not a fake OpenPGP message")
	}
	return msg[2:], nil
}

type failingOpener struct{}

func (failingOpener) Open([]byte) ([]byte, error) { return nil, errors.New("no secret key") }

func TestDecodeGnuPG(t *testing.T) {
	m := testMessage()
	m.Random = "1234567890123456"
	m.ServerAuth = strings.Repeat("x", 150) // make it GnuPG-sized
	pt, err := EncodePlaintext(m)
	if err != nil {
		t.Fatal(err)
	}
	text := b64.EncodeToString(append([]byte{0x85, 0x01}, pt...))
	if !strings.HasPrefix(text, "hQ") || len(text) < 400 {
		t.Fatalf("fake GnuPG text %q (%d)", text[:4], len(text))
	}
	k := Keys{HMACKey: []byte("hmactest"), HMACType: SHA256}
	wire := text[2:] + hmacB64([]byte(text), SHA256, k.HMACKey)
	got, err := DecodeGnuPG([]byte(wire), k, fakeOpener{})
	if err != nil || *got != *m {
		t.Fatalf("DecodeGnuPG: %+v, %v", got, err)
	}
	_, err = DecodeGnuPG([]byte(wire), k, nil)
	checkSentinel(t, err, ErrUnsupported)
	_, err = DecodeGnuPG([]byte("A"+wire[1:]), k, fakeOpener{})
	checkSentinel(t, err, ErrHMACMismatch)
	_, err = DecodeGnuPG([]byte(wire[:200]), Keys{}, fakeOpener{})
	checkSentinel(t, err, ErrNotGnuPG)
	// Decode refuses it as GnuPG.
	_, err = Decode([]byte(wire), Keys{Key: []byte("k"), HMACKey: k.HMACKey})
	checkSentinel(t, err, ErrGnuPG)
	// An Open failure is a decryption failure.
	_, err = DecodeGnuPG([]byte(text[2:]), Keys{}, failingOpener{})
	checkSentinel(t, err, ErrDecrypt)
}

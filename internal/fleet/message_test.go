package fleet

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/sesame-spa/sesame/internal/ledger"
)

var testCodec = codec{key: []byte("0123456789abcdef0123456789abcdef"), group: "g1"}

func sampleMessages() []message {
	k4 := ledger.Key{Src: netip.MustParseAddr("192.0.2.7"), Proto: 6, Port: 22}
	k6 := ledger.Key{Src: netip.MustParseAddr("2001:db8::1"), Proto: 17, Port: 62201}
	id := strings.Repeat("ab", 16)
	return []message{
		{Kind: kindGrant, Sent: 1767225600000, Origin: "gw-a", ID: id,
			Grant: ledger.Entry{Key: k4, Expires: unixMilli(1767225630000), Stanza: 2}},
		{Kind: kindGrant, Sent: 1, Origin: "x", ID: id, Grant: ledger.Entry{Key: k6, Expires: unixMilli(2), Stanza: 0}},
		{Kind: kindRevoke, Sent: 1767225600001, Origin: "gw.b_1", ID: id, Keys: []ledger.Key{k4, k6}},
		{Kind: kindRevokeAll, Sent: 1767225600002, Origin: "gw-c", ID: id},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		text := testCodec.seal(&m)
		got, err := testCodec.open(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%q:\n got %+v\nwant %+v", text, got, m)
		}
	}
	m := sampleMessages()[0]
	if got := m.body(); got != "S1 g 1767225600000 gw-a "+m.ID+" 1767225630000 192.0.2.7 6 22 2" {
		t.Errorf("body %q", got)
	}
}

// A message verifies only under the same key and group, and any change breaks it.
func TestMessageAuthentication(t *testing.T) {
	m := sampleMessages()[0]
	text := testCodec.seal(&m)
	for name, c := range map[string]codec{
		"other key":   {key: []byte("0123456789abcdef0123456789abcdeX"), group: "g1"},
		"other group": {key: testCodec.key, group: "g2"},
	} {
		if _, err := c.open(text); !errors.Is(err, errForged) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for i := 0; i < len(text)-macLen-1; i++ {
		b := []byte(text)
		b[i] ^= 1
		if _, err := testCodec.open(string(b)); err == nil {
			t.Errorf("flipping byte %d of %q went unnoticed", i, text)
		}
	}
}

func TestParseBodyRefuses(t *testing.T) {
	id := strings.Repeat("ab", 16)
	for _, s := range []string{
		"",
		"S2 a 1 gw " + id,
		"S1 a 01 gw " + id,                      // leading zero
		"S1 a 0 gw " + id,                       // time 0
		"S1 a 1 gw " + strings.ToUpper(id),      // id not lowercase
		"S1 a 1 g/w " + id,                      // origin
		"S1 a 1 gw " + id + " extra",            // fields
		"S1 a  1 gw " + id,                      // double space
		"S1 g 1 gw " + id + " 2 192.0.2.1 6 22", // missing stanza
		"S1 g 1 gw " + id + " 2 ::ffff:192.0.2.1 6 22 1",         // mapped address
		"S1 g 1 gw " + id + " 2 fe80::1%eth0 6 22 1",             // zone
		"S1 g 1 gw " + id + " 2 2001:DB8::1 6 22 1",              // not canonical
		"S1 g 1 gw " + id + " 2 192.0.2.1 0 22 1",                // proto 0
		"S1 g 1 gw " + id + " 2 192.0.2.1 6 65536 1",             // port
		"S1 g 1 gw " + id + " 2 192.0.2.1 6 22 2147483648",       // stanza
		"S1 g 1 gw " + id + " 9007199254740993 192.0.2.1 6 22 1", // beyond 2^53
		"S1 r 1 gw " + id + " 192.0.2.1/6",                       // key
		"S1 r 1 gw " + id + " 192.0.2.1/6/22,",                   // empty key
		"S1 x 1 gw " + id,                                        // kind
	} {
		if m, err := parseBody(s); !errors.Is(err, errMalformed) {
			t.Errorf("%q: %+v, %v; want malformed", s, m, err)
		}
	}
	many := make([]string, maxKeys+1)
	for i := range many {
		many[i] = "192.0.2.1/6/22"
	}
	if _, err := parseBody("S1 r 1 gw " + id + " " + strings.Join(many, ",")); err == nil {
		t.Error("257 keys accepted")
	}
	if _, err := testCodec.open(strings.Repeat("a", maxMessage+1)); !errors.Is(err, errMalformed) {
		t.Errorf("oversized: %v", err)
	}
}

// FuzzParseBody: parsing never panics, and what parses prints back to the same text (the
// form is canonical, so a MAC covers exactly one message).
func FuzzParseBody(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(m.body())
	}
	f.Add("S1 g 1 gw " + strings.Repeat("0", 32) + " 2 ::1 6 22 0")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseBody(s)
		if err != nil {
			return
		}
		if got := m.body(); got != s {
			t.Fatalf("parse(%q).body() = %q", s, got)
		}
		if m.Kind == kindGrant && (m.Grant.Expires.UnixMilli() <= 0 || !m.Grant.Src.IsValid()) {
			t.Fatalf("%q: %+v", s, m)
		}
	})
}

// FuzzOpen: opening arbitrary text never panics, and sealing what opens gives the same text.
func FuzzOpen(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(testCodec.seal(&m))
	}
	f.Add("S1 a 1 gw x " + strings.Repeat("A", macLen))
	f.Fuzz(func(t *testing.T, s string) {
		m, err := testCodec.open(s)
		if err != nil {
			return
		}
		if got := testCodec.seal(&m); got != s {
			t.Fatalf("open(%q) sealed again = %q", s, got)
		}
	})
}

func TestKeyStringIsField(t *testing.T) {
	k := ledger.Key{Src: netip.MustParseAddr("2001:db8::2"), Proto: 6, Port: 443}
	if s := keyString(k); s != "2001:db8::2/6/443" {
		t.Errorf("%q", s)
	}
	if got, ok := parseKey(keyString(k)); !ok || got != k {
		t.Errorf("parseKey: %v %v", got, ok)
	}
}

package fwknoptest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// mutation is a broken variant of a good packet and the sentinel spa.Decode must return.
type mutation struct {
	name string
	wire func(w string) string
	want error
	// fwknopd's reaction: "rejected" (dropped before any stanza), "hmac" (every stanza
	// fails with HMAC_COMPAREFAIL), "gnupg" (no Rijndael stanza tries it).
	server string
}

func mutations() []mutation {
	return []mutation{
		{"tampered", func(w string) string { return w[:60] + flip(w[60]) + w[61:] }, spa.ErrHMACMismatch, "hmac"},
		{"truncated-by-one", func(w string) string { return w[:len(w)-1] }, spa.ErrHMACMismatch, "hmac"},
		{"prefix-re-added", func(w string) string { return "U2FsdGVkX1" + w }, spa.ErrPrefixPresent, "rejected"},
		{"non-base64", func(w string) string { return w[:50] + "*" + w[51:] }, spa.ErrNotBase64, "rejected"},
		{"trailing-newline", func(w string) string { return w + "\n" }, spa.ErrNotBase64, "rejected"},
		{"too-short", func(w string) string { return w[:100] }, spa.ErrTooShort, "rejected"},
		{"too-long", func(w string) string { return w + strings.Repeat("A", 1501-len(w)) }, spa.ErrTooLong, "rejected"},
		{"gnupg-length", func(w string) string { return w + strings.Repeat("A", 420-len(w)) }, spa.ErrGnuPG, "gnupg"},
	}
}

// flip returns a base64 character different from c.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// rejectVectors picks from the recorded vectors a CBC packet with an HMAC of a 43-character
// type and a packet without HMAC.
func rejectVectors(t *testing.T) (withHMAC, noHMAC Vector) {
	t.Helper()
	vs, err := LoadVectors(VectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		switch {
		case withHMAC.Name == "" && v.HMACType == "sha256" && v.Mode != "legacy":
			withHMAC = v
		case noHMAC.Name == "" && v.HMACType == "" && v.Mode != "legacy":
			noHMAC = v
		}
	}
	if withHMAC.Name == "" || noHMAC.Name == "" {
		t.Fatal("vectors lack an HMAC-SHA256 packet or a packet without HMAC")
	}
	return withHMAC, noHMAC
}

// wrongKeys are key sets that must not open the packet, with the sentinel they give.
func wrongKeys(k spa.Keys) []struct {
	name string
	keys spa.Keys
	want error
} {
	wrongKey, wrongHMACKey, wrongMode, wrongType := k, k, k, k
	wrongKey.Key = []byte("not-the-key")
	wrongHMACKey.HMACKey = []byte("not-the-hmac-key")
	wrongMode.Mode = spa.CFB
	if k.Mode == spa.CFB {
		wrongMode.Mode = spa.CBC
	}
	wrongType.HMACType = spa.SHA512 // 86 characters instead of SHA-256's 43
	return []struct {
		name string
		keys spa.Keys
		want error
	}{
		{"wrong-key", wrongKey, spa.ErrDecrypt},
		{"wrong-hmac-key", wrongHMACKey, spa.ErrHMACMismatch},
		{"wrong-mode", wrongMode, spa.ErrDecrypt},
		{"wrong-hmac-type", wrongType, spa.ErrHMACMismatch},
	}
}

// TestRejects checks that spa.Decode refuses broken packets and wrong keys with the right
// sentinel, starting from recorded real-client packets (no fwknop or clock needed).
func TestRejects(t *testing.T) {
	good, plain := rejectVectors(t)
	k, err := good.Keys()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spa.Decode([]byte(good.Wire), k); err != nil {
		t.Fatalf("the good packet does not decode: %v", err)
	}
	for _, m := range mutations() {
		w := m.wire(good.Wire)
		if _, err := spa.Decode([]byte(w), k); !errors.Is(err, m.want) {
			t.Errorf("%s: spa.Decode error %v, want %v", m.name, err, m.want)
		}
	}
	for _, wk := range wrongKeys(k) {
		if _, err := spa.Decode([]byte(good.Wire), wk.keys); !errors.Is(err, wk.want) {
			t.Errorf("%s: spa.Decode error %v, want %v", wk.name, err, wk.want)
		}
	}
	// HMAC expected but absent: a packet without HMAC, checked with an HMAC key. fwknopd
	// slices an HMAC off anyway, so this is an HMAC mismatch, as in fwknopd.
	pk, err := plain.Keys()
	if err != nil {
		t.Fatal(err)
	}
	pk.HMACKey, pk.HMACType = []byte("hmac-expected"), spa.SHA256
	if _, err := spa.Decode([]byte(plain.Wire), pk); !errors.Is(err, spa.ErrHMACMismatch) {
		t.Errorf("hmac-absent: spa.Decode error %v, want %v", err, spa.ErrHMACMismatch)
	}
}

// TestIntegrationFwknopdRejects sends the same broken packets to the real fwknopd, followed
// by a packet without HMAC and a good packet, all from the real client. The access.conf has
// four wrong stanzas (wrong key, wrong mode, wrong HMAC type, wrong HMAC key) before the
// right one, so the good packet also shows fwknopd refusing it under each wrong setting.
func TestIntegrationFwknopdRejects(t *testing.T) {
	nstest.Require(t, "fwknop", "fwknopd", "iptables")
	var c, plainCase Case
	for _, x := range Matrix() {
		if c.Name == "" && x.HMAC == spa.SHA256 && x.Mode != spa.Legacy && x.Mode != spa.CFB && x.Type == spa.AccessMsg {
			c = x
		}
		if plainCase.Name == "" && x.HMAC == 0 {
			plainCase = x
		}
	}
	if c.Name == "" {
		for _, x := range Matrix() {
			if x.HMAC == spa.SHA256 && x.Mode != spa.Legacy && x.Mode != spa.CFB && x.Type != spa.CommandMsg {
				c = x
				break
			}
		}
	}
	good := Client(t, c.ClientArgs()...).Wire
	plain := Client(t, plainCase.ClientArgs()...).Wire

	stanza := func(mut func(*Case)) string {
		x := c
		x.Keys.Key = append([]byte{}, c.Keys.Key...)
		mut(&x)
		return x.Stanza()
	}
	access := strings.Join([]string{
		stanza(func(x *Case) { x.Keys.Key = []byte("not-the-key") }),
		stanza(func(x *Case) { x.Mode = spa.CFB }),
		stanza(func(x *Case) { x.HMAC = spa.SHA512 }),
		stanza(func(x *Case) { x.Keys.HMACKey = []byte("not-the-hmac-key") }),
		c.Stanza(),
	}, "\n")
	ns := nstest.New(t)
	srv := StartServer(t, ns, ServerOptions{Access: access, Config: MatrixServerConfig, TestMode: true})

	muts := mutations()
	var packets [][]byte
	for _, m := range muts {
		packets = append(packets, []byte(m.wire(good)))
	}
	packets = append(packets, []byte(plain), []byte(good))
	srv.Send(t, packets...)
	all := srv.WaitEvents(t, 20*time.Second, func(ev []Event) bool {
		return len(Filter(ByWire(ev, good), EventDecoded)) > 0
	})
	for i, m := range muts {
		ev := ByPacket(all, i+1)
		if len(Filter(ev, EventDecoded)) != 0 {
			t.Errorf("%s: fwknopd decoded it: %s", m.name, describe(ev))
			continue
		}
		switch m.server {
		case "rejected":
			if len(ev) != 1 || ev[0].Kind != EventRejected {
				t.Errorf("%s: want one pre-stanza rejection, got %s", m.name, describe(ev))
			}
		case "hmac":
			errs := Filter(ev, EventStanzaError)
			if len(errs) != 5 {
				t.Errorf("%s: want 5 stanza errors, got %s", m.name, describe(ev))
			}
			for _, e := range errs {
				if !strings.Contains(e.Detail, "HMAC_COMPAREFAIL") {
					t.Errorf("%s: stanza %d: %s", m.name, e.Stanza, e.Detail)
				}
			}
		case "gnupg":
			info := Filter(ev, EventStanzaInfo)
			if len(Filter(ev, EventStanzaError)) != 0 || len(info) != 5 ||
				!strings.Contains(info[0].Detail, "No stanza encryption mode match for encryption type: 2") {
				t.Errorf("%s: want no Rijndael attempt, got %s", m.name, describe(ev))
			}
		}
	}
	// The packet without HMAC fails HMAC in every stanza (all expect one).
	ev := ByWire(all, plain)
	if len(Filter(ev, EventDecoded)) != 0 || len(Filter(ev, EventStanzaError)) != 5 {
		t.Errorf("hmac-absent: %s", describe(ev))
	}
	// The good packet: refused by the four wrong stanzas, decoded by the fifth.
	ev = ByWire(all, good)
	wantErr := map[int]string{1: "Decryption failed", 2: "Decryption failed", 3: "HMAC_COMPAREFAIL", 4: "HMAC_COMPAREFAIL"}
	errs := Filter(ev, EventStanzaError)
	if len(errs) != 4 {
		t.Errorf("good packet: want 4 stanza errors, got %s", describe(ev))
	}
	for _, e := range errs {
		if !strings.Contains(e.Detail, wantErr[e.Stanza]) {
			t.Errorf("good packet, stanza %d: %q, want %q", e.Stanza, e.Detail, wantErr[e.Stanza])
		}
	}
	if dec := Filter(ev, EventDecoded); len(dec) != 1 || dec[0].Stanza != 5 {
		t.Errorf("good packet not decoded by stanza 5: %s", describe(ev))
	}
}

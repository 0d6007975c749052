package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// newSPAEnv is newEnv with the real spa codec.
func newSPAEnv(tb testing.TB, p Policy, now func() time.Time) (*Server, *fakeFirewall, *fakeCache) {
	tb.Helper()
	fw, cache := &fakeFirewall{}, newFakeCache()
	s, err := New(Config{Policy: p, Firewall: fw, Cache: cache, Now: now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return s, fw, cache
}

func encodeSPA(tb testing.TB, m spa.Message, k spa.Keys) []byte {
	tb.Helper()
	w, err := spa.Encode(&m, k, rand.Reader)
	if err != nil {
		tb.Fatalf("encode: %v", err)
	}
	return []byte(w)
}

// The real codec: every decode-level rejection class and a grant, with real packets.
func TestHandleSPA(t *testing.T) {
	now := func() time.Time { return testNow }
	st := baseStanza()
	s, fw, _ := newSPAEnv(t, basePolicy(st), now)
	m := baseMessage()
	m.Random = ""
	good := encodeSPA(t, m, keysA)
	cases := []struct {
		name string
		wire []byte
		want Reason
	}{
		{"granted", good, Granted},
		{"replay", good, Replay},
		{"wrong HMAC key", encodeSPA(t, m, spa.Keys{Key: keysA.Key, HMACKey: []byte("other")}), BadHMAC},
		{"wrong key", encodeSPA(t, m, spa.Keys{Key: []byte("other"), HMACKey: keysA.HMACKey}), DecryptFailed},
		{"wrong mode", encodeSPA(t, m, spa.Keys{Key: keysA.Key, HMACKey: keysA.HMACKey, Mode: spa.CFB}), DecryptFailed},
		{"flipped byte", flip(good, 20), BadHMAC},
		{"prefix re-added", append([]byte("U2FsdGVkX1"), good...), Malformed},
		{"trailing newline", append(append([]byte(nil), good...), '\n'), Malformed},
		{"short", good[:100], Malformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if cheap, settled := s.cheap(context.Background(), pkt("10.99.0.2", tc.wire)); settled && cheap.Reason != tc.want {
				t.Errorf("cheap path: %v, want %v", cheap.Reason, tc.want)
			}
			res := s.Handle(context.Background(), pkt("10.99.0.2", tc.wire))
			if res.Reason != tc.want {
				t.Fatalf("reason %v (%v), want %v", res.Reason, res.Err, tc.want)
			}
		})
	}
	if g := fw.list(); len(g) != 1 || g[0] != grant("10.99.0.2", "tcp", 22, 30*time.Second) {
		t.Errorf("grants %v", g)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	if c[i] == 'A' {
		c[i] = 'B'
	} else {
		c[i] = 'A'
	}
	return c
}

// FuzzHandle: no payload, from any source, may panic or be granted without the keys.
func FuzzHandle(f *testing.F) {
	m := baseMessage()
	w, err := spa.Encode(&m, keysA, zeroReader{}) // deterministic: the same in every fuzz worker
	if err != nil {
		f.Fatal(err)
	}
	good := []byte(w)
	f.Add(good, []byte{10, 99, 0, 2})
	f.Add(good[:150], []byte{10, 99, 0, 2})
	f.Add([]byte("U2FsdGVkX1"+string(good)), []byte{10, 99, 0, 2})
	f.Add([]byte(""), []byte{1, 2, 3, 4})
	f.Add(append(append([]byte(nil), good...), good...), []byte{10, 99, 0, 2})
	f.Add(flip(good, 50), []byte{0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	st := baseStanza()
	st2 := baseStanza()
	st2.Num, st2.SourceAny, st2.Keys = 2, true, spa.Keys{Key: []byte("k"), Mode: spa.ECB}
	s, fw, _ := newSPAEnv(f, basePolicy(st, st2), func() time.Time { return testNow })
	goodStr := string(good)
	f.Fuzz(func(t *testing.T, payload, srcIP []byte) {
		src, ok := netip.AddrFromSlice(srcIP)
		if !ok {
			src = netip.MustParseAddr("10.99.0.2")
		}
		before := len(fw.list())
		p := capture.Packet{Src: netip.AddrPortFrom(src, 1), Payload: payload}
		cheapRes, settled := s.cheap(context.Background(), p)
		res := s.Handle(context.Background(), capture.Packet{Src: netip.AddrPortFrom(src, 1), Payload: payload})
		if res.Reason == InternalError {
			t.Fatalf("internal error: %v", res.Err)
		}
		if settled && (cheapRes.Reason != res.Reason || cheapRes.Stanza != res.Stanza) {
			t.Fatalf("cheap path says %v (stanza %d), Handle says %v (stanza %d)", cheapRes.Reason, cheapRes.Stanza, res.Reason, res.Stanza)
		}
		if res.Reason == Granted && string(payload) != goodStr {
			t.Fatalf("granted a packet that is not the one good packet: %q", payload)
		}
		if res.Reason != Granted && len(fw.list()) != before {
			t.Fatalf("grant made for a rejected packet")
		}
	})
}

// BenchmarkHandleMalformed is the cost of one random non-SPA payload.
func BenchmarkHandleMalformed(b *testing.B) {
	s, _, _ := newSPAEnv(b, basePolicy(baseStanza()), time.Now)
	payload := make([]byte, 200)
	rand.Read(payload)
	p := pkt("10.99.0.2", payload)
	b.ReportAllocs()
	for b.Loop() {
		s.Handle(context.Background(), p)
	}
}

// BenchmarkHandleGrant is the pipeline cost of one valid packet (fake firewall, fake cache).
func BenchmarkHandleGrant(b *testing.B) {
	var stanzas []fwconf.Stanza
	stanzas = append(stanzas, baseStanza())
	s, _, _ := newSPAEnv(b, basePolicy(stanzas...), time.Now)
	wires := make([][]byte, 2000)
	for i := range wires {
		m := baseMessage()
		m.Random, m.Timestamp = "", time.Now().Unix()
		m.Message = fmt.Sprintf("10.99.%d.%d,tcp/22", i/250, i%250+1)
		wires[i] = encodeSPA(b, m, keysA)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(wires) {
			b.StopTimer()
			s, _, _ = newSPAEnv(b, basePolicy(stanzas...), time.Now)
			i = 0
			b.StartTimer()
		}
		if r := s.Handle(context.Background(), pkt("10.99.0.2", wires[i])); r.Reason != Granted {
			b.Fatal(r.Reason, r.Err)
		}
		i++
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

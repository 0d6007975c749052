package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/gpgkeys"
	"github.com/sesame-spa/sesame/spa"
	"github.com/sesame-spa/sesame/spa/gnupg"
)

// gpgWorld holds in-memory OpenPGP keys standing in for a GnuPG home (the real home is
// gpgkeys' and the interop tests' business): the server's secret key, a listed client, a
// stranger, and which keys are valid.
type gpgWorld struct {
	server, client, stranger *openpgp.Entity
	valid                    map[string]byte
}

var (
	worldOnce sync.Once
	world     gpgWorld
)

func newGPGWorld(tb testing.TB) gpgWorld {
	tb.Helper()
	worldOnce.Do(func() {
		gen := func(name string) *openpgp.Entity {
			e, err := openpgp.NewEntity(name, "", name+"@test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA,
				Curve: packet.Curve25519, Time: func() time.Time { return testNow.Add(-time.Hour) }})
			if err != nil {
				panic(err)
			}
			return e
		}
		world = gpgWorld{server: gen("server"), client: gen("client"), stranger: gen("stranger"), valid: map[string]byte{}}
		world.valid[hexFpr(world.client)] = 'f'
		world.valid[hexFpr(world.stranger)] = 'f'
	})
	return world
}

func hexFpr(e *openpgp.Entity) string { return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint) }
func shortID(e *openpgp.Entity) string {
	f := hexFpr(e)
	return f[len(f)-8:]
}

func pubOf(tb testing.TB, e *openpgp.Entity) *openpgp.Entity {
	var buf bytes.Buffer
	if err := e.Serialize(&buf); err != nil {
		tb.Fatal(err)
	}
	p, err := openpgp.ReadEntity(packet.NewReader(&buf))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// loader is the KeyLoader of the world: the server's key for every Spec.
func (w gpgWorld) loader(tb testing.TB) KeyLoader {
	return func(gpgkeys.Spec) (*gpgkeys.Keys, error) {
		return &gpgkeys.Keys{Secret: openpgp.EntityList{w.server},
			Public: openpgp.EntityList{pubOf(tb, w.server), pubOf(tb, w.client), pubOf(tb, w.stranger)}, Validity: w.valid}, nil
	}
}

// wire encodes m to the server, signed by signer (nil: unsigned), with hmac's HMAC key.
func (w gpgWorld) wire(tb testing.TB, m spa.Message, to, signer *openpgp.Entity, hmac spa.Keys) []byte {
	tb.Helper()
	s, err := gnupg.Encode(&m, hmac, pubOf(tb, to), signer, rand.Reader, func() time.Time { return testNow })
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(s)
}

func gpgStanza(w gpgWorld) fwconf.Stanza {
	st := baseStanza()
	st.Keys = spa.Keys{}
	st.GPG = fwconf.GPG{Enabled: true, AllowNoPW: true, RequireSig: true, RemoteIDs: []string{shortID(w.client)}}
	return st
}

// countingGnuPG wraps the default GnuPG builder and counts decryption attempts.
type countingGnuPG struct {
	GnuPGOpener
	n *atomic.Int64
}

func (c countingGnuPG) Decode(wire []byte) (*spa.Message, error) {
	c.n.Add(1)
	return c.GnuPGOpener.Decode(wire)
}

type gpgEnv struct {
	s     *Server
	fw    *fakeFirewall
	now   *time.Time
	opens *atomic.Int64
}

func newGPGEnv(tb testing.TB, p Policy, budget Budget) *gpgEnv {
	tb.Helper()
	w := newGPGWorld(tb)
	e := &gpgEnv{fw: &fakeFirewall{}, opens: &atomic.Int64{}}
	now := testNow
	e.now = &now
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return *e.now }
	keys := newKeyCache(w.loader(tb))
	s, err := New(Config{Policy: p, Firewall: e.fw, Cache: newFakeCache(), Now: clock, GnuPGBudget: budget,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		GnuPG: func(st *fwconf.Stanza) (GnuPGOpener, error) {
			o, err := NewGnuPGOpener(st, keys.get, clock)
			if err != nil {
				return nil, err
			}
			return countingGnuPG{o, e.opens}, nil
		}})
	if err != nil {
		tb.Fatal(err)
	}
	e.s = s
	return e
}

func TestHandleGnuPG(t *testing.T) {
	w := newGPGWorld(t)
	hmacKeys := spa.Keys{HMACKey: []byte("gpg-hmac-key"), HMACType: spa.SHA256}
	msg := baseMessage()
	msg.Random = ""
	rijndael := baseStanza()
	rijndael.Num = 2
	cases := []struct {
		name    string
		stanzas func(g fwconf.Stanza) []fwconf.Stanza
		wire    func() []byte
		want    Reason
	}{
		{"signed by listed client", nil, func() []byte { return w.wire(t, msg, w.server, w.client, spa.Keys{}) }, Granted},
		{"unsigned", nil, func() []byte { return w.wire(t, msg, w.server, nil, spa.Keys{}) }, NotSigned},
		{"signed by a stranger", nil, func() []byte { return w.wire(t, msg, w.server, w.stranger, spa.Keys{}) }, SignerNotAllowed},
		{"stranger by fingerprint", func(g fwconf.Stanza) []fwconf.Stanza {
			g.GPG.RemoteIDs, g.GPG.FingerprintIDs = nil, []string{hexFpr(w.stranger)}
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, w.stranger, spa.Keys{}) }, Granted},
		{"signer not valid", func(g fwconf.Stanza) []fwconf.Stanza {
			g.GPG.RemoteIDs = []string{shortID(w.server)}
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, w.server, spa.Keys{}) }, SignerNotValid},
		{"signer not valid, ignored", func(g fwconf.Stanza) []fwconf.Stanza {
			g.GPG.RemoteIDs, g.GPG.IgnoreSigVerifyError = []string{shortID(w.server)}, true
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, w.server, spa.Keys{}) }, Granted},
		{"signatures off", func(g fwconf.Stanza) []fwconf.Stanza {
			g.GPG.RequireSig = false
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, nil, spa.Keys{}) }, Granted},
		{"wrong recipient", nil, func() []byte { return w.wire(t, msg, w.client, w.client, spa.Keys{}) }, DecryptFailed},
		{"HMAC", func(g fwconf.Stanza) []fwconf.Stanza {
			g.Keys = hmacKeys
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, w.client, hmacKeys) }, Granted},
		{"HMAC forged", func(g fwconf.Stanza) []fwconf.Stanza {
			g.Keys = hmacKeys
			return []fwconf.Stanza{g}
		}, func() []byte { return w.wire(t, msg, w.server, w.client, spa.Keys{HMACKey: []byte("other")}) }, BadHMAC},
		{"GnuPG packet, Rijndael stanza", func(fwconf.Stanza) []fwconf.Stanza { return []fwconf.Stanza{rijndael} },
			func() []byte { return w.wire(t, msg, w.server, w.client, spa.Keys{}) }, WrongMode},
		{"Rijndael packet, GnuPG stanza", nil, func() []byte { return encodeSPA(t, msg, keysA) }, WrongMode},
		{"both kinds, Rijndael packet", func(g fwconf.Stanza) []fwconf.Stanza {
			g.Keys = keysA
			return []fwconf.Stanza{g}
		}, func() []byte { return encodeSPA(t, msg, keysA) }, Granted},
		{"GnuPG stanza then Rijndael stanza", func(g fwconf.Stanza) []fwconf.Stanza { return []fwconf.Stanza{g, rijndael} },
			func() []byte { return encodeSPA(t, msg, keysA) }, Granted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := []fwconf.Stanza{gpgStanza(w)}
			if c.stanzas != nil {
				st = c.stanzas(gpgStanza(w))
			}
			e := newGPGEnv(t, basePolicy(st...), Budget{})
			res := e.s.Handle(context.Background(), pkt("10.99.0.2", c.wire()))
			if res.Reason != c.want {
				t.Fatalf("reason %v (%v), want %v", res.Reason, res.Err, c.want)
			}
			if c.want == Granted && len(e.fw.list()) != 1 {
				t.Fatalf("grants %v", e.fw.list())
			}
		})
	}
}

// TestGnuPGForgeryCostsNoDecryption: with an HMAC key, Run's reader settles a forged GnuPG
// packet with one HMAC; no decryption is attempted.
func TestGnuPGForgeryCostsNoDecryption(t *testing.T) {
	w := newGPGWorld(t)
	g := gpgStanza(w)
	g.Keys = spa.Keys{HMACKey: []byte("gpg-hmac-key"), HMACType: spa.SHA256}
	e := newGPGEnv(t, basePolicy(g), Budget{})
	m := baseMessage()
	forged := w.wire(t, m, w.server, w.client, spa.Keys{HMACKey: []byte("guess")})
	for range 50 {
		if !e.s.precheck(context.Background(), pkt("10.99.0.2", forged)) {
			t.Fatal("forged GnuPG packet not settled by the precheck")
		}
	}
	if n := e.opens.Load(); n != 0 {
		t.Fatalf("%d decryptions for forged packets", n)
	}
	if s := e.s.Stats(); s.ByReason[BadHMAC] != 50 {
		t.Fatalf("stats %+v", s.ByReason)
	}
}

// TestGnuPGBudget: without an HMAC key, a flooding source gets SourceBurst decryptions, then
// SourceRate per second; another source still gets its knock through; the total bucket caps
// everything; the precheck refuses over-budget packets without handing them on.
func TestGnuPGBudget(t *testing.T) {
	w := newGPGWorld(t)
	e := newGPGEnv(t, basePolicy(gpgStanza(w)), Budget{Rate: 10, Burst: 8, SourceRate: 1, SourceBurst: 3})
	m := baseMessage()
	forged := w.wire(t, m, w.server, w.stranger, spa.Keys{}) // decrypts, then refused: signer not listed
	handle := func(src string, wire []byte) Reason { return e.s.Handle(context.Background(), pkt(src, wire)).Reason }
	for i := range 3 {
		if r := handle("10.99.0.66", forged); r != SignerNotAllowed {
			t.Fatalf("flood packet %d: %v", i, r)
		}
	}
	if r := handle("10.99.0.66", forged); r != Throttled {
		t.Fatalf("over the source's burst: %v", r)
	}
	if e.s.precheck(context.Background(), pkt("10.99.0.66", forged)) != true {
		t.Fatal("precheck did not settle an over-budget packet")
	}
	if n := e.opens.Load(); n != 3 {
		t.Fatalf("%d decryptions, want 3", n)
	}
	// Another source: its own bucket.
	good := w.wire(t, m, w.server, w.client, spa.Keys{})
	if r := handle("10.99.0.2", good); r != Granted {
		t.Fatalf("legitimate knock during the flood: %v", r)
	}
	// One second later the flooder has one more token.
	*e.now = e.now.Add(time.Second)
	if r := handle("10.99.0.66", forged); r != SignerNotAllowed {
		t.Fatalf("after refill: %v", r)
	}
	if r := handle("10.99.0.66", forged); r != Throttled {
		t.Fatalf("after refill, second: %v", r)
	}
	// The total bucket (8, 10/s): many sources drain it.
	for i := range 10 {
		handle(fmt.Sprintf("10.99.0.%d", 100+i), forged)
	}
	if r := handle("10.99.0.3", good); r != Throttled {
		t.Fatalf("total budget: %v", r)
	}
	if n := e.opens.Load(); n > 3+1+1+8 {
		t.Fatalf("%d decryptions, the total bucket allows %d", n, 3+1+1+8)
	}
}

func TestBudgetBuckets(t *testing.T) {
	t0 := testNow
	b := newBudget(Budget{Rate: 2, Burst: 2, SourceRate: 1, SourceBurst: 1}, t0)
	b.rnd = func() float64 { return 0 } // every fair-share draw admits: the buckets alone decide here
	a, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	steps := []struct {
		src  netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true}, {a, 0, false}, {c, 0, true}, {c, 0, false}, // per source
		{a, time.Second, true}, {c, time.Second, true}, // refilled, total 2 per second
		{netip.MustParseAddr("192.0.2.3"), time.Second, false}, // total empty (its source's token is spent)
		{netip.MustParseAddr("192.0.2.4"), 1500 * time.Millisecond, true},
	}
	for i, s := range steps {
		if !b.allow(s.src, t0.Add(s.at), false) && s.want {
			t.Fatalf("step %d: peek refused", i)
		}
		if got := b.allow(s.src, t0.Add(s.at), true); got != s.want {
			t.Fatalf("step %d: %v, want %v", i, got, s.want)
		}
	}
	// A full table of sources is swept of refilled entries.
	b = newBudget(Budget{SourceBurst: 1}, t0)
	for i := range maxBudgetSources + 10 {
		b.allow(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0.Add(time.Duration(i)*time.Hour), true)
	}
	if len(b.bySrc) > maxBudgetSources {
		t.Fatalf("%d sources kept", len(b.bySrc))
	}
}

// TestGnuPGReloadErrors: a key that cannot be loaded keeps the old policy and names the stanza.
func TestGnuPGReloadErrors(t *testing.T) {
	w := newGPGWorld(t)
	s, err := New(Config{Policy: basePolicy(baseStanza()), Firewall: &fakeFirewall{}, Now: func() time.Time { return testNow },
		GnuPGKeys: func(gpgkeys.Spec) (*gpgkeys.Keys, error) {
			return nil, errors.New("gnupg: GPG_HOME_DIR /nope: missing")
		}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Reload(basePolicy(gpgStanza(w)))
	if err == nil || !strings.Contains(err.Error(), "stanza #1 (access.conf:1)") || !strings.Contains(err.Error(), "/nope") {
		t.Fatalf("reload error %v", err)
	}
}

// BenchmarkGnuPGGrant is the pipeline cost of one valid GnuPG knock (Ed25519/Curve25519 keys,
// fake firewall): GnuPG knocks accepted per second is 1/this.
func BenchmarkGnuPGGrant(b *testing.B) {
	w := newGPGWorld(b)
	e := newGPGEnv(b, basePolicy(gpgStanza(w)), Budget{Rate: 1e9, Burst: 1 << 30, SourceRate: 1e9, SourceBurst: 1 << 30})
	wires := make([][]byte, 500)
	for i := range wires {
		m := baseMessage()
		m.Random = ""
		wires[i] = w.wire(b, m, w.server, w.client, spa.Keys{})
	}
	i := 0
	for b.Loop() {
		if r := e.s.Handle(context.Background(), pkt("10.99.0.2", wires[i%len(wires)])); r.Reason != Granted && r.Reason != Replay {
			b.Fatal(r.Reason, r.Err)
		}
		i++
	}
}

// BenchmarkGnuPGForged is the cost of one forged GnuPG packet on Run's reader: with an HMAC
// key (one HMAC), and without one while the budget lasts (one decryption) and once it is
// exhausted (a token-bucket check).
func BenchmarkGnuPGForged(b *testing.B) {
	w := newGPGWorld(b)
	m := baseMessage()
	for _, c := range []struct {
		name   string
		hmac   bool
		budget Budget
	}{
		{"hmac", true, Budget{}},
		{"nohmac-decrypt", false, Budget{Rate: 1e9, Burst: 1 << 30, SourceRate: 1e9, SourceBurst: 1 << 30}},
		{"nohmac-throttled", false, Budget{}},
	} {
		b.Run(c.name, func(b *testing.B) {
			g := gpgStanza(w)
			if c.hmac {
				g.Keys = spa.Keys{HMACKey: []byte("gpg-hmac-key"), HMACType: spa.SHA256}
			}
			e := newGPGEnv(b, basePolicy(g), c.budget)
			forged := w.wire(b, m, w.server, w.stranger, spa.Keys{HMACKey: []byte("guess")})
			if !c.hmac {
				forged = w.wire(b, m, w.server, w.stranger, spa.Keys{})
			}
			for b.Loop() {
				if !e.s.precheck(context.Background(), pkt("10.99.0.66", forged)) {
					e.s.Handle(context.Background(), pkt("10.99.0.66", forged))
				}
			}
		})
	}
}

// TestBudgetFairShare: a flood from 64 sources (spoofed, say), each within its own bucket,
// offers about three times the total rate. A valid knock arriving now and then still gets about
// its fair share of the decryptions (Rate / demand), instead of none because the flood takes
// every token the moment it refills; and the total stays bounded.
func TestBudgetFairShare(t *testing.T) {
	t0 := testNow
	b := newBudget(Budget{}, t0) // 20/s total, 1/s per source
	b.rnd = mrand.New(mrand.NewPCG(1, 2)).Float64
	const seconds = 120
	valid := netip.MustParseAddr("198.51.100.7")
	admitted, validOK, validTried := 0, 0, 0
	for ms := 0; ms < seconds*1000; ms++ {
		now := t0.Add(time.Duration(ms) * time.Millisecond)
		// Each of the 64 flooding sources sends 10 packets a second, spread out.
		for src := range 64 {
			if (ms+src*15)%100 == 0 {
				if b.allow(netip.AddrFrom4([4]byte{203, 0, 113, byte(src)}), now, true) {
					admitted++
				}
			}
		}
		if ms%2000 == 1000 {
			validTried++
			if b.allow(valid, now, true) {
				validOK++
				admitted++
			}
		}
	}
	share := float64(validOK) / float64(validTried)
	t.Logf("valid knocks admitted: %d of %d (%.0f%%); decryptions %d in %d s", validOK, validTried, 100*share, admitted, seconds)
	if share < 0.1 {
		t.Errorf("valid knocks got %.0f%% of their chances, want a fair share (about 20/65)", 100*share)
	}
	if max := 20*seconds + 40; admitted > max {
		t.Errorf("%d decryptions in %d s, the total bucket allows %d", admitted, seconds, max)
	}
}

package server

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/spa"
)

// fakeGnuPG is a GnuPG Opener that fails every packet with err.
type fakeGnuPG struct{ err error }

func (f fakeGnuPG) VerifyCheckedHMAC(w []byte) ([]byte, error) { return w, nil }
func (f fakeGnuPG) Decode([]byte) (*spa.Message, error)        { return nil, f.err }
func (fakeGnuPG) HasHMAC() bool                                { return true }

// logOf runs one packet through Handle, and through the reader's cheap checks when they settle
// it, on servers built from cfg, and returns the log line(s) of each path.
func logOf(t *testing.T, cfg Config, in capture.Packet) (handle, cheap string, res Result) {
	t.Helper()
	run := func(f func(s *Server)) string {
		lb := &logBuffer{}
		c := cfg
		c.Logger, c.Firewall, c.Now = lb.logger(), &fakeFirewall{}, func() time.Time { return testNow }
		s, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		f(s)
		return lb.String()
	}
	handle = run(func(s *Server) { res = s.Handle(context.Background(), in) })
	cheap = run(func(s *Server) { s.cheap(context.Background(), in) })
	return handle, cheap, res
}

// wantLog checks that the log holds exactly one rejection line with every part.
func wantLog(t *testing.T, path, log string, parts ...string) {
	t.Helper()
	if strings.Count(log, "\n") != 1 {
		t.Errorf("%s: want one line:\n%s", path, log)
	}
	for _, p := range parts {
		if !strings.Contains(log, p) {
			t.Errorf("%s: log lacks %q:\n%s", path, p, log)
		}
	}
}

func stanzaN(n int, src string, k spa.Keys) fwconf.Stanza {
	st := baseStanza()
	st.Num, st.Line, st.Keys = n, 10*n, k
	st.Source = []netip.Prefix{netip.MustParsePrefix(src)}
	return st
}

// A Rijndael packet of 400 characters or more reaches only GnuPG openers: with matching
// Rijndael-only stanzas the log says so and names them; with a GnuPG stanza among them, its
// result is the reason.
func TestLogLongPacket(t *testing.T) {
	m := baseMessage()
	var ports []string
	for i := range 14 {
		ports = append(ports, fmt.Sprintf("tcp/%d", 1000+i))
	}
	m.Message = "10.99.0.2," + strings.Join(ports, ",")
	wire := encodeSPA(t, m, keysA)
	if len(wire) < gnupgLen {
		t.Fatalf("packet of %d characters", len(wire))
	}
	in := pkt("10.99.0.2", wire)
	p := basePolicy(stanzaN(1, "10.99.0.0/24", keysA), stanzaN(2, "10.98.0.0/24", keysA), stanzaN(3, "10.0.0.0/8", keysB))
	h, c, res := logOf(t, Config{Policy: p, Cache: newFakeCache()}, in)
	if res.Reason != WrongMode || res.Stanza != 1 {
		t.Errorf("result %+v", res)
	}
	for path, log := range map[string]string{"Handle": h, "cheap": c} {
		wantLog(t, path, log, `reason="no stanza for this encryption type" stanza=1 stanzas=1,3 `,
			`detail="a packet of 400 characters or more is GnuPG and no matching stanza tried has GnuPG keys"`)
	}

	gpg := stanzaN(3, "10.0.0.0/8", spa.Keys{})
	gpg.GPG = fwconf.GPG{Enabled: true, AllowNoPW: true, DisableSig: true}
	p = basePolicy(stanzaN(1, "10.99.0.0/24", keysA), gpg)
	cfg := Config{Policy: p, Cache: newFakeCache(),
		GnuPG: func(*fwconf.Stanza) (GnuPGOpener, error) {
			return fakeGnuPG{fmt.Errorf("gnupg: %w", spa.ErrDecrypt)}, nil
		}}
	h, _, res = logOf(t, cfg, in)
	if res.Reason != DecryptFailed || res.Stanza != 3 {
		t.Errorf("result %+v", res)
	}
	wantLog(t, "Handle", h, `reason="decryption failed" stanza=3 stanzas=1,3 err="gnupg: `)
}

// A packet that fails the HMAC of every matching stanza names them all.
func TestLogHMACEveryStanza(t *testing.T) {
	other := spa.Keys{Key: []byte("k3"), HMACKey: []byte("h3")}
	p := basePolicy(stanzaN(1, "10.99.0.0/24", keysB), stanzaN(2, "10.98.0.0/24", keysB), stanzaN(3, "10.0.0.0/8", other),
		stanzaN(4, "10.99.0.2/32", keysB))
	p.Stanzas[3].AccessExpire = testNow.Add(-time.Hour) // expired: matched, not tried
	in := pkt("10.99.0.2", encodeSPA(t, baseMessage(), keysA))
	h, c, res := logOf(t, Config{Policy: p, Cache: newFakeCache()}, in)
	if res.Reason != BadHMAC || res.Stanza != 1 {
		t.Errorf("result %+v", res)
	}
	for path, log := range map[string]string{"Handle": h, "cheap": c} {
		wantLog(t, path, log, `reason="HMAC mismatch" stanza=1 stanzas=1,3,4 `)
	}
}

// A stanza whose SOURCE matches but whose DESTINATION does not is named with its rule (sniff
// mode, and UDP-server mode where the destination is 0.0.0.0); an unknown source has no detail.
func TestLogDestinationMismatch(t *testing.T) {
	st := stanzaN(2, "10.99.0.0/24", keysA)
	st.Destination = []netip.Prefix{netip.MustParsePrefix("10.99.0.3/32"), netip.MustParsePrefix("10.99.1.0/24")}
	st.Raw = map[string]string{"DESTINATION": "10.99.0.3, 10.99.1.0/24"}
	st3 := stanzaN(3, "10.99.0.0/24", keysA)
	st3.Destination = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
	p := basePolicy(stanzaN(1, "10.98.0.0/24", keysA), st, st3)
	in := pkt("10.99.0.2", encodeSPA(t, baseMessage(), keysA))
	h, c, res := logOf(t, Config{Policy: p, Cache: newFakeCache()}, in)
	if res.Reason != UnknownSource || res.Stanza != 0 {
		t.Errorf("result %+v", res)
	}
	for path, log := range map[string]string{"Handle": h, "cheap": c} {
		wantLog(t, path, log, `reason="no stanza for source" stanza=0 `,
			`detail="SOURCE matches, but destination 10.99.0.1 is not in DESTINATION 10.99.0.3, 10.99.1.0/24 of stanza #2 (access.conf:20); DESTINATION 192.0.2.1/32 of stanza #3 (access.conf:30)"`)
	}
	in.Dst = netip.AddrPort{}
	h, _, _ = logOf(t, Config{Policy: p, Cache: newFakeCache()}, in)
	wantLog(t, "UDP mode", h, `detail="SOURCE matches, but destination 0.0.0.0 is not in DESTINATION`)
	h, _, _ = logOf(t, Config{Policy: p, Cache: newFakeCache()}, pkt("10.97.0.2", in.Payload))
	wantLog(t, "unknown source", h, `reason="no stanza for source" stanza=0`)
	if strings.Contains(h, "detail=") {
		t.Errorf("unknown source with a detail:\n%s", h)
	}
}

// The digest file line of a granted packet records its protocol and addresses.
func TestDigestRecordsPacket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "digest.cache")
	cache, err := replay.OpenFile(path, replay.FileOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	s, _, _ := newSPAEnv(t, basePolicy(baseStanza()), func() time.Time { return testNow })
	s.cache = cache
	in := pkt("10.99.0.2", encodeSPA(t, baseMessage(), keysA))
	if res := s.Handle(context.Background(), in); res.Reason != Granted {
		t.Fatalf("result %+v", res)
	}
	data, _ := os.ReadFile(path)
	want := spa.ReplayDigest(in.Payload) + " 17 10.99.0.2 40000 10.99.0.1 62201 "
	if !strings.Contains(string(data), want) {
		t.Errorf("digest file lacks %q:\n%s", want, data)
	}
}

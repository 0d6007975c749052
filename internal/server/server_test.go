package server

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

var (
	testNow = time.Unix(1795432440, 0)
	keysA   = spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest")}
	keysB   = spa.Keys{Key: []byte("otherkey"), HMACKey: []byte("otherhmac")}
)

type env struct {
	t     *testing.T
	s     *Server
	codec *fakeCodec
	fw    *fakeFirewall
	cache *fakeCache
	log   *logBuffer
}

func baseStanza() fwconf.Stanza {
	return fwconf.Stanza{
		File: "access.conf", Line: 1, Num: 1,
		Source:          []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24"), netip.MustParsePrefix("fd99::/64")},
		Keys:            keysA,
		FWAccessTimeout: 30 * time.Second,
		MaxFWTimeout:    300 * time.Second,
	}
}

func basePolicy(stanzas ...fwconf.Stanza) Policy {
	return Policy{Stanzas: stanzas, PacketAging: true, MaxPacketAge: 120 * time.Second, ReplayMargin: 10 * time.Second}
}

func newEnv(t *testing.T, p Policy) *env {
	t.Helper()
	e := &env{t: t, codec: newFakeCodec(), fw: &fakeFirewall{}, cache: newFakeCache(), log: &logBuffer{}}
	s, err := New(Config{Policy: p, Firewall: e.fw, Cache: e.cache, NewOpener: e.codec.opener, Logger: e.log.logger(),
		Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

func baseMessage() spa.Message {
	return spa.Message{Random: "1234567890123456", Username: "root", Timestamp: testNow.Unix(), Version: "3.0.0",
		Type: spa.AccessMsg, Message: "10.99.0.2,tcp/22"}
}

func pkt(src string, wire []byte) capture.Packet {
	return capture.Packet{Src: netip.AddrPortFrom(netip.MustParseAddr(src), 40000),
		Dst: netip.AddrPortFrom(netip.MustParseAddr("10.99.0.1"), 62201), Proto: 17, Payload: wire}
}

// dstGrant is g limited to destination dst (Policy.DestinationRule).
func dstGrant(g firewall.Grant, dst string) firewall.Grant {
	g.Dst = netip.MustParseAddr(dst)
	return g
}

func grant(src, proto string, port uint16, d time.Duration) firewall.Grant {
	return firewall.Grant{Src: netip.MustParseAddr(src), Proto: protoNum(proto), Port: port, Timeout: d}
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name    string
		stanza  func(*fwconf.Stanza)
		policy  func(*Policy)
		msg     func(*spa.Message)
		keys    *spa.Keys
		src     string
		dst     string // "none": no destination (UDP-server mode)
		want    Reason
		grants  []firewall.Grant
		stanzaN int
	}{
		{name: "granted", want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "several ports", msg: func(m *spa.Message) { m.Message = "10.99.0.2,tcp/22,udp/53" }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second), grant("10.99.0.2", "udp", 53, 30*time.Second)}},
		{name: "third party allow-IP", msg: func(m *spa.Message) { m.Message = "10.99.0.7,tcp/22" }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.7", "tcp", 22, 30*time.Second)}},
		{name: "wrong key", keys: &spa.Keys{Key: []byte("wrong"), HMACKey: keysA.HMACKey}, want: DecryptFailed, stanzaN: 1},
		{name: "wrong HMAC", keys: &spa.Keys{Key: keysA.Key, HMACKey: []byte("wrong")}, want: BadHMAC, stanzaN: 1},
		{name: "unknown source", src: "10.98.0.2", want: UnknownSource},
		{name: "too old", msg: func(m *spa.Message) { m.Timestamp -= 121 }, want: TooOld, stanzaN: 1},
		{name: "old but within age", msg: func(m *spa.Message) { m.Timestamp -= 120 }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "too new", msg: func(m *spa.Message) { m.Timestamp += 121 }, want: TooNew, stanzaN: 1},
		{name: "aging off", policy: func(p *Policy) { p.PacketAging = false }, msg: func(m *spa.Message) { m.Timestamp -= 100000 },
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "username", stanza: func(s *fwconf.Stanza) { s.RequireUsername = "alice" }, want: UsernameMismatch, stanzaN: 1},
		{name: "username ok", stanza: func(s *fwconf.Stanza) { s.RequireUsername = "root" }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "port not open", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 80)} }, want: PortNotAllowed, stanzaN: 1},
		{name: "one of ports not open", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 22)} },
			msg: func(m *spa.Message) { m.Message = "10.99.0.2,tcp/22,tcp/23" }, want: PortNotAllowed, stanzaN: 1},
		{name: "port open", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("udp", 22), pp("tcp", 22)} },
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "restricted port", stanza: func(s *fwconf.Stanza) { s.RestrictPorts = []spa.ProtoPort{pp("tcp", 22)} }, want: RestrictedPort, stanzaN: 1},
		{name: "restricted other proto", stanza: func(s *fwconf.Stanza) { s.RestrictPorts = []spa.ProtoPort{pp("udp", 22)} },
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "expired stanza", stanza: func(s *fwconf.Stanza) { s.AccessExpire = testNow.Add(-time.Second) }, want: StanzaExpired, stanzaN: 1},
		{name: "stanza not yet expired", stanza: func(s *fwconf.Stanza) { s.AccessExpire = testNow.Add(time.Hour) }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		// fwknopd compares whole seconds (time(NULL) > expire): the stanza works through its last second.
		{name: "stanza expires this second", stanza: func(s *fwconf.Stanza) { s.AccessExpire = testNow }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "stanza expired within the previous second", stanza: func(s *fwconf.Stanza) { s.AccessExpire = testNow.Add(-time.Millisecond) },
			want: StanzaExpired, stanzaN: 1},
		{name: "0.0.0.0 uses source", msg: func(m *spa.Message) { m.Message = "0.0.0.0,tcp/22" }, src: "10.99.0.9", want: Granted,
			grants: []firewall.Grant{grant("10.99.0.9", "tcp", 22, 30*time.Second)}},
		{name: "0.0.0.0 with REQUIRE_SOURCE_ADDRESS", stanza: func(s *fwconf.Stanza) { s.RequireSourceAddress = true },
			msg: func(m *spa.Message) { m.Message = "0.0.0.0,tcp/22" }, want: SourceRequired, stanzaN: 1},
		{name: "source mismatch", stanza: func(s *fwconf.Stanza) { s.RequireSourceMatch = true },
			msg: func(m *spa.Message) { m.Message = "10.99.0.7,tcp/22" }, want: SourceMismatch, stanzaN: 1},
		{name: "source match", stanza: func(s *fwconf.Stanza) { s.RequireSourceMatch = true }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "client timeout", msg: func(m *spa.Message) { m.Type = spa.ClientTimeoutAccessMsg; m.ClientTimeout = 60 }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 60*time.Second)}},
		{name: "client timeout capped", msg: func(m *spa.Message) { m.Type = spa.ClientTimeoutAccessMsg; m.ClientTimeout = 1000 }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 300*time.Second)}},
		{name: "command", msg: func(m *spa.Message) { m.Type = spa.CommandMsg; m.Message = "10.99.0.2,echo hi" }, want: CommandRefused, stanzaN: 1},
		{name: "NAT", msg: func(m *spa.Message) { m.Type = spa.NATAccessMsg; m.NATAccess = "10.99.0.5,22" }, want: NATRefused, stanzaN: 1},
		{name: "local NAT", msg: func(m *spa.Message) { m.Type = spa.ClientTimeoutLocalNATAccessMsg; m.ClientTimeout = 5 }, want: NATRefused, stanzaN: 1},
		{name: "none/0 opens OPEN_PORTS", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 22), pp("udp", 53)} },
			msg: func(m *spa.Message) { m.Message = "10.99.0.2,none/0" }, want: Granted,
			grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second), grant("10.99.0.2", "udp", 53, 30*time.Second)}},
		{name: "none/0 without OPEN_PORTS", msg: func(m *spa.Message) { m.Message = "10.99.0.2,none/0" }, want: NoPorts, stanzaN: 1},
		{name: "bad allow-IP", msg: func(m *spa.Message) { m.Message = "10.99.0,tcp/22" }, want: BadAccess, stanzaN: 1},
		{name: "bad proto", msg: func(m *spa.Message) { m.Message = "10.99.0.2,sctp/22" }, want: BadAccess, stanzaN: 1},
		// One parser (spa.ParseAccess) decides, as strict as fwknopd: "none/0" in lower case only.
		{name: "NONE/0", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 22)} },
			msg: func(m *spa.Message) { m.Message = "10.99.0.2,NONE/0" }, want: BadAccess, stanzaN: 1},
		{name: "TCP/22", msg: func(m *spa.Message) { m.Message = "10.99.0.2,TCP/22" }, want: BadAccess, stanzaN: 1},
		{name: "zoned allow-IP", src: "fd99::2", msg: func(m *spa.Message) { m.Message = "fd99::2%eth0,tcp/22" }, want: BadAccess, stanzaN: 1},
		{name: "IPv4-mapped allow-IP", msg: func(m *spa.Message) { m.Message = "::ffff:10.99.0.2,tcp/22" }, want: BadAccess, stanzaN: 1},
		{name: "leading zero allow-IP", msg: func(m *spa.Message) { m.Message = "010.99.0.2,tcp/22" }, want: BadAccess, stanzaN: 1},
		{name: "none/0 with 0.0.0.0", stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 22)} },
			msg: func(m *spa.Message) { m.Message = "0.0.0.0,none/0" }, src: "10.99.0.9", want: Granted,
			grants: []firewall.Grant{grant("10.99.0.9", "tcp", 22, 30*time.Second)}},
		{name: "none/0 and RESTRICT_PORTS", stanza: func(s *fwconf.Stanza) {
			s.OpenPorts, s.RestrictPorts = []spa.ProtoPort{pp("tcp", 22)}, []spa.ProtoPort{pp("tcp", 22)}
		}, msg: func(m *spa.Message) { m.Message = "10.99.0.2,none/0" }, want: RestrictedPort, stanzaN: 1},
		{name: "IPv6 source and allow", src: "fd99::2", msg: func(m *spa.Message) { m.Message = "fd99::2,tcp/22" }, want: Granted,
			grants: []firewall.Grant{grant("fd99::2", "tcp", 22, 30*time.Second)}},
		{name: "IPv6 0.0.0.0", src: "fd99::2", msg: func(m *spa.Message) { m.Message = "0.0.0.0,tcp/22" }, want: Granted,
			grants: []firewall.Grant{grant("fd99::2", "tcp", 22, 30*time.Second)}},
		{name: "IPv4-mapped source", src: "::ffff:10.99.0.2", want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "IPv6 unknown source", src: "fd98::2", want: UnknownSource},
		{name: "SOURCE ANY", stanza: func(s *fwconf.Stanza) { s.Source, s.SourceAny = nil, true }, src: "192.0.2.1",
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "DESTINATION match", stanza: func(s *fwconf.Stanza) { s.Destination = []netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")} },
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "DESTINATION mismatch", stanza: func(s *fwconf.Stanza) { s.Destination = []netip.Prefix{netip.MustParsePrefix("10.99.0.3/32")} },
			want: UnknownSource},
		{name: "DESTINATION in UDP mode", stanza: func(s *fwconf.Stanza) { s.Destination = []netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")} },
			dst: "none", want: UnknownSource},
		{name: "DESTINATION 0.0.0.0/0 in UDP mode", stanza: func(s *fwconf.Stanza) { s.Destination = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")} },
			dst: "none", want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "test mode", policy: func(p *Policy) { p.TestMode = true }, want: Granted},
		{name: "destination rule", policy: func(p *Policy) { p.DestinationRule = true }, want: Granted,
			grants: []firewall.Grant{dstGrant(grant("10.99.0.2", "tcp", 22, 30*time.Second), "10.99.0.1")}},
		{name: "destination rule, third party allow-IP", policy: func(p *Policy) { p.DestinationRule = true },
			msg: func(m *spa.Message) { m.Message = "10.99.0.7,tcp/22,udp/53" }, want: Granted,
			grants: []firewall.Grant{dstGrant(grant("10.99.0.7", "tcp", 22, 30*time.Second), "10.99.0.1"),
				dstGrant(grant("10.99.0.7", "udp", 53, 30*time.Second), "10.99.0.1")}},
		{name: "destination rule, no destination", policy: func(p *Policy) { p.DestinationRule = true }, dst: "none",
			want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "destination rule, IPv6 knock for an IPv4 allow-IP", policy: func(p *Policy) { p.DestinationRule = true },
			src: "fd99::2", dst: "fd99::1", want: Granted, grants: []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second)}},
		{name: "destination rule, IPv6", policy: func(p *Policy) { p.DestinationRule = true }, src: "fd99::2", dst: "fd99::1",
			msg: func(m *spa.Message) { m.Message = "fd99::2,tcp/22" }, want: Granted,
			grants: []firewall.Grant{dstGrant(grant("fd99::2", "tcp", 22, 30*time.Second), "fd99::1")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := baseStanza()
			if tc.stanza != nil {
				tc.stanza(&st)
			}
			p := basePolicy(st)
			if tc.policy != nil {
				tc.policy(&p)
			}
			e := newEnv(t, p)
			m := baseMessage()
			if tc.msg != nil {
				tc.msg(&m)
			}
			k := keysA
			if tc.keys != nil {
				k = *tc.keys
			}
			src := tc.src
			if src == "" {
				src = "10.99.0.2"
			}
			in := pkt(src, e.codec.add(m, k))
			if tc.dst == "none" {
				in.Dst = netip.AddrPort{}
			} else if tc.dst != "" {
				in.Dst = netip.AddrPortFrom(netip.MustParseAddr(tc.dst), 62201)
			}
			res := e.s.Handle(context.Background(), in)
			if res.Reason != tc.want {
				t.Fatalf("reason = %v (%v), want %v; log:\n%s", res.Reason, res.Err, tc.want, e.log)
			}
			if res.Stanza != tc.stanzaN && tc.want != Granted {
				t.Errorf("stanza = %d, want %d", res.Stanza, tc.stanzaN)
			}
			if got := e.fw.list(); !reflect.DeepEqual(got, tc.grants) {
				t.Errorf("grants = %v, want %v", got, tc.grants)
			}
			logs := e.log.String()
			if tc.want != Granted {
				want := "reason=" + quoteIfNeeded(tc.want.String())
				if !strings.Contains(logs, "src="+netip.MustParseAddr(src).Unmap().String()) || !strings.Contains(logs, want) {
					t.Errorf("log lacks src=/%s:\n%s", want, logs)
				}
				if n := strings.Count(logs, "\n"); n != 1 {
					t.Errorf("%d log lines, want 1:\n%s", n, logs)
				}
			}
			st1 := e.s.Stats()
			if st1.Packets != 1 || st1.ByReason[tc.want] != 1 {
				t.Errorf("stats = %+v", st1)
			}
		})
	}
}

func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, " =\"") {
		return `"` + s + `"`
	}
	return s
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	for _, w := range []string{"", "x", "U2FsdGVkX1aaaa", strings.Repeat("\xff", 2000)} {
		if res := e.s.Handle(context.Background(), pkt("10.99.0.2", []byte(w))); res.Reason != Malformed {
			t.Errorf("%q: reason %v", w, res.Reason)
		}
	}
	if n := len(e.fw.list()); n != 0 {
		t.Errorf("%d grants", n)
	}
	if s := e.s.Stats(); s.ByReason[Malformed] != 4 || s.Rejected() != 4 {
		t.Errorf("stats %+v", s)
	}
	// Each one but the empty payload (a TCP control segment) is a log line naming the source and
	// the reason (fail2ban reads these).
	if n := strings.Count(e.log.String(), `src=10.99.0.2 reason="malformed packet"`); n != 3 {
		t.Errorf("%d log lines for malformed packets, want 3:\n%s", n, e.log.String())
	}
}

func TestReplay(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	w := e.codec.add(baseMessage(), keysA)
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != Granted {
		t.Fatalf("first: %v", r.Reason)
	}
	if r := e.s.Handle(context.Background(), pkt("10.99.0.3", w)); r.Reason != Replay {
		t.Fatalf("second: %v", r.Reason)
	}
	if keep, _ := e.cache.keep(w); keep != 250*time.Second {
		t.Errorf("keep = %v, want 2*120s+10s", keep)
	}
	if n := len(e.fw.list()); n != 1 {
		t.Errorf("%d grants", n)
	}
}

// A packet rejected by policy is still recorded (fwknopd records before policy checks).
func TestReplayRecordedBeforePolicy(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	m := baseMessage()
	m.Timestamp -= 1000
	w := e.codec.add(m, keysA)
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != TooOld {
		t.Fatalf("first: %v", r.Reason)
	}
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != Replay {
		t.Fatalf("second: %v", r.Reason)
	}
}

// A packet that fails the HMAC is not recorded, so it is refused for its HMAC again.
func TestBadHMACNotRecorded(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	w := e.codec.add(baseMessage(), spa.Keys{Key: keysA.Key, HMACKey: []byte("nope")})
	for i := 0; i < 2; i++ {
		if r := e.s.Handle(context.Background(), pkt("10.99.0.2", w)); r.Reason != BadHMAC {
			t.Fatalf("try %d: %v", i, r.Reason)
		}
	}
	if e.cache.Len() != 0 {
		t.Errorf("cache has %d digests", e.cache.Len())
	}
}

func TestReplayKeepForeverWithoutAging(t *testing.T) {
	p := basePolicy(baseStanza())
	p.PacketAging = false
	e := newEnv(t, p)
	w := e.codec.add(baseMessage(), keysA)
	e.s.Handle(context.Background(), pkt("10.99.0.2", w))
	if keep, ok := e.cache.keep(w); !ok || keep != 0 {
		t.Errorf("keep = %v %v, want 0 (forever)", keep, ok)
	}
}

func TestReplayCacheFailureFailsClosed(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	e.cache.fail = errors.New("disk on fire")
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA))); r.Reason != InternalError {
		t.Fatalf("reason %v", r.Reason)
	}
	if n := len(e.fw.list()); n != 0 {
		t.Errorf("%d grants", n)
	}
}

func TestFirewallError(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	e.fw.err = errors.New("netlink says no")
	r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA)))
	if r.Reason != FirewallError || !strings.Contains(e.log.String(), "netlink says no") {
		t.Fatalf("reason %v, log %s", r.Reason, e.log)
	}
}

func TestStanzaOrder(t *testing.T) {
	s1 := baseStanza()
	s1.Keys = keysB
	s2 := baseStanza()
	s2.Num = 2
	s2.OpenPorts = []spa.ProtoPort{pp("tcp", 80)}
	s3 := baseStanza()
	s3.Num = 3
	s3.FWAccessTimeout = 5 * time.Second

	t.Run("first full success wins", func(t *testing.T) {
		e := newEnv(t, basePolicy(s1, s2, s3))
		r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA)))
		if r.Reason != Granted || r.Stanza != 3 {
			t.Fatalf("got %v stanza %d", r.Reason, r.Stanza)
		}
		if g := e.fw.list(); len(g) != 1 || g[0].Timeout != 5*time.Second {
			t.Errorf("grants %v", g)
		}
	})
	t.Run("furthest failure reported", func(t *testing.T) {
		e := newEnv(t, basePolicy(s1, s2))
		r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA)))
		if r.Reason != PortNotAllowed || r.Stanza != 2 {
			t.Fatalf("got %v stanza %d", r.Reason, r.Stanza)
		}
		if n := strings.Count(e.log.String(), "\n"); n != 1 {
			t.Errorf("%d log lines", n)
		}
	})
	t.Run("specific source first", func(t *testing.T) {
		a := baseStanza()
		a.Source = []netip.Prefix{netip.MustParsePrefix("10.99.0.5/32")}
		a.Keys = keysB
		b := baseStanza()
		b.Num = 2
		b.SourceAny, b.Source = true, nil
		e := newEnv(t, basePolicy(a, b))
		if r := e.s.Handle(context.Background(), pkt("10.99.0.5", e.codec.add(baseMessage(), keysB))); r.Reason != Granted || r.Stanza != 1 {
			t.Errorf("10.99.0.5: %v stanza %d", r.Reason, r.Stanza)
		}
		if r := e.s.Handle(context.Background(), pkt("10.99.0.6", e.codec.add(baseMessage(), keysB))); r.Reason != BadHMAC || r.Stanza != 2 {
			t.Errorf("10.99.0.6: %v stanza %d", r.Reason, r.Stanza)
		}
	})
}

func TestReload(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	st := baseStanza()
	st.Keys = keysB
	if err := e.s.Reload(basePolicy(st)); err != nil {
		t.Fatal(err)
	}
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA))); r.Reason != BadHMAC {
		t.Errorf("old keys after reload: %v", r.Reason)
	}
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysB))); r.Reason != Granted {
		t.Errorf("new keys after reload: %v", r.Reason)
	}
	bad := baseStanza()
	bad.Keys.Key = nil
	if err := e.s.Reload(basePolicy(bad)); err == nil {
		t.Error("reload accepted a stanza without KEY")
	}
}

func TestLogRateLimit(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	w := e.codec.add(baseMessage(), spa.Keys{Key: keysA.Key, HMACKey: []byte("nope")})
	for i := 0; i < 100; i++ {
		e.s.Handle(context.Background(), pkt("10.99.0.2", w))
	}
	e.s.Handle(context.Background(), pkt("10.99.0.3", w))
	logs := e.log.String()
	if n := strings.Count(logs, "src=10.99.0.2 "); n != defaultLogBurst {
		t.Errorf("%d lines for 10.99.0.2, want %d", n, defaultLogBurst)
	}
	if n := strings.Count(logs, "src=10.99.0.3 "); n != 1 {
		t.Errorf("%d lines for 10.99.0.3, want 1", n)
	}
	if s := e.s.Stats(); s.ByReason[BadHMAC] != 101 {
		t.Errorf("stats %+v", s)
	}
	// After the interval the next line reports what was suppressed.
	l := e.s.limiter
	ok, n := l.allow(netip.MustParseAddr("10.99.0.2"), testNow.Add(defaultLogInterval))
	if !ok || n != 80 {
		t.Errorf("allow after interval = %v, suppressed %d, want true 80", ok, n)
	}
}

// chanSource is a capture.Source fed from a channel. A send returns once Run's reader has the
// packet; closing ch ends the input (Read returns io.EOF), and Run returns once every packet
// it read is settled.
type chanSource struct {
	ch        chan capture.Packet
	closeOnce sync.Once
	done      chan struct{}
}

func newChanSource() *chanSource {
	return &chanSource{ch: make(chan capture.Packet), done: make(chan struct{})}
}

func (c *chanSource) Read() (capture.Packet, error) {
	select {
	case p, ok := <-c.ch:
		if !ok {
			return capture.Packet{}, io.EOF
		}
		return p, nil
	case <-c.done:
		return capture.Packet{}, errClosed
	}
}

func (c *chanSource) Close() error { c.closeOnce.Do(func() { close(c.done) }); return nil }

func TestRunConcurrentReplay(t *testing.T) {
	for _, workers := range []int{1, 4} {
		t.Run(strings.Repeat("w", workers), func(t *testing.T) {
			st := baseStanza()
			p := basePolicy(st)
			codec, fw, cache := newFakeCodec(), &fakeFirewall{}, newFakeCache()
			s, err := New(Config{Policy: p, Firewall: fw, Cache: cache, NewOpener: codec.opener, Workers: workers,
				Now: func() time.Time { return testNow }})
			if err != nil {
				t.Fatal(err)
			}
			src := newChanSource()
			done := make(chan error, 1)
			go func() { done <- s.Run(context.Background(), src) }()
			w := codec.add(baseMessage(), keysA)
			for i := 0; i < 50; i++ {
				src.ch <- pkt("10.99.0.2", w)
			}
			close(src.ch)
			if err := <-done; !errors.Is(err, io.EOF) {
				t.Fatalf("Run: %v, want the source's io.EOF", err)
			}
			st1 := s.Stats()
			if st1.Handled != 50 || st1.ByReason[Granted] != 1 || st1.ByReason[Replay] != 49 || len(fw.list()) != 1 {
				t.Errorf("stats %+v, grants %v", st1, fw.list())
			}
		})
	}
}

func pp(proto string, port uint16) spa.ProtoPort { return spa.ProtoPort{Proto: proto, Port: port} }

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if r.String() == "" || r.String() == "unknown" || r.Key() == "unknown" || seen[r.Key()] {
			t.Errorf("reason %d: %q %q", r, r.String(), r.Key())
		}
		seen[r.Key()] = true
	}
}

package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// natEnv is a server over firewall.Fake (which validates every grant as the real backend
// does), with a fake resolver that knows "svc.example" and counts its calls.
type natEnv struct {
	s       *Server
	codec   *fakeCodec
	fw      *firewall.Fake
	log     *logBuffer
	lookups int
}

func newNATEnv(t *testing.T, p Policy) *natEnv {
	t.Helper()
	e := &natEnv{codec: newFakeCodec(), fw: &firewall.Fake{Now: func() time.Time { return testNow }}, log: &logBuffer{}}
	if err := e.fw.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	resolve := func(ctx context.Context, network, host string) (netip.Addr, error) {
		e.lookups++
		if _, ok := ctx.Deadline(); !ok {
			t.Error("resolver called without a deadline")
		}
		switch {
		case host == "svc.example" && network == "ip4":
			return netip.MustParseAddr("10.50.0.5"), nil
		case host == "svc.example" && network == "ip6":
			return netip.MustParseAddr("fd50::5"), nil
		}
		return netip.Addr{}, errors.New("no such host")
	}
	s, err := New(Config{Policy: p, Firewall: e.fw, Cache: newFakeCache(), NewOpener: e.codec.opener,
		Logger: e.log.logger(), Now: func() time.Time { return testNow }, ResolveNAT: resolve})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

// live returns the Fake's grants without stanza and with their full timeout.
func (e *natEnv) live(t *testing.T) []firewall.Grant {
	t.Helper()
	es, err := e.fw.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var gs []firewall.Grant
	for _, en := range es {
		g := en.Grant
		g.Stanza = 0
		gs = append(gs, g)
	}
	return gs
}

var (
	cli4  = netip.MustParseAddr("10.99.0.2")
	gw4   = netip.MustParseAddr("10.99.0.1")
	svc4  = netip.MustParseAddr("10.50.0.5")
	cli6  = netip.MustParseAddr("fd99::2")
	gw6   = netip.MustParseAddr("fd99::1")
	svc6  = netip.MustParseAddr("fd50::5")
	t30   = 30 * time.Second
	snat4 = netip.MustParseAddr("192.0.2.9")
)

func fwd(src netip.Addr, port uint16, to netip.Addr, toPort uint16) firewall.Grant {
	return firewall.Grant{Src: src, Proto: firewall.ProtoTCP, Port: port, Timeout: t30, Kind: firewall.Forward, NATAddr: to, NATPort: toPort}
}

func lnat(src netip.Addr, port uint16, to netip.Addr, toPort uint16) firewall.Grant {
	g := fwd(src, port, to, toPort)
	g.Kind = firewall.LocalNAT
	return g
}

// TestNATTypesBySwitch runs every message type against every combination of the two NAT
// switches: types 2 and 4 need ENABLE_IPT_FORWARDING, 5 and 6 ENABLE_IPT_LOCAL_NAT, and the
// others are unaffected.
func TestNATTypesBySwitch(t *testing.T) {
	types := []spa.MessageType{spa.AccessMsg, spa.NATAccessMsg, spa.ClientTimeoutAccessMsg,
		spa.ClientTimeoutNATAccessMsg, spa.LocalNATAccessMsg, spa.ClientTimeoutLocalNATAccessMsg}
	for _, fw := range []bool{false, true} {
		for _, ln := range []bool{false, true} {
			for _, typ := range types {
				t.Run(fmt.Sprintf("fwd=%v/local=%v/type=%d", fw, ln, typ), func(t *testing.T) {
					p := basePolicy(baseStanza())
					p.NAT = NAT{Forwarding: fw, LocalNAT: ln}
					e := newNATEnv(t, p)
					m := baseMessage()
					m.Type = typ
					if typ.HasNAT() {
						m.NATAccess = "10.50.0.5,2222"
					}
					if typ == spa.ClientTimeoutAccessMsg || typ == spa.ClientTimeoutNATAccessMsg || typ == spa.ClientTimeoutLocalNATAccessMsg {
						m.ClientTimeout = 30
					}
					res := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(m, keysA)))
					nat, local := isNATType(typ)
					var want []firewall.Grant
					wantReason := Granted
					switch {
					case !nat:
						want = []firewall.Grant{{Src: cli4, Proto: firewall.ProtoTCP, Port: 22, Timeout: t30}}
					case local && ln:
						want = []firewall.Grant{lnat(cli4, 22, gw4, 2222)}
					case !local && fw:
						want = []firewall.Grant{fwd(cli4, 22, svc4, 2222)}
					default:
						wantReason = NATRefused
					}
					if res.Reason != wantReason {
						t.Fatalf("reason = %v (%v), want %v; log:\n%s", res.Reason, res.Err, wantReason, e.log)
					}
					if got := e.live(t); !reflect.DeepEqual(got, want) {
						t.Errorf("grants = %v, want %v", got, want)
					}
					if wantReason == NATRefused {
						sw := "ENABLE_IPT_FORWARDING"
						if local {
							sw = "ENABLE_IPT_LOCAL_NAT"
						}
						if !strings.Contains(e.log.String(), sw+" is not enabled") {
							t.Errorf("log does not name %s:\n%s", sw, e.log)
						}
					}
				})
			}
		}
	}
}

// TestNATShapes covers the stanza and fwknopd.conf settings that shape a NAT grant.
func TestNATShapes(t *testing.T) {
	on := NAT{Forwarding: true, LocalNAT: true, DNS: true}
	tests := []struct {
		name    string
		nat     NAT
		stanza  func(*fwconf.Stanza)
		typ     spa.MessageType
		natF    string // NAT field
		msg     string // access message ("" = 10.99.0.2,tcp/22)
		src     string
		dst     string // packet destination ("" = 10.99.0.1, "none" = none)
		want    Reason
		grants  []firewall.Grant
		lookups int
	}{
		{name: "forward", nat: on, typ: spa.NATAccessMsg, natF: "10.50.0.5,22", want: Granted,
			grants: []firewall.Grant{fwd(cli4, 22, svc4, 22)}},
		{name: "first port only", nat: on, typ: spa.NATAccessMsg, natF: "10.50.0.5,22", msg: "10.99.0.2,tcp/2222,udp/53",
			want: Granted, grants: []firewall.Grant{fwd(cli4, 2222, svc4, 22)}},
		{name: "OPEN_PORTS still checked", nat: on, stanza: func(s *fwconf.Stanza) { s.OpenPorts = []spa.ProtoPort{pp("tcp", 80)} },
			typ: spa.NATAccessMsg, natF: "10.50.0.5,22", want: PortNotAllowed},
		{name: "host name with DNS", nat: on, typ: spa.NATAccessMsg, natF: "svc.example,22", want: Granted,
			grants: []firewall.Grant{fwd(cli4, 22, svc4, 22)}, lookups: 1},
		{name: "IPv6 host name", nat: on, typ: spa.NATAccessMsg, natF: "svc.example,22", src: "fd99::2", msg: "fd99::2,tcp/22",
			dst: "fd99::1", want: Granted, grants: []firewall.Grant{fwd(cli6, 22, svc6, 22)}, lookups: 1},
		{name: "host name without DNS", nat: NAT{Forwarding: true}, typ: spa.NATAccessMsg, natF: "svc.example,22", want: NATRefused},
		{name: "host name that does not resolve", nat: on, typ: spa.NATAccessMsg, natF: "nx.example,22", want: NATRefused, lookups: 1},
		{name: "bad NAT port", nat: on, typ: spa.NATAccessMsg, natF: "10.50.0.5,0", want: BadAccess},
		{name: "bad NAT host", nat: on, typ: spa.NATAccessMsg, natF: "-x-,22", want: BadAccess},
		{name: "family mismatch", nat: on, typ: spa.NATAccessMsg, natF: "fd50::5,22", want: NATRefused},
		{name: "FORCE_NAT overrides", nat: on, stanza: func(s *fwconf.Stanza) { s.ForceNAT = netip.MustParseAddrPort("10.50.0.6:2200") },
			typ: spa.NATAccessMsg, natF: "svc.example,22", want: Granted,
			grants: []firewall.Grant{fwd(cli4, 22, netip.MustParseAddr("10.50.0.6"), 2200)}},
		{name: "FORCE_NAT on an access message", nat: on, stanza: func(s *fwconf.Stanza) { s.ForceNAT = netip.MustParseAddrPort("10.50.0.6:2200") },
			typ: spa.AccessMsg, want: Granted, grants: []firewall.Grant{fwd(cli4, 22, netip.MustParseAddr("10.50.0.6"), 2200)}},
		{name: "FORCE_NAT with local NAT only", nat: NAT{LocalNAT: true}, stanza: func(s *fwconf.Stanza) { s.ForceNAT = netip.MustParseAddrPort("10.99.0.1:2200") },
			typ: spa.AccessMsg, want: Granted, grants: []firewall.Grant{lnat(cli4, 22, gw4, 2200)}},
		{name: "FORCE_NAT without switches", stanza: func(s *fwconf.Stanza) { s.ForceNAT = netip.MustParseAddrPort("10.50.0.6:2200") },
			typ: spa.AccessMsg, want: NATRefused},
		{name: "local NAT ignores the message host", nat: on, typ: spa.LocalNATAccessMsg, natF: "10.50.0.5,2222", want: Granted,
			grants: []firewall.Grant{lnat(cli4, 22, gw4, 2222)}},
		{name: "local NAT without destination", nat: on, typ: spa.LocalNATAccessMsg, natF: "10.99.0.1,2222", dst: "none", want: NATRefused},
		{name: "local NAT IPv6", nat: on, typ: spa.LocalNATAccessMsg, natF: "fd99::1,2222", src: "fd99::2", msg: "fd99::2,tcp/22",
			dst: "fd99::1", want: Granted, grants: []firewall.Grant{lnat(cli6, 22, gw6, 2222)}},
		{name: "local NAT has no SNAT", nat: NAT{LocalNAT: true, SNAT: true}, stanza: func(s *fwconf.Stanza) { s.ForceMasquerade = true },
			typ: spa.LocalNATAccessMsg, natF: "10.99.0.1,2222", want: Granted, grants: []firewall.Grant{lnat(cli4, 22, gw4, 2222)}},
		{name: "ENABLE_IPT_SNAT masquerades", nat: NAT{Forwarding: true, SNAT: true}, typ: spa.NATAccessMsg, natF: "10.50.0.5,22",
			want: Granted, grants: []firewall.Grant{with(fwd(cli4, 22, svc4, 22), func(g *firewall.Grant) { g.Masquerade = true })}},
		{name: "SNAT_TRANSLATE_IP", nat: NAT{Forwarding: true, SNAT: true, SNATAddr: snat4}, typ: spa.NATAccessMsg, natF: "10.50.0.5,22",
			want: Granted, grants: []firewall.Grant{with(fwd(cli4, 22, svc4, 22), func(g *firewall.Grant) { g.SNAT = snat4 })}},
		{name: "SNAT_TRANSLATE_IP without ENABLE_IPT_SNAT", nat: NAT{Forwarding: true, SNATAddr: snat4}, typ: spa.NATAccessMsg,
			natF: "10.50.0.5,22", want: Granted, grants: []firewall.Grant{fwd(cli4, 22, svc4, 22)}},
		{name: "FORCE_SNAT", nat: NAT{Forwarding: true, SNAT: true, SNATAddr: snat4},
			stanza: func(s *fwconf.Stanza) { s.ForceSNAT = netip.MustParseAddr("192.0.2.10") }, typ: spa.NATAccessMsg, natF: "10.50.0.5,22",
			want: Granted, grants: []firewall.Grant{with(fwd(cli4, 22, svc4, 22), func(g *firewall.Grant) { g.SNAT = netip.MustParseAddr("192.0.2.10") })}},
		{name: "FORCE_MASQUERADE", nat: NAT{Forwarding: true}, stanza: func(s *fwconf.Stanza) { s.ForceMasquerade = true },
			typ: spa.NATAccessMsg, natF: "10.50.0.5,22",
			want: Granted, grants: []firewall.Grant{with(fwd(cli4, 22, svc4, 22), func(g *firewall.Grant) { g.Masquerade = true })}},
		{name: "DISABLE_DNAT", nat: on, stanza: func(s *fwconf.Stanza) { s.DisableDNAT = true }, typ: spa.NATAccessMsg, natF: "10.50.0.5,2222",
			want: Granted, grants: []firewall.Grant{with(fwd(cli4, 2222, svc4, 2222), func(g *firewall.Grant) { g.DisableDNAT = true })}},
		{name: "FORWARD_ALL", nat: NAT{Forwarding: true}, stanza: func(s *fwconf.Stanza) { s.ForwardAll, s.ForceMasquerade = true, true },
			typ: spa.NATAccessMsg, natF: "10.50.0.5,22", want: Granted, grants: []firewall.Grant{
				{Src: cli4, Timeout: t30, Kind: firewall.Forward, ForwardAll: true, Masquerade: true},
				with(fwd(cli4, 22, svc4, 22), func(g *firewall.Grant) { g.Masquerade = true }),
			}},
		{name: "SESAME_MD5 stanza", nat: on, stanza: func(s *fwconf.Stanza) { s.MD5 = true }, typ: spa.NATAccessMsg, natF: "10.50.0.5,22",
			want: NATRefused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := baseStanza()
			if tc.stanza != nil {
				tc.stanza(&st)
			}
			p := basePolicy(st)
			p.NAT = tc.nat
			p.MD5Port = 2223
			e := newNATEnv(t, p)
			m := baseMessage()
			m.Type, m.NATAccess = tc.typ, tc.natF
			if tc.msg != "" {
				m.Message = tc.msg
			}
			src := cmpOr(tc.src, "10.99.0.2")
			in := pkt(src, e.codec.add(m, keysA))
			switch tc.dst {
			case "":
			case "none":
				in.Dst = netip.AddrPort{}
			default:
				in.Dst = netip.AddrPortFrom(netip.MustParseAddr(tc.dst), 62201)
			}
			res := e.s.Handle(context.Background(), in)
			if res.Reason != tc.want {
				t.Fatalf("reason = %v (%v), want %v; log:\n%s", res.Reason, res.Err, tc.want, e.log)
			}
			if got := e.live(t); !reflect.DeepEqual(got, tc.grants) {
				t.Errorf("grants =\n%v\nwant\n%v", got, tc.grants)
			}
			if e.lookups != tc.lookups {
				t.Errorf("%d lookups, want %d", e.lookups, tc.lookups)
			}
			if tc.want == Granted && !strings.Contains(e.log.String(), "nat=") {
				t.Errorf("grant log has no nat=:\n%s", e.log)
			}
		})
	}
}

func with(g firewall.Grant, f func(*firewall.Grant)) firewall.Grant { f(&g); return g }

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestParseNATAccess(t *testing.T) {
	good := map[string]natTarget{
		"10.0.0.5,22":          {addr: netip.MustParseAddr("10.0.0.5"), port: 22},
		"fd00::5,65535":        {addr: netip.MustParseAddr("fd00::5"), port: 65535},
		"host.example.com,1":   {host: "host.example.com", port: 1},
		"a-b.example.,80":      {host: "a-b.example.", port: 80},
		"::ffff:10.0.0.5,2222": {addr: netip.MustParseAddr("10.0.0.5"), port: 2222},
	}
	for in, want := range good {
		got, err := parseNATAccess(in)
		if err != nil || got != want {
			t.Errorf("parseNATAccess(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.5", "10.0.0.5,", "10.0.0.5,0", "10.0.0.5,65536", "10.0.0.5,22,23",
		"10.0.0.5,+22", "0.0.0.0,22", "fe80::1%eth0,22", "-bad,22", "bad_host,22", "a..b,22", ",22", "10.0.0.5, 22"} {
		if got, err := parseNATAccess(in); err == nil {
			t.Errorf("parseNATAccess(%q) = %+v, want an error", in, got)
		}
	}
}

func FuzzParseNATAccess(f *testing.F) {
	for _, s := range []string{"10.0.0.5,22", "host.example,80", "fd00::1,1", "x,,1", "a,0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseNATAccess(s)
		if err != nil {
			return
		}
		if got.port == 0 || got.addr.IsValid() == (got.host != "") {
			t.Fatalf("parseNATAccess(%q) = %+v", s, got)
		}
		if got.host != "" && !validHostname(got.host) {
			t.Fatalf("invalid host name accepted: %q", got.host)
		}
	})
}

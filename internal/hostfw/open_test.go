package hostfw

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(f *Fake)
		host  *FakeHost
		ports string
		want  string
	}{
		{
			name:  "nothing drops",
			build: func(f *Fake) {},
			ports: "tcp/22, udp/53",
			want:  "tcp/22 over IPv4, udp/53 over IPv4, tcp/22 over IPv6, udp/53 over IPv6",
		},
		{
			name: "inet policy drop with ssh allowed",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop),
					rl(ctState(2|4), accept), rl(ctState(1), drop), rl(iifname("lo"), accept),
					rl(l4(protoICMPv6), accept), rl(tcpDport(22), accept))
			},
			ports: "tcp/22, tcp/5432, udp/22",
			want:  "tcp/22 over IPv4, tcp/22 over IPv6",
		},
		{
			name: "ip only: IPv6 stays open",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "filter", 0)
				f.AddChain(baseChain(tb, "INPUT", 0, pDrop))
			},
			ports: "tcp/5432",
			want:  "tcp/5432 over IPv6",
		},
		{
			name: "an accept with an undecided condition counts as open",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop), rl(saddr4(10, 0, 0, 1), accept))
			},
			ports: "tcp/5432",
			want:  "tcp/5432 over IPv4",
		},
		{
			name: "a drop with an undecided condition is no drop",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pAccept), rl(saddr4(10, 0, 0, 1), drop), rl(tcpDport(22), drop))
			},
			ports: "tcp/22, tcp/23",
			want:  "tcp/23 over IPv4, tcp/23 over IPv6",
		},
		{
			name: "sets and verdict maps",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "filter", 0)
				f.AddSet(&nftables.Set{Table: tb, Name: "__set0", Anonymous: true, Constant: true, Interval: true}, []nftables.SetElement{
					{Key: []byte{0x23, 0x83}, IntervalEnd: true}, {Key: []byte{0x23, 0x82}}, // 9090
					{Key: []byte{0x1f, 0x91}, IntervalEnd: true}, {Key: []byte{0x1f, 0x40}}, // 8000-8080
					{Key: []byte{0, 0}, IntervalEnd: true},
				})
				f.AddSet(&nftables.Set{Table: tb, Name: "__map0", Anonymous: true, Constant: true, IsMap: true}, []nftables.SetElement{
					{Key: []byte{0x1b, 0x58}, Val: verdictData(expr.VerdictAccept, "")}, // 7000
					{Key: []byte{0x1b, 0x59}, Val: verdictData(expr.VerdictDrop, "")},   // 7001
					{Key: []byte{0x1b, 0x5a}, Val: verdictData(expr.VerdictJump, "c")},  // 7002
				})
				f.AddSet(&nftables.Set{Table: tb, Name: "blocked", HasTimeout: true}, nil)
				thDport := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
				f.AddChain(baseChain(tb, "input", 0, pDrop),
					rl(l4(protoTCP), thDport, lookup("__set0"), accept),
					rl(l4(protoTCP), thDport, vmap("__map0")),
					rl(l4(protoUDP), thDport, lookup("blocked"), drop))
				f.AddChain(regChain(tb, "c"), rl(accept))
			},
			ports: "tcp/7999, tcp/8000, tcp/8080, tcp/8081, tcp/9090, tcp/7000, tcp/7001, tcp/7002, udp/7001",
			want: "tcp/8000 over IPv4, tcp/8080 over IPv4, tcp/9090 over IPv4, tcp/7000 over IPv4, tcp/7002 over IPv4, " +
				"tcp/8000 over IPv6, tcp/8080 over IPv6, tcp/9090 over IPv6, tcp/7000 over IPv6, tcp/7002 over IPv6",
		},
		{
			name: "an unreadable set leaves the lookup undecided",
			build: func(f *Fake) {
				tb := f.AddTable(famIP, "filter", 0)
				f.AddChain(baseChain(tb, "input", 0, pDrop), rl(l4(protoTCP), lookup("gone"), accept))
			},
			ports: "tcp/1, udp/1",
			want:  "tcp/1 over IPv4, tcp/1 over IPv6, udp/1 over IPv6",
		},
		{
			name:  "legacy ufw",
			build: func(f *Fake) {},
			host: &FakeHost{IPv4Tables: []string{"filter"}, IPv6Tables: []string{"filter"},
				Output: map[string]string{"iptables-legacy": ufwSave, "ip6tables-legacy": ufw6Save}},
			ports: "tcp/22, tcp/5432, udp/137",
			want:  "tcp/22 over IPv4, tcp/22 over IPv6",
		},
		{
			name: "sesame's guard does not count",
			build: func(f *Fake) {
				tb := f.AddTable(famInet, "sesame", 0)
				f.AddChain(baseChain(tb, "guard", -10, pAccept), rl(tcpDport(22), drop))
			},
			ports: "tcp/22",
			want:  "tcp/22 over IPv4, tcp/22 over IPv6",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &Fake{}
			tc.build(f)
			rep := detect(t, f, tc.host, Options{})
			if got := exposedString(rep.Open(ports(t, tc.ports))); got != tc.want {
				t.Errorf("Open = %q\nwant   %q", got, tc.want)
			}
		})
	}
}

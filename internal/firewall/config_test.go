package firewall

import (
	"errors"
	"reflect"
	"testing"
)

func TestParsePorts(t *testing.T) {
	got, err := ParsePorts("tcp/22, TCP/5432 udp/53,tcp/22")
	want := []Port{{ProtoTCP, 22}, {ProtoTCP, 5432}, {ProtoUDP, 53}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParsePorts = %v, %v; want %v", got, err, want)
	}
	if got, err := ParsePorts(" "); err != nil || len(got) != 0 {
		t.Fatalf("ParsePorts(blank) = %v, %v", got, err)
	}
	for _, bad := range []string{"22", "tcp/", "tcp/0", "tcp/65536", "icmp/1", "tcp/-1", "tcp/22x", "/22"} {
		if p, err := ParsePorts(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParsePorts(%q) = %v, %v; want ErrBadConfig", bad, p, err)
		}
	}
	if s := (Port{ProtoUDP, 53}).String(); s != "udp/53" {
		t.Errorf("Port.String = %q", s)
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"tcp/22", "UDP/53", "tcp/65535", "tcp/0", "x", "tcp/+22", "tcp/022"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.Port == 0 || (p.Proto != ProtoTCP && p.Proto != ProtoUDP) {
			t.Fatalf("ParsePort(%q) = %+v", s, p)
		}
		if again, err := ParsePort(p.String()); err != nil || again != p {
			t.Fatalf("round trip %q -> %v -> %v, %v", s, p, again, err)
		}
	})
}

func TestParseHostChain(t *testing.T) {
	for in, want := range map[string]HostChain{
		"":                       {},
		"none":                   {},
		"iptables":               {Kind: HostIPTables},
		"nft inet filter input":  {Kind: HostNft, Family: "inet", Table: "filter", Chain: "input"},
		"nft:ip filter INPUT":    {Kind: HostNft, Family: "ip", Table: "filter", Chain: "INPUT"},
		" nft ip6 my-fw in_put ": {Kind: HostNft, Family: "ip6", Table: "my-fw", Chain: "in_put"},
	} {
		got, err := ParseHostChain(in)
		if err != nil || got != want {
			t.Errorf("ParseHostChain(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ipfw", "nft", "nft inet filter", "nft bridge filter input", "nft inet fil;ter input", "nft inet filter input x"} {
		if h, err := ParseHostChain(bad); !errors.Is(err, ErrBadConfig) {
			t.Errorf("ParseHostChain(%q) = %+v, %v; want ErrBadConfig", bad, h, err)
		}
	}
}

func FuzzParseHostChain(f *testing.F) {
	for _, s := range []string{"", "iptables", "nft inet filter input", "nft:ip t c", "nft x y z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHostChain(s)
		if err != nil {
			return
		}
		if again, err := ParseHostChain(h.String()); err != nil || again != h {
			t.Fatalf("round trip %q -> %+v -> %+v, %v", s, h, again, err)
		}
	})
}

func TestConfigDefaults(t *testing.T) {
	c, h, err := Config{}.withDefaults()
	if err != nil || c.TableName != DefaultTableName || c.Mark != DefaultMark || len(h) != 0 {
		t.Fatalf("withDefaults() = %+v, %+v, %v", c, h, err)
	}
	for name, bad := range map[string]Config{
		"table name":      {TableName: "a b"},
		"guard port":      {GuardPorts: []Port{{1, 22}}},
		"host chain":      {HostChain: "pf"},
		"own table hooks": {HostChain: "nft inet sesame input"},
	} {
		if _, _, err := bad.withDefaults(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: withDefaults(%+v) = %v, want ErrBadConfig", name, bad, err)
		}
	}
	if _, err := NewNftables(Config{HostChain: "pf"}); !errors.Is(err, ErrBadConfig) {
		t.Errorf("NewNftables(bad) = %v, want ErrBadConfig", err)
	}
}

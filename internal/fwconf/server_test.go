package fwconf

import (
	"errors"
	"github.com/sesame-spa/sesame/internal/firewall"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/spa"
)

func TestParseServerDefaults(t *testing.T) {
	s, warns, err := ParseServer("fwknopd.conf", nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings for an empty file: %v", warns)
	}
	want := Server{
		PcapIntf: "eth0", PcapFilter: "udp port 62201", UDPServPort: 62201, TCPServPort: 62201,
		EnableSPAPacketAging: true, MaxSPAPacketAge: 120 * time.Second, EnableDigestPersistence: true,
		DigestFile: "/run/fwknop/digest.cache", RunDir: "/run/fwknop", PIDFile: "/run/fwknop/fwknopd.pid",
		AccessFile: "/etc/fwknop/access.conf", FlushAtExit: false,
		Table: "sesame", TableOwner: true, ReplayMargin: 60 * time.Second, EnableNATDNS: true,
	}
	checkServer(t, s, want)
	if got := s.ReplayKeep(); got != 300*time.Second {
		t.Errorf("ReplayKeep = %v, want 300s", got)
	}
}

// checkServer compares the typed fields.
func checkServer(t *testing.T, got *Server, want Server) {
	t.Helper()
	g := *got
	g.File, g.Raw, g.Where = "", nil, nil
	if g.String() != want.String() {
		t.Errorf("server config\n got %s\nwant %s", g.String(), want.String())
	}
}

func TestParseServer(t *testing.T) {
	conf := `# test
PCAP_INTF                   vsrv;
ENABLE_UDP_SERVER           Y;
UDPSERV_PORT                62202
MAX_SPA_PACKET_AGE          30
ENABLE_SPA_PACKET_AGING     Y
FWKNOP_RUN_DIR              /tmp/w/run
FWKNOP_PID_FILE             $FWKNOP_RUN_DIR/fwknopd.pid
DIGEST_FILE                 $FWKNOP_RUN_DIR/dc.cache
FLUSH_IPT_AT_EXIT           N
ENABLE_DESTINATION_RULE     N
ENABLE_PCAP_ANY_DIRECTION   y
IPT_INPUT_ACCESS            ACCEPT,filter,INPUT,1,FWKNOP_INPUT,1
ENABLE_IPT_FORWARDING       N
SESAME_GUARD_PORTS          tcp/22, TCP/5432
SESAME_HOST_CHAIN           nft inet filter input
SESAME_REPLAY_MARGIN        10
`
	s, warns, err := ParseServer("fwknopd.conf", []byte(conf), Options{Overrides: map[string]string{"ACCESS_FOLDER": "/etc/fwknop/access.d"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
	checkServer(t, s, Server{
		PcapIntf: "vsrv", PcapFilter: "udp port 62201", PcapAnyDirection: true, EnableUDPServer: true, UDPServPort: 62202, TCPServPort: 62201,
		EnableSPAPacketAging: true, MaxSPAPacketAge: 30 * time.Second, EnableDigestPersistence: true,
		DigestFile: "/tmp/w/run/dc.cache", RunDir: "/tmp/w/run", PIDFile: "/tmp/w/run/fwknopd.pid",
		AccessFile: "/etc/fwknop/access.conf", AccessFolder: "/etc/fwknop/access.d",
		Table: "sesame", TableOwner: true, EnableNATDNS: true,
		GuardPorts: []spa.ProtoPort{{Proto: "tcp", Port: 22}, {Proto: "tcp", Port: 5432}},
		HostChain:  firewall.HostChain{Kind: firewall.HostNft, Family: "inet", Table: "filter", Chain: "input"}, ReplayMargin: 10 * time.Second,
	})
	if got := s.ReplayKeep(); got != 70*time.Second {
		t.Errorf("ReplayKeep = %v", got)
	}
	if o := s.Where["DIGEST_FILE"]; o.Line != 9 {
		t.Errorf("DIGEST_FILE origin %+v", o)
	}
}

func TestParseServerWarnings(t *testing.T) {
	conf := "PCAP_INTF eth1\nBOGUS_VAR 1\nSOURCE ANY\nPCAP_DISPATCH_COUNT 5\nPCAP_DISPATCH_COUNT 100\nPCAP_INTF eth2\n"
	s, warns, err := ParseServer("f.conf", []byte(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.PcapIntf != "eth2" {
		t.Errorf("later value should win, got %q", s.PcapIntf)
	}
	got := ""
	for _, w := range warns {
		got += w.String() + "\n"
	}
	for _, want := range []string{
		"f.conf:2: BOGUS_VAR: unknown variable; ignored",
		"f.conf:3: SOURCE: belongs in access.conf; ignored",
		"f.conf:5: PCAP_DISPATCH_COUNT: also set on line 4",
		"f.conf:6: PCAP_INTF: also set on line 1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings lack %q:\n%s", want, got)
		}
	}
	// PCAP_DISPATCH_COUNT ends at its default: no "no effect" warning.
	if strings.Contains(got, "has no effect") {
		t.Errorf("unexpected no-effect warning:\n%s", got)
	}
	_, warns, _ = ParseServer("f.conf", []byte("RULES_CHECK_THRESHOLD 5\n"), Options{})
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "f.conf:1: RULES_CHECK_THRESHOLD: has no effect in sesame") {
		t.Errorf("warnings %v", warns)
	}
}

func TestParseServerErrors(t *testing.T) {
	tests := []struct {
		conf     string
		sentinel error
		want     string
	}{
		{"MAX_SPA_PACKET_AGE 0\n", ErrValue, "fwknopd.conf:1: MAX_SPA_PACKET_AGE: \"0\" is not a whole number in [1, 100000]"},
		{"MAX_SPA_PACKET_AGE 12x\n", ErrValue, "fwknopd.conf:1: MAX_SPA_PACKET_AGE:"},
		{"UDPSERV_PORT 70000\n", ErrValue, "fwknopd.conf:1: UDPSERV_PORT:"},
		{"ENABLE_UDP_SERVER maybe\n", ErrValue, "fwknopd.conf:1: ENABLE_UDP_SERVER: \"maybe\" is not Y or N; use Y or N"},
		{"# c\nENABLE_IPT_FORWARDING Y\nIPT_FORWARD_ACCESS ACCEPT, filter, FORWARD, 1, MY_FWD, 1\n", ErrUnsupported, "fwknopd.conf:3: IPT_FORWARD_ACCESS:"},
		{"ENABLE_IPT_OUTPUT Yes\n", ErrUnsupported, "fwknopd.conf:1: ENABLE_IPT_OUTPUT:"},
		{"ENABLE_IPT_FORWARDING maybe\n", ErrValue, "fwknopd.conf:1: ENABLE_IPT_FORWARDING:"},
		{"ENABLE_IPT_SNAT Y\nSNAT_TRANSLATE_IP 10.0.0\n", ErrValue, "fwknopd.conf:2: SNAT_TRANSLATE_IP: \"10.0.0\" is not an IP address"},
		{"IPT_INPUT_ACCESS ACCEPT, filter, INPUT, 1, MY_CHAIN, 1\n", ErrUnsupported, "fwknopd.conf:1: IPT_INPUT_ACCESS:"},
		{"AFL_PKT_FILE /tmp/x\n", ErrUnsupported, "fwknopd.conf:1: AFL_PKT_FILE: AFL_PKT_FILE is not supported by sesame"},
		{"SESAME_GUARD_PORTS tcp/22, icmp/8\n", ErrValue, "fwknopd.conf:1: SESAME_GUARD_PORTS: \"icmp/8\": want tcp/PORT or udp/PORT"},
		{"SESAME_GUARD_PORTS tcp/65536\n", ErrValue, "fwknopd.conf:1: SESAME_GUARD_PORTS: \"tcp/65536\": want"},
		{"SESAME_HOST_CHAIN nft bridge filter input\n", ErrValue, "fwknopd.conf:1: SESAME_HOST_CHAIN:"},
		{"SESAME_HOST_CHAIN iptables INPUT extra\n", ErrValue, "fwknopd.conf:1: SESAME_HOST_CHAIN:"},
		{"SESAME_REPLAY_MARGIN -1\n", ErrValue, "fwknopd.conf:1: SESAME_REPLAY_MARGIN:"},
		{"FWKNOP_RUN_DIR run\n", ErrValue, "fwknopd.conf:1: FWKNOP_RUN_DIR: \"run\" is not an absolute path; write an absolute path, e.g. /run/fwknop"},
		{"FWKNOP_RUN_DIR ./run/\n", ErrValue, "fwknopd.conf:1: FWKNOP_RUN_DIR: \"./run/\" is not an absolute path"},
	}
	for _, tt := range tests {
		_, _, err := ParseServer("fwknopd.conf", []byte(tt.conf), Options{})
		if err == nil || !errors.Is(err, tt.sentinel) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: err = %v\nwant prefix %q (%v)", tt.conf, err, tt.want, tt.sentinel)
		}
	}
	_, _, err := ParseServer("f", nil, Options{Overrides: map[string]string{"NOPE": "x"}})
	if err == nil || !strings.Contains(err.Error(), "command line: NOPE") {
		t.Errorf("bad override: %v", err)
	}
}

func TestDestinationRule(t *testing.T) {
	for _, tc := range []struct {
		conf string
		want bool
	}{{"", false}, {"ENABLE_DESTINATION_RULE Y\n", true}, {"ENABLE_DESTINATION_RULE N\n", false}} {
		s, _, err := ParseServer("fwknopd.conf", []byte(tc.conf), Options{})
		if err != nil || s.DestinationRule != tc.want {
			t.Fatalf("%q: DestinationRule %v, %v; want %v", tc.conf, s.DestinationRule, err, tc.want)
		}
	}
}

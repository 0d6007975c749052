package capture

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// TestIntegrationSnifferFwknopClient: the real Debian fwknop client sends SPA packets over
// each of its transports from the client namespace; the sniffer on the server (no socket on
// udp/62201) returns exactly the wire packet the client saved with -B.
func TestIntegrationSnifferFwknopClient(t *testing.T) {
	nstest.Require(t, "fwknop")
	srv, cli := nstest.Pair(t)
	r := startReading(t, openSniffer(t, srv, SniffConfig{
		Interface: srv.Ifc, Filter: "udp port 62201 or tcp port 62201 or icmp",
	}))
	// fwknop -P tcp and -P http need a completed handshake (fwknopd's ENABLE_TCP_SERVER).
	drainTCP(t, srv, "tcp4", ":62201")

	for _, tc := range []struct {
		proto  string
		l4     uint8
		toWire func(payload string) string
	}{
		{"udp", ProtoUDP, nil},
		{"tcp", ProtoTCP, nil},
		{"icmp", ProtoICMP, nil},
		{"http", ProtoTCP, func(p string) string {
			// GET /<wire with + as - and / as _> HTTP/1.0 ...
			path, _, _ := strings.Cut(strings.TrimPrefix(p, "GET /"), " ")
			return strings.NewReplacer("-", "+", "_", "/").Replace(path)
		}},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			home := t.TempDir()
			file := filepath.Join(home, "spa.pkt")
			cmd := cli.Command("fwknop", "--no-save-args", "--no-rc-file", "-A", "tcp/22",
				"-a", nstest.CliIP4, "-D", nstest.SrvIP4, "--key-rijndael", "fwknoptest",
				"--use-hmac", "--key-hmac", "hmactest", "-P", tc.proto, "-B", file)
			cmd.Env = append(os.Environ(), "HOME="+home)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("fwknop -P %s: %v\n%s", tc.proto, err, out)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			wire := strings.TrimSpace(string(b))
			for {
				p := r.expect(t, "the fwknop packet")
				if len(p.Payload) == 0 && p.Proto == ProtoTCP {
					continue // handshake and teardown
				}
				got := string(p.Payload)
				if tc.toWire != nil {
					got = tc.toWire(got)
				}
				if got != wire || p.Proto != tc.l4 || p.Src.Addr().String() != nstest.CliIP4 ||
					p.Dst.Addr().String() != nstest.SrvIP4 {
					t.Fatalf("got proto %d %v -> %v %q\nwant proto %d wire %q", p.Proto, p.Src, p.Dst, p.Payload, tc.l4, wire)
				}
				break
			}
			// Drain the rest of a TCP exchange (empty segments only).
			for {
				p, ok := r.next(t, 200*time.Millisecond)
				if !ok {
					break
				}
				if len(p.Payload) != 0 {
					t.Fatalf("unexpected second payload %q", p.Payload)
				}
			}
		})
	}
}

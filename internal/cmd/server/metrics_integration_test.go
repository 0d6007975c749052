package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// TestIntegrationMetrics scrapes a running server's /metrics (SESAME_METRICS_LISTEN) before and
// after a knock: the packet, grant and live-grant numbers move.
func TestIntegrationMetrics(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	t.Parallel()
	srv, cli := nstest.Pair(t)
	sesametest.Listen(t, srv, ":22", sesametest.Banner)
	sesametest.StartServer(t, srv, sesametest.ServerOptions{
		Config: "ENABLE_UDP_SERVER Y;\nSESAME_METRICS_LISTEN 127.0.0.1:9464;\n",
		Access: accessStanza("10.99.0.0/24", "OPEN_PORTS tcp/22")})
	scrape := func() string {
		var body string
		// A dial on the namespace's thread (http.Client would dial from another thread).
		if err := srv.Do(t, func() error {
			c, err := net.DialTimeout("tcp", "127.0.0.1:9464", 2*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.WriteString(c, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n"); err != nil {
				return err
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			body = string(b)
			return err
		}); err != nil {
			t.Fatalf("scrape: %v", err)
		}
		return body
	}
	has := func(body, line string) bool {
		for _, l := range strings.Split(body, "\n") {
			if l == line {
				return true
			}
		}
		return false
	}
	before := scrape()
	if !has(before, `sesame_grants_live{family="ipv4"} 0`) {
		t.Fatalf("before the knock:\n%s", before)
	}
	fwknop(t, cli, "-A", "tcp/22", "-a", nstest.CliIP4, "-D", nstest.SrvIP4)
	sesametest.WaitDial(t, cli, sshAddr4, sesametest.Open, 3*time.Second)
	after := scrape()
	for _, want := range []string{
		`sesame_grants_live{family="ipv4"} 1`,
		`sesame_grants_total{family="ipv4"} 1`,
		`sesame_spa_packets_total{reason="granted",transport="udp",verdict="granted"} 1`,
	} {
		if !has(after, want) {
			t.Errorf("after the knock, no line %q in:\n%s", want, grep(after, "sesame_"))
		}
	}
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

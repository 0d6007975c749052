package shield_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// scrapeIn fetches url from inside ns and returns its samples keyed by name and labels as
// the text format writes them (`sesame_x{reason="y"}`).
func scrapeIn(t *testing.T, ns *nstest.NS, url string) map[string]float64 {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = ns.Do(t, func() (err error) {
			c, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestIntegrationShieldMetrics runs a shield with --metrics-listen and checks that an
// unsigned SYN, a wrongly signed SYN and a signed, relayed connection each move their
// numbers on the endpoint.
func TestIntegrationShieldMetrics(t *testing.T) {
	srv, cli, kf, _ := setup(t)
	const metricsAddr = "127.0.0.1:9763"
	_, logs := startShield(t, srv, "--listen", ":"+shieldP, "--upstream", upstream, "--key-file", kf, "--metrics-listen", metricsAddr)
	if !strings.Contains(logs.String(), `msg="metrics served" addr=`+metricsAddr) {
		t.Errorf("no metrics line in the log:\n%s", logs.String())
	}
	url := "http://" + metricsAddr + "/metrics"
	const (
		noSig    = `sesame_tcpmd5_dropped_segments_total{reason="no_signature"}`
		wrongSig = `sesame_tcpmd5_dropped_segments_total{reason="wrong_signature"}`
		accepted = `sesame_shield_connections_accepted_total`
		relayed  = `sesame_shield_connections_relayed_total`
		active   = `sesame_shield_connections_active`
		peak     = `sesame_shield_connections_peak`
	)
	before := scrapeIn(t, srv, url)
	for _, k := range []string{noSig, wrongSig, accepted, relayed, active, peak,
		`sesame_shield_connections_refused_total`, `sesame_shield_connections_failed_total`, `sesame_shield_connections_max`} {
		if _, ok := before[k]; !ok {
			t.Fatalf("%s missing from the scrape: %v", k, before)
		}
	}
	if before[accepted] != 0 || before[relayed] != 0 || before[active] != 0 {
		t.Errorf("connection counters before any connection: %v %v %v", before[accepted], before[relayed], before[active])
	}
	moved := func(key string, want float64) {
		t.Helper()
		var got float64
		waitFor(t, key+" to move", func() bool { got = scrapeIn(t, srv, url)[key]; return got >= want })
	}

	// An unsigned SYN: no answer, and the kernel counts it.
	if err := cli.Do(t, func() error {
		c, err := (&net.Dialer{Timeout: 500 * time.Millisecond}).Dial("tcp", nstest.SrvIP4+":"+shieldP)
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Error("an unsigned connection got through the shield")
	}
	moved(noSig, before[noSig]+1)

	bin := sesameBin(t)
	if _, err := run(t, cli.Command(bin, "connect", "--key", "wrong key", "--timeout", "500ms", nstest.SrvIP4, shieldP), strings.NewReader("x"), 5*time.Second); err == nil {
		t.Error("a wrongly signed connection got through the shield")
	}
	moved(wrongSig, before[wrongSig]+1)

	msg := "counted\n"
	if out, err := run(t, cli.Command(bin, "connect", "--key-file", kf, nstest.SrvIP4, shieldP), strings.NewReader(msg), 5*time.Second); err != nil || out != msg {
		t.Fatalf("signed connection: %q, %v", out, err)
	}
	moved(accepted, 1)
	moved(relayed, 1)
	moved(peak, 1)
	waitFor(t, "the relayed connection to end", func() bool { return scrapeIn(t, srv, url)[active] == 0 })
	if got := scrapeIn(t, srv, url); got[accepted] != 1 || got[relayed] != 1 {
		t.Errorf("after one signed connection: accepted %v, relayed %v; want 1, 1", got[accepted], got[relayed])
	}
}

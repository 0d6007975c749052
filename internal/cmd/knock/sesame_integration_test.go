package knock

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
	"github.com/sesame-spa/sesame/spa"
)

// Keys of the sesame-to-sesame tests that do not use the matrix's.
const (
	e2eKey  = "sesame-e2e-key"
	e2eHMAC = "sesame-e2e-hmac"
)

// e2eKeyArgs are the client flags for e2eKey and e2eHMAC.
var e2eKeyArgs = []string{"--no-rc-file", "--key-rijndael", e2eKey, "--use-hmac", "--key-hmac", e2eHMAC}

// e2eStanza is an access.conf stanza (SOURCE ANY) for e2eKey and e2eHMAC plus extra lines.
func e2eStanza(extra ...string) string {
	return fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\n%s\n", e2eKey, e2eHMAC, strings.Join(extra, "\n"))
}

// matrixSources is how many client source addresses the matrix spreads its knocks over: the
// server logs at most 20 rejections per source per 10 s, and the matrix has more refused cases.
const matrixSources = 4

// matrixRoute gives cli source address 10.99.0.(11+g) toward server address 10.99.0.(101+g),
// so a knock to that server address leaves from that source.
func matrixRoute(t *testing.T, srv, cli *nstest.NS, g int) (server, source string) {
	t.Helper()
	server, source = fmt.Sprintf("10.99.0.%d", 101+g), fmt.Sprintf("10.99.0.%d", 11+g)
	srv.Run(t, "ip", "addr", "add", server+"/32", "dev", srv.Ifc)
	cli.Run(t, "ip", "addr", "add", source+"/32", "dev", cli.Ifc)
	cli.Run(t, "ip", "route", "add", server+"/32", "dev", cli.Ifc, "src", source)
	return server, source
}

// TestIntegrationSesameMatrix sends one knock per interop matrix case with the sesame binary
// from a client namespace to sesame's server (UDP-server mode, one stanza per case) and checks
// the outcome of each: access and client-timeout access cases are granted for their allow-IP,
// ports and timeout (log and --fw-list); NAT and command cases are refused with the logged
// reason and nothing granted.
func TestIntegrationSesameMatrix(t *testing.T) {
	nstest.Require(t, "ip")
	t.Parallel()
	cases := fwknoptest.Matrix()
	var stanzas []string
	for _, c := range cases {
		stanzas = append(stanzas, c.Stanza())
	}
	srvNS, cliNS := nstest.Pair(t)
	servers := make([]string, matrixSources)
	sources := make([]string, matrixSources)
	for g := range matrixSources {
		servers[g], sources[g] = matrixRoute(t, srvNS, cliNS, g)
	}
	srv := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n", Access: strings.Join(stanzas, "\n")})
	home := t.TempDir()
	t0 := time.Now()
	for i, c := range cases {
		runIn(t, cliNS, home, append(append([]string{"--no-rc-file"}, c.ClientArgs()...), "-D", servers[i%matrixSources])...)
	}
	t.Logf("%d knocks sent in %v", len(cases), time.Since(t0))

	// Wait for every case's verdict, then read the grants once.
	type verdict struct {
		re   *regexp.Regexp
		line string
	}
	verdicts := make([]verdict, len(cases))
	timeouts := map[spa.MessageType]time.Duration{spa.AccessMsg: 30 * time.Second,
		spa.ClientTimeoutAccessMsg: fwknoptest.MatrixTimeout * time.Second}
	for i, c := range cases {
		src := regexp.QuoteMeta(sources[i%matrixSources])
		switch c.Type {
		case spa.AccessMsg, spa.ClientTimeoutAccessMsg:
			verdicts[i].re = regexp.MustCompile(fmt.Sprintf(`msg="access granted" src=%s stanza=%d allow=%s ports=%s timeout=%s `,
				src, i+1, regexp.QuoteMeta(c.AllowIP), regexp.QuoteMeta(c.Access), timeouts[c.Type]))
		case spa.CommandMsg:
			// The matrix's stanzas enable command execution as fwknopd needs: the command runs.
			verdicts[i].re = regexp.MustCompile(fmt.Sprintf(`msg="command accepted" src=%s stanza=%d allow=%s kind=command `,
				src, i+1, regexp.QuoteMeta(c.AllowIP)))
		default:
			verdicts[i].re = regexp.MustCompile(fmt.Sprintf(`msg="SPA packet rejected" src=%s reason="NAT access refused" stanza=%d detail="type %d: [^"]*is not enabled"$`,
				src, i+1, int(c.Type)))
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		missing := 0
		lines := strings.Split(srv.Log(), "\n")
		for i := range verdicts {
			for _, l := range lines {
				if verdicts[i].line == "" && verdicts[i].re.MatchString(l) {
					verdicts[i].line = l
				}
			}
			if verdicts[i].line == "" {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for i, v := range verdicts {
				if v.line == "" {
					t.Errorf("%s: no log line matching %s", cases[i].Name, v.re)
				}
			}
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d verdicts logged %v after the first knock", len(cases), time.Since(t0))
	if n := len(srv.LogLines("access granted")) + len(srv.LogLines("SPA packet rejected")) + len(srv.LogLines("command accepted")); n != len(cases) {
		t.Errorf("%d verdicts logged, want one per knock (%d)", n, len(cases))
	}

	grants := srv.FWList(t)
	want := 0
	for _, c := range cases {
		timeout, granted := timeouts[c.Type]
		for _, pp := range strings.Split(c.Access, ",") {
			g, ok := grants[c.AllowIP+" "+pp]
			switch {
			case !granted && ok:
				t.Errorf("%s: refused type, yet --fw-list has %s %s", c.Name, c.AllowIP, pp)
			case granted && !ok:
				t.Errorf("%s: --fw-list has no %s %s", c.Name, c.AllowIP, pp)
			case granted && (g > timeout || g < timeout-20*time.Second):
				t.Errorf("%s: %s %s expires in %v, want just under %v", c.Name, c.AllowIP, pp, g, timeout)
			}
			if granted {
				want++
			}
		}
	}
	if len(grants) != want {
		t.Errorf("--fw-list has %d grants, want %d: %v", len(grants), want, grants)
	}
}

// TestIntegrationSesameSniffTransports: sesame's server in sniff mode with PCAP_FILTER
// "udp port 62201 or icmp" grants knocks sent by sesame over UDP (also from a fixed source
// port, and as a raw UDP packet) and ICMP, and never sees a knock to a random port (-r), which the filter excludes.
// The ICMP knock asks for the client's own address and must open the guarded port to it.
func TestIntegrationSesameSniffTransports(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srvNS, cliNS := nstest.Pair(t)
	sesametest.Listen(t, srvNS, ":22", sesametest.Banner)
	srv := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: fmt.Sprintf(
		"PCAP_INTF %s;\nPCAP_FILTER udp port 62201 or icmp;\nSESAME_GUARD_PORTS tcp/22;\n", srvNS.Ifc),
		Access: e2eStanza("FW_ACCESS_TIMEOUT 30")})
	home := t.TempDir()
	knock := func(allow string, transport ...string) {
		t.Helper()
		runIn(t, cliNS, home, append(append([]string{"-D", nstest.SrvIP4, "-a", allow, "-A", "tcp/22"}, e2eKeyArgs...), transport...)...)
	}
	ssh := nstest.SrvIP4 + ":22"
	if r := sesametest.Dial(t, cliNS, ssh, 300*time.Millisecond); r != sesametest.Timeout {
		t.Fatalf("tcp/22 before any knock: %v, want timeout (guarded)", r)
	}
	knock("10.97.0.2", "-P", "udp")
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "allow=10.97.0.2 ", "ports=tcp/22")
	knock("10.97.1.2", "-P", "udp", "-S", "40123")
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "allow=10.97.1.2 ")
	knock("10.97.2.2", "-P", "udpraw")
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "allow=10.97.2.2 ")
	knock(nstest.CliIP4, "-P", "icmp")
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "allow="+nstest.CliIP4+" ")
	sesametest.WaitDial(t, cliNS, ssh, sesametest.Open, 2*time.Second)
	// The random-port knock goes first; once the knock after it is granted (and a moment
	// more, as workers handle packets concurrently), the server would have logged it too had
	// the filter let it through.
	knock("10.97.3.2", "-r")
	knock("10.97.4.2", "-P", "udp")
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "allow=10.97.4.2 ")
	time.Sleep(300 * time.Millisecond)
	if l := srv.LogLines("10.97.3.2"); len(l) > 0 {
		t.Errorf("a knock to a random port passed PCAP_FILTER: %q", l)
	}
	grants := srv.FWList(t)
	for _, a := range []string{"10.97.0.2", "10.97.1.2", "10.97.2.2", nstest.CliIP4, "10.97.4.2"} {
		if _, ok := grants[a+" tcp/22"]; !ok {
			t.Errorf("--fw-list has no %s tcp/22: %v", a, grants)
		}
	}
	if len(grants) != 5 {
		t.Errorf("--fw-list: %v, want 5 grants", grants)
	}
}

// TestIntegrationSesameNoAccess: "sesame knock" without -A asks for the stanza's OPEN_PORTS;
// sesame's server opens all of them, and refuses the request (logged, no grant) for a stanza
// without OPEN_PORTS.
func TestIntegrationSesameNoAccess(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srvNS, cliNS := nstest.Pair(t)
	const otherKey, otherHMAC = "sesame-other-key", "sesame-other-hmac"
	srv := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\n",
		Access: e2eStanza("OPEN_PORTS tcp/22,tcp/5432", "FW_ACCESS_TIMEOUT 30") +
			fmt.Sprintf("SOURCE ANY\nKEY %s\nHMAC_KEY %s\nFW_ACCESS_TIMEOUT 30\n", otherKey, otherHMAC)})
	home := t.TempDir()
	out := runIn(t, cliNS, home, append([]string{"-D", nstest.SrvIP4, "-a", "10.96.0.2"}, e2eKeyArgs...)...)
	if !strings.Contains(out, "OPEN_PORTS") {
		t.Errorf("knock without -A printed no note about OPEN_PORTS: %s", out)
	}
	srv.WaitLog(t, 1, 5*time.Second, "access granted", "stanza=1 ", "allow=10.96.0.2 ", "ports=tcp/22,tcp/5432 ", "timeout=30s")
	runIn(t, cliNS, home, "--no-rc-file", "-D", nstest.SrvIP4, "-a", "10.96.1.2", "--key-rijndael", otherKey,
		"--use-hmac", "--key-hmac", otherHMAC)
	srv.WaitLog(t, 1, 5*time.Second, "SPA packet rejected", "src="+nstest.CliIP4+" ",
		`reason="no ports requested and no OPEN_PORTS" stanza=2`)
	grants := srv.FWList(t)
	for _, pp := range []string{"tcp/22", "tcp/5432"} {
		if g, ok := grants["10.96.0.2 "+pp]; !ok || g > 30*time.Second || g < 20*time.Second {
			t.Errorf("--fw-list: 10.96.0.2 %s: %v %v, want expiry just under 30 s", pp, g, ok)
		}
	}
	if len(grants) != 2 {
		t.Errorf("--fw-list: %v, want only 10.96.0.2's two grants", grants)
	}
}

// TestIntegrationSesameIPv6: "sesame knock -6" to sesame's server over IPv6 with an IPv6
// allow-IP: tcp/22 (guarded) times out before the knock, opens over IPv6 after it (grant in
// the grants6 set), stays shut over IPv4, and shuts again when FW_ACCESS_TIMEOUT (3 s) ends.
func TestIntegrationSesameIPv6(t *testing.T) {
	nstest.Require(t, "nft")
	t.Parallel()
	srvNS, cliNS := nstest.Pair(t)
	sesametest.Listen(t, srvNS, ":22", sesametest.Banner)
	srv := sesametest.StartServer(t, srvNS, sesametest.ServerOptions{Config: "ENABLE_UDP_SERVER Y;\nSESAME_GUARD_PORTS tcp/22;\n",
		Access: e2eStanza("FW_ACCESS_TIMEOUT 3")})
	ssh6, ssh4 := "["+nstest.SrvIP6+"]:22", nstest.SrvIP4+":22"
	if r := sesametest.Dial(t, cliNS, ssh6, 300*time.Millisecond); r != sesametest.Timeout {
		t.Fatalf("before the knock: %v, want timeout", r)
	}
	start := time.Now()
	runIn(t, cliNS, t.TempDir(), append([]string{"-6", "-D", nstest.SrvIP6, "-a", nstest.CliIP6, "-A", "tcp/22"}, e2eKeyArgs...)...)
	sesametest.WaitDial(t, cliNS, ssh6, sesametest.Open, 2*time.Second)
	t.Logf("open over IPv6 %v after the knock started", time.Since(start))
	srv.WaitLog(t, 1, time.Second, "access granted", "src="+nstest.CliIP6+" ", "allow="+nstest.CliIP6+" ", "ports=tcp/22 ", "timeout=3s")
	if _, ok := srv.FWList(t)[nstest.CliIP6+" tcp/22"]; !ok {
		t.Errorf("--fw-list has no %s tcp/22", nstest.CliIP6)
	}
	if set := srvNS.Run(t, "nft", "list", "set", "inet", "sesame", "grants6"); !strings.Contains(set, nstest.CliIP6+" . tcp . 22") {
		t.Errorf("grants6 lacks the grant:\n%s", set)
	}
	if r := sesametest.Dial(t, cliNS, ssh4, 300*time.Millisecond); r != sesametest.Timeout {
		t.Errorf("IPv4 after an IPv6 grant: %v, want timeout", r)
	}
	sesametest.WaitDial(t, cliNS, ssh6, sesametest.Timeout, 6*time.Second)
	if el := time.Since(start); el < 2500*time.Millisecond || el > 7*time.Second {
		t.Errorf("grant lasted about %v, want about 3 s", el)
	}
}

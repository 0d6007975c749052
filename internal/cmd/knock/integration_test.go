package knock

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/rcfile"
	"github.com/sesame-spa/sesame/spa"
)

// runIn runs the sesame binary ("sesame knock ARGS") in ns with HOME=home, failing t on error.
func runIn(t *testing.T, ns *nstest.NS, home string, args ...string) string {
	t.Helper()
	bin := nstest.Binary(t)
	var cmd *exec.Cmd
	if ns != nil {
		cmd = ns.Command("env", append([]string{"HOME=" + home, bin, "knock"}, args...)...)
	} else {
		cmd = exec.Command(bin, append([]string{"knock"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sesame knock %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// TestIntegrationRCWithRealFwknop: a stanza written by fwknop --save-rc-stanza is used by
// sesame knock, and a stanza written by sesame is used by fwknop; both packets decode to the
// stanza's settings.
func TestIntegrationRCWithRealFwknop(t *testing.T) {
	nstest.Require(t, "fwknop")
	home := t.TempDir()
	rc := filepath.Join(home, "rc")
	keyB64, hmacB64 := "Zndrbm9wdGVzdA==", "aG1hY3Rlc3Q="
	keys := spa.Keys{Key: []byte("fwknoptest"), HMACKey: []byte("hmactest"), HMACType: spa.SHA384, Mode: spa.CTR}
	stanzaArgs := []string{"-A", "tcp/22,udp/53", "-a", "10.99.0.2", "-D", "10.99.0.1", "-m", "sha512",
		"--hmac-digest-type", "sha384", "-M", "ctr", "-f", "45", "-U", "bob", "-p", "4000", "-P", "tcp",
		"-N", "10.0.0.5:2222", "--use-hmac", "--key-base64-rijndael", keyB64, "--key-base64-hmac", hmacB64}
	check := func(who, pkt string) {
		t.Helper()
		wire, err := os.ReadFile(pkt)
		if err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		m, err := spa.Decode([]byte(strings.TrimSpace(string(wire))), keys)
		if err != nil {
			t.Fatalf("%s: packet does not decode with the stanza's keys: %v", who, err)
		}
		if m.Type != spa.ClientTimeoutNATAccessMsg || m.Message != "10.99.0.2,tcp/22,udp/53" || m.NATAccess != "10.0.0.5,2222" ||
			m.ClientTimeout != 45 || m.Username != "bob" || m.DigestType != spa.SHA512 {
			t.Errorf("%s: decoded %+v", who, *m)
		}
		if d := time.Since(time.Unix(m.Timestamp, 0)); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: timestamp off by %v", who, d)
		}
	}

	// fwknop writes, sesame reads.
	cmd := exec.Command("fwknop", append([]string{"--rc-file", rc, "-n", "fromfwknop", "--save-rc-stanza", "-T", "--no-save-args"}, stanzaArgs...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fwknop --save-rc-stanza: %v\n%s", err, out)
	}
	pkt := filepath.Join(home, "pkt1")
	runIn(t, nil, home, "--rc-file", rc, "-n", "fromfwknop", "-T", "-B", pkt)
	check("sesame with fwknop's stanza", pkt)

	// sesame writes, fwknop reads.
	runIn(t, nil, home, append([]string{"--rc-file", rc, "-n", "fromsesame", "--save-rc-stanza", "-T"}, stanzaArgs...)...)
	if st, err := os.Stat(rc); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rc file after sesame's save: %v %v", st, err)
	}
	pkt = filepath.Join(home, "pkt2")
	cmd = exec.Command("fwknop", "--rc-file", rc, "-n", "fromsesame", "-T", "--no-save-args", "-B", pkt)
	cmd.Env = append(os.Environ(), "HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fwknop with sesame's stanza: %v\n%s", err, out)
	}
	check("fwknop with sesame's stanza", pkt)

	// Both stanzas say the same thing, and fwknop lists sesame's.
	f, err := rcfile.Load(rc)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f.Stanza("fromfwknop")
	b, _ := f.Stanza("fromsesame")
	// fwknop adds NO_SAVE_ARGS (it was given --no-save-args); everything else must match.
	strip := func(s *rcfile.Stanza) string {
		var vars []rcfile.Var
		for _, v := range s.Vars {
			if v.Name != "NO_SAVE_ARGS" {
				vars = append(vars, rcfile.Var{Name: v.Name, Value: v.Value})
			}
		}
		return rcfile.Format(&rcfile.Stanza{Vars: vars})
	}
	if a == nil || b == nil || strip(a) != strip(b) {
		t.Errorf("stanzas differ:\n%s\n%s", rcfile.Format(a), rcfile.Format(b))
	}
	cmd = exec.Command("fwknop", "--rc-file", rc, "--stanza-list")
	cmd.Env = append(os.Environ(), "HOME="+home)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), " - fromsesame") {
		t.Errorf("fwknop --stanza-list: %v %s", err, out)
	}
}

// TestIntegrationMatrixToFwknopd sends one packet per interop matrix case (pairwise over
// digest type, HMAC type, encryption mode, message type, username and key form) with the
// sesame binary from a client namespace over UDP to the real fwknopd in the server namespace,
// and checks the rule (or command) fwknopd made for each.
func TestIntegrationMatrixToFwknopd(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables")
	cases := fwknoptest.Matrix()
	var stanzas []string
	for _, c := range cases {
		// The rules are read after all the knocks, which can take over a minute on a loaded
		// machine: keep them longer than that.
		stanzas = append(stanzas, strings.Replace(c.Stanza(), "FW_ACCESS_TIMEOUT 30", "FW_ACCESS_TIMEOUT 600", 1))
	}
	srvNS, cliNS := nstest.Pair(t)
	srv := fwknoptest.StartServer(t, srvNS, fwknoptest.ServerOptions{Access: strings.Join(stanzas, "\n"),
		Config: fwknoptest.MatrixServerConfig})
	home := t.TempDir()
	wires := make([]string, len(cases))
	t0 := time.Now()
	for i, c := range cases {
		pkt := filepath.Join(home, fmt.Sprintf("pkt%d", i))
		runIn(t, cliNS, home, append([]string{"--no-rc-file", "-B", pkt}, c.ClientArgs()...)...)
		b, err := os.ReadFile(pkt)
		if err != nil {
			t.Fatal(err)
		}
		wires[i] = strings.TrimSpace(string(b))
	}
	last := wires[len(wires)-1]
	srv.WaitEvents(t, 60*time.Second, func(ev []fwknoptest.Event) bool {
		for _, e := range fwknoptest.ByWire(ev, last) {
			if e.Kind == fwknoptest.EventRule || e.Kind == fwknoptest.EventStanzaInfo && e.Stanza == len(cases) {
				return true
			}
		}
		return false
	})
	time.Sleep(300 * time.Millisecond)
	t.Logf("%d knocks sent and handled in %v", len(cases), time.Since(t0))
	all := fwknoptest.ParseLog(srv.Log())
	input := strings.Join(srv.InputRules(t), "\n")
	forward := strings.Join(srv.Rules(t, "filter", "FWKNOP_FORWARD"), "\n")
	dnat := strings.Join(srv.Rules(t, "nat", "FWKNOP_PREROUTING"), "\n")
	for i, c := range cases {
		mine := fwknoptest.ByWire(all, wires[i])
		dec := fwknoptest.Filter(mine, fwknoptest.EventDecoded)
		if len(dec) != 1 || dec[0].Stanza != i+1 || dec[0].Dump == nil {
			t.Errorf("%s: decoded %d times (want once, by stanza %d): %v", c.Name, len(dec), i+1, mine)
			continue
		}
		got, want := dec[0].Dump.SPAMessage(), c.Expected()
		if got.Type != want.Type || got.Message != want.Message || got.NATAccess != want.NATAccess ||
			got.ClientTimeout != want.ClientTimeout || got.DigestType != want.DigestType ||
			(want.Username != "" && got.Username != want.Username) {
			t.Errorf("%s: fwknopd decoded %+v, want %+v", c.Name, got, want)
		}
		src := "-s " + c.AllowIP + "/32"
		switch c.Type {
		case spa.CommandMsg:
			var text []string
			for _, e := range mine {
				text = append(text, e.Detail)
			}
			if !strings.Contains(strings.Join(text, "\n"), "Running command '"+fwknoptest.MatrixCommand+"'") {
				t.Errorf("%s: command not run: %v", c.Name, mine)
			}
		case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg:
			if !strings.Contains(forward, src) || !strings.Contains(dnat, src) {
				t.Errorf("%s: no NAT rules for %s:\n%s\n%s", c.Name, c.AllowIP, forward, dnat)
			}
		default:
			if !strings.Contains(input, src) {
				t.Errorf("%s: FWKNOP_INPUT has no rule for %s:\n%s", c.Name, c.AllowIP, input)
			}
		}
	}
}

// TestIntegrationTransportsToFwknopd sends knocks over every transport (udp, tcp, http,
// icmp, udpraw, udp to a random port) to the real fwknopd in pcap mode, each asking for a
// different allow-IP, and checks each one's rule. It also checks that a knock without -A is
// refused by fwknopd without a rule.
func TestIntegrationTransportsToFwknopd(t *testing.T) {
	nstest.Require(t, "fwknopd", "iptables")
	srvNS, cliNS := nstest.Pair(t)
	srv := fwknoptest.StartServer(t, srvNS, fwknoptest.ServerOptions{
		Access:   "SOURCE ANY\nKEY fwknoptest\nHMAC_KEY hmactest\nFW_ACCESS_TIMEOUT 30\n",
		PCAPIntf: srvNS.Ifc,
		Config: []string{"PCAP_FILTER udp or tcp port 62201 or icmp;", "ENABLE_SPA_OVER_HTTP Y;",
			"ENABLE_TCP_SERVER Y;", "TCPSERV_PORT 62201;"},
	})
	home := t.TempDir()
	transports := [][]string{{"-P", "udp"}, {"-P", "tcp"}, {"-P", "http"}, {"-P", "icmp"}, {"-P", "udpraw"},
		{"-r"}, {"-P", "udp", "-S", "40123"}, {"-P", "http", "-u", "Fwknop/sesame"}}
	for i, tr := range transports {
		args := append([]string{"--no-rc-file", "-D", nstest.SrvIP4, "-a", fmt.Sprintf("10.97.%d.2", i), "-A", "tcp/22",
			"--key-rijndael", "fwknoptest", "--use-hmac", "--key-hmac", "hmactest"}, tr...)
		runIn(t, cliNS, home, args...)
		srv.WaitLog(t, fmt.Sprintf("for 10.97.%d.2 -> ", i), 1, 15*time.Second)
	}
	input := strings.Join(srv.InputRules(t), "\n")
	for i, tr := range transports {
		if !strings.Contains(input, fmt.Sprintf("-s 10.97.%d.2/32 -p tcp -m tcp --dport 22", i)) {
			t.Errorf("%v: no rule for 10.97.%d.2:\n%s", tr, i, input)
		}
	}

	// No -A: sesame sends "none/0"; fwknopd must refuse it without adding a rule.
	pkt := filepath.Join(home, "noports")
	cmd := cliNS.Command("env", "HOME="+home, nstest.Binary(t), "knock", "--no-rc-file", "-D", nstest.SrvIP4,
		"-a", "10.97.99.2", "--key-rijndael", "fwknoptest", "--use-hmac", "--key-hmac", "hmactest", "-B", pkt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("knock without -A: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OPEN_PORTS") {
		t.Errorf("no note about OPEN_PORTS: %s", out)
	}
	wire, _ := os.ReadFile(pkt)
	w := strings.TrimSpace(string(wire))
	ev := srv.WaitEvents(t, 15*time.Second, func(ev []fwknoptest.Event) bool {
		return len(fwknoptest.Filter(fwknoptest.ByWire(ev, w), fwknoptest.EventStanzaError)) > 0
	})
	mine := fwknoptest.ByWire(ev, w)
	errs := fwknoptest.Filter(mine, fwknoptest.EventStanzaError)
	if !strings.Contains(errs[0].Detail, "FKO_ERROR_INVALID_DATA_DECODE_ACCESS_VALIDFAIL") {
		t.Errorf("fwknopd's refusal of none/0: %q", errs[0].Detail)
	}
	// The one stanza refused the packet, which ends fwknopd's handling of it: no rule for it
	// can come later.
	if strings.Contains(strings.Join(srv.InputRules(t), "\n"), "10.97.99.2") {
		t.Error("fwknopd opened something for a none/0 request")
	}
}

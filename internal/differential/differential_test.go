package differential

import (
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/fwknoptest"
	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// Addresses. Both pairs are nstest.Pair, so the servers are 10.99.0.1 and the client 10.99.0.2;
// the client namespaces also get otherSrc. Each granted case asks for its own allow IP (never
// the source), so fwknopd never sees an identical rule twice and the grants are told apart.
const (
	otherSrc = "10.99.0.3"
	natDest  = "10.99.0.5:22"
)

// The shared configuration: exactly this text goes to fwknopd and to sesame (each harness
// adds only its own run-directory lines, and fwknoptest its FIREWALL_EXE and UDPSERV_PORT).
const serverConf = "ENABLE_UDP_SERVER Y;\nMAX_SPA_PACKET_AGE 120;\n"

// Keys, one set per stanza, varied in form (text or base64), HMAC type and mode.
var (
	key2  = base64.StdEncoding.EncodeToString([]byte("differential-key-two-32-bytes-ok"))
	hmac2 = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("differential-hmac-two/", 3)))
)

// accessConf has one stanza per situation. Stanza 1 takes only the client's main address, so
// the same packet from otherSrc reaches only the SOURCE ANY stanzas 2-7.
var accessConf = strings.Join([]string{
	// 1: plain keys, HMAC-SHA256, two ports.
	"SOURCE " + nstest.CliIP4 + "\nKEY differential-key-one\nHMAC_KEY differential-hmac-one\nHMAC_DIGEST_TYPE sha256\n" +
		"OPEN_PORTS tcp/22, tcp/80\nFW_ACCESS_TIMEOUT 30\n",
	// 2: base64 keys, HMAC-SHA512, required username, timeout capped at 60 s.
	"SOURCE ANY\nKEY_BASE64 " + key2 + "\nHMAC_KEY_BASE64 " + hmac2 + "\nHMAC_DIGEST_TYPE sha512\n" +
		"REQUIRE_USERNAME alice\nOPEN_PORTS tcp/22, udp/53\nFW_ACCESS_TIMEOUT 20\nMAX_FW_TIMEOUT 60\n",
	// 3: CFB mode, HMAC-SHA384, a restricted port.
	"SOURCE ANY\nKEY differential-key-three\nHMAC_KEY differential-hmac-three\nHMAC_DIGEST_TYPE sha384\n" +
		"ENCRYPTION_MODE CFB\nOPEN_PORTS tcp/22\nRESTRICT_PORTS tcp/23\nFW_ACCESS_TIMEOUT 40\n",
	// 4: REQUIRE_SOURCE_ADDRESS.
	"SOURCE ANY\nKEY differential-key-four\nHMAC_KEY differential-hmac-four\nREQUIRE_SOURCE_ADDRESS Y\n" +
		"OPEN_PORTS tcp/22\n",
	// 5: expired.
	"SOURCE ANY\nKEY differential-key-five\nHMAC_KEY differential-hmac-five\nACCESS_EXPIRE 01/01/2020\n" +
		"OPEN_PORTS tcp/22\n",
	// 6: a DESTINATION that neither server's packets have.
	"SOURCE ANY\nDESTINATION 192.0.2.1\nKEY differential-key-six\nHMAC_KEY differential-hmac-six\n" +
		"OPEN_PORTS tcp/22\n",
	// 7: DESTINATION is the server's address.
	"SOURCE ANY\nDESTINATION " + nstest.SrvIP4 + "\nKEY differential-key-seven\nHMAC_KEY differential-hmac-seven\n" +
		"OPEN_PORTS tcp/22\nFW_ACCESS_TIMEOUT 25\n",
	// 8: command execution enabled (fwknopd runs commands; sesame accepts the line and warns).
	"SOURCE ANY\nKEY differential-key-eight\nHMAC_KEY differential-hmac-eight\nENABLE_CMD_EXEC Y\n" +
		"OPEN_PORTS tcp/22\n",
}, "\n")

// Client key flags per stanza.
var (
	keys1 = []string{"--key-rijndael", "differential-key-one", "--use-hmac", "--key-hmac", "differential-hmac-one"}
	keys2 = []string{"--key-base64-rijndael", key2, "--use-hmac", "--hmac-digest-type", "sha512", "--key-base64-hmac", hmac2}
	keys3 = []string{"--key-rijndael", "differential-key-three", "-M", "cfb", "--use-hmac", "--hmac-digest-type", "sha384",
		"--key-hmac", "differential-hmac-three"}
	keys4 = []string{"--key-rijndael", "differential-key-four", "--use-hmac", "--key-hmac", "differential-hmac-four"}
	keys5 = []string{"--key-rijndael", "differential-key-five", "--use-hmac", "--key-hmac", "differential-hmac-five"}
	keys6 = []string{"--key-rijndael", "differential-key-six", "--use-hmac", "--key-hmac", "differential-hmac-six"}
	keys7 = []string{"--key-rijndael", "differential-key-seven", "--use-hmac", "--key-hmac", "differential-hmac-seven"}
	keys8 = []string{"--key-rijndael", "differential-key-eight", "--use-hmac", "--key-hmac", "differential-hmac-eight"}
)

// tc is one packet of the stream. Exactly one of args (fwknop client arguments, with -D added by
// the harness), same (resend the packet of that earlier case) is set; mutate then changes the
// bytes. want is the class both servers must give (the intended list overrides it per server);
// a granted case also names the allow IP, ports and timeout.
type tc struct {
	name   string
	args   []string
	same   string
	mutate func(string) string
	from   string // source address; "" is nstest.CliIP4
	want   verdict
}

func grant(allow, ports string, timeout time.Duration) verdict {
	return verdict{Class: granted, Allow: allow, Ports: ports, Timeout: timeout}
}

func join(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func cases() []tc {
	return []tc{
		{name: "valid-one-port", args: join(keys1, []string{"-A", "tcp/22", "-a", "10.99.0.71"}),
			want: grant("10.99.0.71", "tcp/22", 30*time.Second)},
		{name: "valid-two-ports", args: join(keys1, []string{"-A", "tcp/22,tcp/80", "-a", "10.99.0.72"}),
			want: grant("10.99.0.72", "tcp/22,tcp/80", 30*time.Second)},
		{name: "valid-client-timeout", args: join(keys1, []string{"-A", "tcp/80", "-a", "10.99.0.73", "-f", "45"}),
			want: grant("10.99.0.73", "tcp/80", 45*time.Second)},
		{name: "valid-user-base64-sha512-capped", args: join(keys2, []string{"-U", "alice", "-A", "udp/53", "-a", "10.99.0.74", "-f", "500", "-m", "sha512"}),
			want: grant("10.99.0.74", "udp/53", 60*time.Second)},
		{name: "valid-cfb-sha384", args: join(keys3, []string{"-A", "tcp/22", "-a", "10.99.0.75", "-m", "sha1"}),
			want: grant("10.99.0.75", "tcp/22", 40*time.Second)},
		{name: "valid-allow-source", args: join(keys1, []string{"-A", "tcp/22", "-s"}),
			want: grant(nstest.CliIP4, "tcp/22", 30*time.Second)},
		{name: "replay", same: "valid-one-port", want: verdict{Class: replay}},
		{name: "replay-other-source", same: "valid-two-ports", from: otherSrc, want: verdict{Class: replay}},
		{name: "too-old", args: join(keys1, []string{"-A", "tcp/22", "-a", "10.99.0.71", "--time-offset-minus", "5m"}),
			want: verdict{Class: tooOldOrNew}},
		{name: "too-new", args: join(keys1, []string{"-A", "tcp/22", "-a", "10.99.0.71", "--time-offset-plus", "5m"}),
			want: verdict{Class: tooOldOrNew}},
		{name: "wrong-rijndael-key", args: []string{"-A", "tcp/22", "-a", "10.99.0.71", "--key-rijndael", "not-the-key",
			"--use-hmac", "--key-hmac", "differential-hmac-one"}, want: verdict{Class: noStanza}},
		{name: "wrong-hmac-key", args: []string{"-A", "tcp/22", "-a", "10.99.0.71", "--key-rijndael", "differential-key-one",
			"--use-hmac", "--key-hmac", "not-the-hmac-key"}, want: verdict{Class: noStanza}},
		{name: "no-hmac-to-hmac-stanza", args: []string{"-A", "tcp/22", "-a", "10.99.0.71", "--key-rijndael", "differential-key-one"},
			want: verdict{Class: noStanza}},
		{name: "wrong-user", args: join(keys2, []string{"-U", "bob", "-A", "tcp/22", "-a", "10.99.0.74"}),
			want: verdict{Class: username}},
		{name: "port-not-in-open-ports", args: join(keys1, []string{"-A", "tcp/443", "-a", "10.99.0.71"}),
			want: verdict{Class: portDenied}},
		{name: "port-in-restrict-ports", args: join(keys3, []string{"-A", "tcp/23", "-a", "10.99.0.75"}),
			want: verdict{Class: portDenied}},
		{name: "source-required", args: join(keys4, []string{"-A", "tcp/22", "-s"}), want: verdict{Class: sourceRequired}},
		{name: "stanza-expired", args: join(keys5, []string{"-A", "tcp/22", "-a", "10.99.0.76"}), want: verdict{Class: noStanza}},
		{name: "destination-mismatch", args: join(keys6, []string{"-A", "tcp/22", "-a", "10.99.0.77"}), want: verdict{Class: noStanza}},
		{name: "destination-match", args: join(keys7, []string{"-A", "tcp/22", "-a", "10.99.0.78"}),
			want: grant("10.99.0.78", "tcp/22", 25*time.Second)},
		{name: "nat-request", args: join(keys1, []string{"-A", "tcp/22", "-a", "10.99.0.71", "-N", natDest}),
			want: verdict{Class: natRefused}},
		{name: "server-command", args: join(keys1, []string{"-a", "10.99.0.71", "--server-cmd", "echo differential"}),
			want: verdict{Class: commandRefused}},
		{name: "command-exec-enabled", args: join(keys8, []string{"-a", "10.99.0.79", "--server-cmd", "true"}),
			want: verdict{Class: commandRun}},
		{name: "truncated", same: "too-old", mutate: func(w string) string { return w[:100] }, want: verdict{Class: malformed}},
		{name: "truncated-by-one", same: "too-new", mutate: func(w string) string { return w[:len(w)-1] },
			want: verdict{Class: noStanza}},
		{name: "non-base64", same: "wrong-user", mutate: func(w string) string { return w[:50] + "*" + w[51:] },
			want: verdict{Class: malformed}},
	}
}

// difference is an intended difference: for packet name fwknopd says fwknopd and sesame says
// sesame. docs/migrating-from-fwknop.md lists the same entries.
type difference struct {
	name    string
	packet  string
	fwknopd verdict
	sesame  verdict
	why     string
}

// intended is the one list of intended differences; TestIntegrationDifferential fails if an
// entry's verdicts agree or a case differs without an entry.
var intended = []difference{
	{
		name:    "destination-match",
		packet:  "access to a stanza whose DESTINATION is the server's own address",
		fwknopd: verdict{Class: noStanza},
		sesame:  grant("10.99.0.78", "tcp/22", 25*time.Second),
		why: "in UDP-server mode fwknopd takes every packet's destination to be 0.0.0.0, so no DESTINATION " +
			"stanza ever matches; sesame reads the real destination (IP_PKTINFO)",
	},
	{
		name:    "replay-other-source",
		packet:  "an accepted packet resent from another address, where only stanzas with other keys match",
		fwknopd: verdict{Class: replay},
		sesame:  verdict{Class: noStanza},
		why: "sesame checks a stanza's HMAC before anything else and looks in the replay cache only after " +
			"a stanza opened the packet; fwknopd looks in the cache first",
	},
}

// sesameRejectBudget is sesame's per-source rejection log limit (20 lines per 10 s): more
// rejections from one address would hide verdicts.
const sesameRejectBudget = 20

// TestIntegrationDifferential sends one stream of real-client packets to the real fwknopd and
// to sesame server, both in UDP-server mode with the same configuration, and compares the
// verdicts packet by packet.
func TestIntegrationDifferential(t *testing.T) {
	nstest.Require(t, "fwknop", "fwknopd", "iptables", "nft")
	cs := cases()
	byName := map[string]*tc{}
	for i := range cs {
		byName[cs[i].name] = &cs[i]
	}
	diffs := map[string]difference{}
	for _, d := range intended {
		if byName[d.name] == nil {
			t.Fatalf("intended difference %q has no case", d.name)
		}
		diffs[d.name] = d
	}
	rejected := map[string]int{}
	for _, c := range cs {
		want := c.want
		if d, ok := diffs[c.name]; ok {
			want = d.sesame
		}
		if want.Class != granted {
			rejected[src(c)]++
		}
	}
	for a, n := range rejected {
		if n > sesameRejectBudget {
			t.Fatalf("%d rejections from %s exceed sesame's log budget of %d", n, a, sesameRejectBudget)
		}
	}

	start := time.Now()
	// Building sesame is the slowest step on a loaded machine: start it now. nstest.Binary
	// builds once per process, so sesametest.StartServer below waits for this build and
	// reports its error on the test goroutine.
	go nstest.Binary(backgroundTB{t})
	// Packets: each fwknop run builds one packet with -T, nothing is sent.
	wires := map[string]string{}
	dir := t.TempDir()
	for _, c := range cs {
		var w string
		if c.same != "" {
			var ok bool
			if w, ok = wires[c.same]; !ok {
				t.Fatalf("%s: case %q comes later or does not exist", c.name, c.same)
			}
		} else {
			res, err := fwknoptest.RunClient(dir, append([]string{"-D", nstest.SrvIP4}, c.args...)...)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			w = res.Wire
		}
		if c.mutate != nil {
			w = c.mutate(w)
		}
		wires[c.name] = w
	}

	t.Logf("%d packets built in %v", len(wires), time.Since(start))
	fSrv, fCli := nstest.Pair(t)
	sSrv, sCli := nstest.Pair(t)
	for _, ns := range []*nstest.NS{fCli, sCli} {
		ns.Run(t, "ip", "addr", "add", otherSrc+"/24", "dev", ns.Ifc)
	}
	fw := fwknoptest.StartServer(t, fSrv, fwknoptest.ServerOptions{Access: accessConf,
		Config: strings.Split(strings.TrimSpace(serverConf), "\n")})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fwknopd log (%s):\n%s", fw.LogPath, fw.Log())
		}
	})
	ss := sesametest.StartServer(t, sSrv, sesametest.ServerOptions{Config: serverConf, Access: accessConf})

	t.Logf("servers started after %v", time.Since(start))
	const wait = 5 * time.Second
	datagrams := 0 // datagrams sent to fwknopd, numbered as fwknoptest.Event.Packet
	var report []string
	for i, c := range cs {
		sent := time.Now()
		send(t, fCli, src(c), []byte(wires[c.name]))
		send(t, sCli, src(c), []byte(wires[c.name]))
		send(t, fCli, nstest.CliIP4, []byte("sentinel")) // too short: rejected before any stanza
		datagrams += 2
		pkt, sentinel := datagrams-1, datagrams
		evs := fw.WaitEvents(t, wait, func(ev []fwknoptest.Event) bool {
			return len(fwknoptest.ByPacket(ev, sentinel)) > 0
		})
		if len(fwknoptest.ByPacket(evs, sentinel)) != 1 || fwknoptest.ByPacket(evs, sentinel)[0].Kind != fwknoptest.EventRejected {
			t.Fatalf("%s: fwknopd's sentinel datagram gave %v", c.name, fwknoptest.ByPacket(evs, sentinel))
		}
		fv, err := fwknopdVerdict(fwknopdDatagram(fw.Log(), pkt), sent, time.Now())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		lines := waitVerdicts(t, ss, i+1, wait)
		sv, err := sesameVerdict(lines[i])
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}

		wantF, wantS := c.want, c.want
		d, isDiff := diffs[c.name]
		if isDiff {
			wantF, wantS = d.fwknopd, d.sesame
		}
		okF, okS := match(fv, wantF), match(sv, wantS)
		if !okF {
			t.Errorf("%s: fwknopd: %v, want %v (%s)", c.name, fv, wantF, fv.Detail)
		}
		if !okS {
			t.Errorf("%s: sesame: %v, want %v (%s)", c.name, sv, wantS, sv.Detail)
		}
		same := match(fv, sv)
		switch {
		case isDiff && same:
			t.Errorf("%s: in the intended list, but both servers say %v", c.name, sv)
		case !isDiff && !same:
			t.Errorf("%s: verdicts differ and the case is not in the intended list: fwknopd %v (%s), sesame %v (%s)",
				c.name, fv, fv.Detail, sv, sv.Detail)
		}
		if sv.Class == granted {
			checkSesameGrant(t, c.name, ss, sv)
		}
		if fv.Class == granted {
			checkFwknopdGrant(t, c.name, fw, fv)
		}
		mark := ""
		if isDiff {
			mark = "  (intended)"
		}
		report = append(report, fmt.Sprintf("%-32s fwknopd: %-40s sesame: %s%s", c.name, fv, sv, mark))
	}
	t.Logf("verdicts after %v:\n%s", time.Since(start), strings.Join(report, "\n"))
}

// backgroundTB lets nstest.Binary run off the test goroutine: its failures are ignored here
// and reported by the next call on the test goroutine, which gets the same result.
type backgroundTB struct{ testing.TB }

func (backgroundTB) Helper()               {}
func (backgroundTB) Fatalf(string, ...any) {}

func src(c tc) string {
	if c.from != "" {
		return c.from
	}
	return nstest.CliIP4
}

// match compares two verdicts: the class, and for grants the allow IP, the ports and the
// timeout (exactly, or within the Slack of the one that has it).
func match(a, b verdict) bool {
	if a.Class != b.Class {
		return false
	}
	if a.Class != granted {
		return true
	}
	if b.Slack > a.Slack {
		a, b = b, a
	}
	return a.Allow == b.Allow && a.Ports == b.Ports && a.Timeout-a.Slack <= b.Timeout && b.Timeout <= a.Timeout
}

// send sends payload as one UDP datagram from address from (in ns) to the server's port.
func send(t *testing.T, ns *nstest.NS, from string, payload []byte) {
	t.Helper()
	err := ns.Do(t, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(from)},
			&net.UDPAddr{IP: net.ParseIP(nstest.SrvIP4), Port: fwknoptest.DefaultPort})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		t.Fatalf("[%s] send from %s: %v", ns.Name, from, err)
	}
}

// waitVerdicts waits until sesame has logged n verdict lines and returns them.
func waitVerdicts(t *testing.T, s *sesametest.Server, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var lines []string
		for _, l := range strings.Split(s.Log(), "\n") {
			if isSesameVerdict(l) {
				lines = append(lines, l)
			}
		}
		if len(lines) >= n {
			return lines
		}
		if s.Exited() {
			t.Fatalf("sesame server exited while waiting for verdict %d:\n%s", n, s.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("sesame logged %d verdicts within %v, want %d:\n%s", len(lines), timeout, n, s.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkSesameGrant checks that sesame's firewall holds the logged grant.
func checkSesameGrant(t *testing.T, name string, s *sesametest.Server, v verdict) {
	t.Helper()
	live := s.FWList(t)
	for _, p := range strings.Split(v.Ports, ",") {
		left, ok := live[v.Allow+" "+p]
		if !ok || left > v.Timeout {
			t.Errorf("%s: sesame --fw-list has no %s %s of at most %v: %v", name, v.Allow, p, v.Timeout, live)
		}
	}
}

// checkFwknopdGrant checks that fwknopd's FWKNOP_INPUT chain holds the logged grant.
func checkFwknopdGrant(t *testing.T, name string, s *fwknoptest.Server, v verdict) {
	t.Helper()
	rules := strings.Join(s.InputRules(t), "\n")
	for _, p := range strings.Split(v.Ports, ",") {
		proto, port, _ := strings.Cut(p, "/")
		want := fmt.Sprintf("-s %s/32 -p %s -m %s --dport %s ", v.Allow, proto, proto, port)
		if !strings.Contains(rules, want) {
			t.Errorf("%s: fwknopd's FWKNOP_INPUT has no %q:\n%s", name, want, rules)
		}
	}
}

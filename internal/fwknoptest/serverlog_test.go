package fwknoptest

import (
	"strings"
	"testing"
)

// serverLog is an excerpt of a Debian 2.6.10 fwknopd -f -v -v log in UDP-server mode.
var serverLog = `Kicking off UDP server to listen on port 62201.
udp_server: Got UDP datagram (5 bytes) from: 127.0.0.1
[127.0.0.1] preprocess_spa_data() returned error 4096: 'Data is not a valid SPA message format' for incoming packet.
udp_server: Got UDP datagram (225 bytes) from: 127.0.0.1
(stanza #1) SPA Packet from IP: 127.0.0.1 received with access source match
SPA Packet: 'WIRE225'
[127.0.0.1] (stanza #1) Error creating fko context: Args contain invalid data: FKO_ERROR_INVALID_DATA_HMAC_COMPAREFAIL
(stanza #2) SPA Packet from IP: 127.0.0.1 received with access source match
SPA Packet: 'WIRE225'
[127.0.0.1] (stanza #2) SPA Decode (res=0):
` + strings.TrimSuffix(strings.SplitN(clientOutput, "\n\n", 2)[0], "\n") + `

run_extcmd() (with execvpe()): running CMD: /usr/sbin/iptables -t filter -L FWKNOP_INPUT -n
Added access rule to FWKNOP_INPUT for 10.99.0.2 -> 0.0.0.0/0 tcp/22, expires at 1795440206
Added jump rule from chain: INPUT to chain: FWKNOP_INPUT
udp_server: Got UDP datagram (204 bytes) from: 127.0.0.1
[127.0.0.1] Replay detected from source IP: 127.0.0.1, destination proto: 17
udp_server: Got UDP datagram (204 bytes) from: 127.0.0.1
SPA Packet: 'WIRE204'
[127.0.0.1] (stanza #1) SPA data time difference is too great (300 seconds).
`

func TestParseLog(t *testing.T) {
	ev := ParseLog(serverLog)
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind.String())
	}
	want := "rejected stanza-error decoded rule replay stanza-info"
	if got := strings.Join(kinds, " "); got != want {
		t.Fatalf("kinds %q, want %q", got, want)
	}
	if ev[0].Size != 5 || ev[0].Source != "127.0.0.1" || ev[0].Packet != 1 || ev[5].Packet != 4 {
		t.Errorf("rejected: %+v", ev[0])
	}
	if ev[1].Stanza != 1 || ev[1].Wire != "WIRE225" || !strings.Contains(ev[1].Detail, "HMAC_COMPAREFAIL") {
		t.Errorf("stanza error: %+v", ev[1])
	}
	d := ev[2]
	if d.Stanza != 2 || d.Wire != "WIRE225" || d.Dump == nil || d.Dump.Username != "bob" || d.Dump.ClientTimeout != 60 {
		t.Errorf("decoded: %+v dump %+v", d, d.Dump)
	}
	if ev[3].Wire != "WIRE225" || !strings.Contains(ev[3].Detail, "10.99.0.2 ->") {
		t.Errorf("rule: %+v", ev[3])
	}
	if ev[4].Wire != "" || ev[4].Size != 204 {
		t.Errorf("replay: %+v", ev[4])
	}
	if ev[5].Wire != "WIRE204" || ev[5].Stanza != 1 {
		t.Errorf("info: %+v", ev[5])
	}
	if n := len(Filter(ev, EventDecoded)); n != 1 {
		t.Errorf("Filter decoded: %d", n)
	}
	if n := len(ByWire(ev, "WIRE225")); n != 3 {
		t.Errorf("ByWire: %d", n)
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add(serverLog)
	f.Add("udp_server: Got UDP datagram (1 bytes) from: x\n[x] (stanza #1) SPA Decode (res=0):\nSPA Field Values:\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range ParseLog(s) {
			if e.Kind < EventRejected || e.Kind > EventRule || !strings.Contains(s, e.Line) {
				t.Fatalf("bad event %+v", e)
			}
			if e.Dump != nil && e.Kind != EventDecoded {
				t.Fatalf("dump on %v event", e.Kind)
			}
		}
	})
}

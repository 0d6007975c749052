package fwknoptest

import (
	"crypto/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/spa"
)

// TestIntegrationSesameToFwknopd encodes one packet per matrix case with spa.Encode and
// sends them all to ONE real fwknopd in test mode (-t) whose access.conf holds every case's
// stanza (case i is stanza i+1; keys are unique per case, so only the right stanza can
// decrypt a packet). Each packet must be decoded by its own stanza with exactly the encoded
// fields and pass every policy check (REQUIRE_USERNAME, NAT enabled, command exec) up to the
// point where test mode skips the firewall or the command.
func TestIntegrationSesameToFwknopd(t *testing.T) {
	cases := Matrix()
	for i, ev := range encodeAndSend(t, cases, true) {
		c := cases[i]
		want := "--test mode enabled, skipping firewall manipulation."
		if c.Type == spa.CommandMsg {
			want = "--test mode enabled, skipping command execution."
		}
		if !strings.Contains(strings.Join(details(Filter(ev, EventStanzaInfo)), "\n"), want) {
			t.Errorf("%s: fwknopd did not get to %q; events: %s", c.Name, want, describe(ev))
		}
	}
}

// TestIntegrationSesameToFwknopdGrant sends one sesame packet per message type to a real
// fwknopd that manages iptables, and checks the rules it adds (filter FWKNOP_INPUT for access
// and local NAT, FWKNOP_FORWARD and nat FWKNOP_PREROUTING for NAT) or the command it runs.
func TestIntegrationSesameToFwknopdGrant(t *testing.T) {
	var cases []Case
	seen := map[spa.MessageType]bool{}
	for _, c := range Matrix() {
		if !seen[c.Type] {
			seen[c.Type] = true
			cases = append(cases, c)
		}
	}
	events, srv, wires := encodeAndSendServer(t, cases, false)
	// fwknopd cached every packet under sesame's replay digest, and refuses a resend.
	cache := strings.Join(srv.DigestCache(t), "\n") + "\n"
	for i, w := range wires {
		if !strings.Contains(cache, spa.ReplayDigest([]byte(w))+"\n") {
			t.Errorf("%s: replay digest %s not in fwknopd's cache:\n%s", cases[i].Name, spa.ReplayDigest([]byte(w)), cache)
		}
	}
	srv.Send(t, []byte(wires[0]))
	srv.WaitLog(t, "Replay detected", 1, 10*time.Second)
	input := strings.Join(srv.InputRules(t), "\n")
	forward := strings.Join(srv.Rules(t, "filter", "FWKNOP_FORWARD"), "\n")
	dnat := strings.Join(srv.Rules(t, "nat", "FWKNOP_PREROUTING"), "\n")
	for i, ev := range events {
		c := cases[i]
		src := "-s " + c.AllowIP + "/32"
		switch c.Type {
		case spa.CommandMsg:
			if !strings.Contains(strings.Join(details(ev), "\n"), "Running command '"+MatrixCommand+"'") {
				t.Errorf("%s: command not run; events: %s", c.Name, describe(ev))
			}
		case spa.NATAccessMsg, spa.ClientTimeoutNATAccessMsg:
			if !strings.Contains(forward, src) || !strings.Contains(dnat, src) ||
				!strings.Contains(dnat, "--to-destination "+MatrixNAT) {
				t.Errorf("%s: NAT rules missing:\nFORWARD:\n%s\nPREROUTING:\n%s", c.Name, forward, dnat)
			}
		default:
			if !strings.Contains(input, src) {
				t.Errorf("%s: FWKNOP_INPUT has no rule for %s:\n%s", c.Name, c.AllowIP, input)
			}
		}
		if c.Type == spa.CommandMsg {
			continue
		}
		// The client timeout (120 s) replaces FW_ACCESS_TIMEOUT (30 s) in the rule's expiry.
		want := int64(30)
		if c.Type.HasTimeout() {
			want = MatrixTimeout
		}
		rules := Filter(ev, EventRule)
		if len(rules) == 0 {
			t.Errorf("%s: no rule event", c.Name)
			continue
		}
		_, exp, _ := strings.Cut(rules[0].Line, "expires at ")
		at, err := strconv.ParseInt(exp, 10, 64)
		if left := at - time.Now().Unix(); err != nil || left > want || left < want-25 {
			t.Errorf("%s: rule %q expires in %d s, want about %d", c.Name, rules[0].Line, left, want)
		}
	}
}

// encodeAndSend starts fwknopd with the cases' stanzas, sends one spa.Encode packet per case
// and returns each packet's events after checking that exactly its own stanza decoded it with
// the encoded fields.
func encodeAndSend(t *testing.T, cases []Case, testMode bool) [][]Event {
	ev, _, _ := encodeAndSendServer(t, cases, testMode)
	return ev
}

func encodeAndSendServer(t *testing.T, cases []Case, testMode bool) ([][]Event, *Server, []string) {
	t.Helper()
	nstest.Require(t, "fwknopd", "iptables")
	var stanzas []string
	for _, c := range cases {
		stanzas = append(stanzas, c.Stanza())
	}
	ns := nstest.New(t)
	srv := StartServer(t, ns, ServerOptions{Access: strings.Join(stanzas, "\n"),
		Config: MatrixServerConfig, TestMode: testMode})

	now := time.Now()
	wires := make([]string, len(cases))
	msgs := make([]spa.Message, len(cases))
	var packets [][]byte
	for i, c := range cases {
		m := c.Message(now)
		w, err := spa.Encode(&m, c.Keys, rand.Reader)
		if err != nil {
			t.Fatalf("%s: spa.Encode: %v", c.Name, err)
		}
		wires[i], msgs[i] = w, m
		packets = append(packets, []byte(w))
	}
	t0 := time.Now()
	srv.Send(t, packets...)
	// fwknopd handles packets in order; the last one is done when its stanza logged a
	// policy outcome (rule added, test-mode skip, command run) after decoding it.
	last := wires[len(wires)-1]
	srv.WaitEvents(t, 60*time.Second, func(ev []Event) bool {
		for _, e := range ByWire(ev, last) {
			if e.Kind == EventRule || e.Kind == EventStanzaInfo && e.Stanza == len(cases) {
				return true
			}
		}
		return false
	})
	// fwknopd handles datagrams one after another: once a short sentinel sent after them is
	// logged as rejected, everything the last packet's grant logs is in the log too.
	srv.Send(t, []byte(strings.Repeat("A", 100)))
	srv.WaitEvents(t, 60*time.Second, func(ev []Event) bool {
		for _, e := range Filter(ev, EventRejected) {
			if e.Packet == len(packets)+1 {
				return true
			}
		}
		return false
	})
	t.Logf("fwknopd (test mode %v) handled %d packets in %v", testMode, len(packets), time.Since(t0))
	all := ParseLog(srv.Log())
	out := make([][]Event, len(cases))
	for i, c := range cases {
		mine := ByWire(all, wires[i])
		out[i] = mine
		dec := Filter(mine, EventDecoded)
		if len(dec) != 1 {
			t.Errorf("%s: fwknopd decoded it %d times; its events: %s", c.Name, len(dec), describe(mine))
			continue
		}
		if dec[0].Stanza != i+1 {
			t.Errorf("%s: decoded by stanza %d, want %d", c.Name, dec[0].Stanza, i+1)
		}
		if dec[0].Dump == nil {
			t.Errorf("%s: no field dump after decode: %s", c.Name, dec[0].Line)
			continue
		}
		if got := dec[0].Dump.SPAMessage(); got != msgs[i] {
			t.Errorf("%s: fwknopd decoded\n got %+v\nwant %+v", c.Name, got, msgs[i])
		}
		if d := dec[0].Dump; d.HMACType != int(c.HMAC) || d.EncryptionMode != int(c.Mode) {
			t.Errorf("%s: fwknopd says HMAC %s, mode %s", c.Name, d.HMACName, d.ModeName)
		}
	}
	return out, srv, wires
}

func details(ev []Event) []string {
	var s []string
	for _, e := range ev {
		s = append(s, e.Detail)
	}
	return s
}

func describe(ev []Event) string {
	var b strings.Builder
	for _, e := range ev {
		b.WriteString("\n  " + e.Kind.String() + ": " + e.Line)
	}
	return b.String()
}

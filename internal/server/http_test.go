package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/spahttp"
)

// httpRequest wraps wire as `fwknop -P http` sends it.
func httpRequest(wire []byte, headers ...string) []byte {
	path := strings.NewReplacer("+", "-", "/", "_").Replace(string(wire))
	return []byte("GET /" + path + " HTTP/1.0\r\nUser-Agent: Fwknop/2.6.10\r\nAccept: */*\r\n" +
		strings.Join(headers, "\r\n") + "\r\nConnection: close\r\n\r\n")
}

// ENABLE_SPA_OVER_HTTP: a packet in an HTTP request is granted only when the switch is on;
// X-Forwarded-For becomes the source only when ENABLE_X_FORWARDED_FOR is on.
func TestHandleSPAOverHTTP(t *testing.T) {
	now := func() time.Time { return testNow }
	st := baseStanza()
	m := baseMessage()
	m.Random = ""
	m.Message = "0.0.0.0,tcp/22" // the allow IP is the packet's source (or X-Forwarded-For)

	off, fwOff, _ := newSPAEnv(t, basePolicy(st), now)
	req := httpRequest(encodeSPA(t, m, keysA))
	if r := off.Handle(context.Background(), pkt("10.99.0.2", req)); r.Reason != Malformed {
		t.Errorf("HTTP off: %v, want %v", r.Reason, Malformed)
	}
	if len(fwOff.list()) != 0 {
		t.Errorf("HTTP off granted %v", fwOff.list())
	}

	p := basePolicy(st)
	p.SPAOverHTTP = true
	on, fw, _ := newSPAEnv(t, p, now)
	if r := on.Handle(context.Background(), pkt("10.99.0.2", req)); r.Reason != Granted {
		t.Fatalf("HTTP on: %v (%v)", r.Reason, r.Err)
	}
	if r := on.Handle(context.Background(), pkt("10.99.0.2", req)); r.Reason != Replay {
		t.Errorf("same request again: %v, want replay", r.Reason)
	}
	// The plain packet after the HTTP one is the same SPA data: a replay.
	if r := on.Handle(context.Background(), pkt("10.99.0.2", []byte(strings.Split(string(req), " ")[1][1:]))); r.Reason == Granted {
		t.Errorf("URL-safe form accepted as a plain packet")
	}
	noUA := []byte(strings.Replace(string(httpRequest(encodeSPA(t, m, keysA))), "User-Agent: Fwknop/2.6.10", "User-Agent: curl/8", 1))
	if r := on.Handle(context.Background(), pkt("10.99.0.2", noUA)); r.Reason != Malformed {
		t.Errorf("other User-Agent: %v, want %v", r.Reason, Malformed)
	}
	p.HTTP.AllowAnyUserAgent = true
	if err := on.Reload(p); err != nil {
		t.Fatal(err)
	}
	if r := on.Handle(context.Background(), pkt("10.99.0.2", noUA)); r.Reason != Granted {
		t.Errorf("other User-Agent with ALLOW_ANY_USER_AGENT: %v (%v)", r.Reason, r.Err)
	}

	// X-Forwarded-For: off, the header is ignored; on, its address is the source.
	xff := httpRequest(encodeSPA(t, m, keysA), "X-Forwarded-For: 10.99.0.77")
	if r := on.Handle(context.Background(), pkt("10.99.0.3", xff)); r.Reason != Granted {
		t.Fatalf("with X-Forwarded-For off: %v", r.Reason)
	}
	p.HTTP = spahttp.Options{XForwardedFor: true}
	if err := on.Reload(p); err != nil {
		t.Fatal(err)
	}
	xff = httpRequest(encodeSPA(t, m, keysA), "X-Forwarded-For: 10.99.0.77")
	if r := on.Handle(context.Background(), pkt("10.99.0.3", xff)); r.Reason != Granted {
		t.Fatalf("with X-Forwarded-For on: %v", r.Reason)
	}
	outside := httpRequest(encodeSPA(t, m, keysA), "X-Forwarded-For: 192.0.2.1")
	if r := on.Handle(context.Background(), pkt("10.99.0.3", outside)); r.Reason != UnknownSource {
		t.Errorf("X-Forwarded-For outside every SOURCE: %v, want %v", r.Reason, UnknownSource)
	}
	var srcs []string
	for _, g := range fw.list() {
		srcs = append(srcs, g.Src.String())
	}
	if got := strings.Join(srcs, " "); got != "10.99.0.2 10.99.0.2 10.99.0.3 10.99.0.77" {
		t.Errorf("granted sources %q", got)
	}
	// The cheap path leaves HTTP requests to Handle.
	if _, settled := on.cheap(context.Background(), pkt("10.99.0.2", req)); settled {
		t.Errorf("cheap path settled an HTTP request")
	}
}

// Payload-less TCP segments (SYN, ACK, FIN of a -P tcp/http knock) are counted, never logged, so
// they neither fill the log nor feed fail2ban.
func TestEmptyPayloadNotLogged(t *testing.T) {
	e := newEnv(t, basePolicy(baseStanza()))
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", nil)); r.Reason != Malformed {
		t.Errorf("empty payload: %v", r.Reason)
	}
	if r, settled := e.s.cheap(context.Background(), pkt("10.99.0.2", nil)); !settled || r.Reason != Malformed {
		t.Errorf("cheap path: %v %v", r.Reason, settled)
	}
	if l := e.log.String(); l != "" {
		t.Errorf("logged: %s", l)
	}
}

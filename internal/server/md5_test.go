package server

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
)

// A SESAME_MD5 stanza opens only the signed listener, whatever the packet asks for, and its
// allow-IP must be the packet's source unless the stanza says SESAME_REQUIRE_SOURCE_MATCH N.
func TestMD5StanzaGrantsOnlyTheListener(t *testing.T) {
	st := baseStanza()
	st.MD5 = true
	p := basePolicy(st)
	p.MD5Port = 2222
	for _, tc := range []struct {
		name    string
		msg     string
		src     string
		matchN  bool // SESAME_REQUIRE_SOURCE_MATCH N written in the stanza
		noPort  bool // no listener configured
		want    Reason
		granted []firewall.Grant
	}{
		{name: "tcp/22 mapped", msg: "10.99.0.2,tcp/22", src: "10.99.0.2", want: Granted,
			granted: []firewall.Grant{grant("10.99.0.2", "tcp", 2222, 30*time.Second)}},
		{name: "several ports, one listener grant", msg: "10.99.0.2,tcp/22,udp/53", src: "10.99.0.2", want: Granted,
			granted: []firewall.Grant{grant("10.99.0.2", "tcp", 2222, 30*time.Second)}},
		{name: "other allow-IP refused", msg: "10.99.0.7,tcp/22", src: "10.99.0.2", want: SourceMismatch},
		{name: "other allow-IP with SESAME_REQUIRE_SOURCE_MATCH N", msg: "10.99.0.7,tcp/22", src: "10.99.0.2", matchN: true, want: Granted,
			granted: []firewall.Grant{grant("10.99.0.7", "tcp", 2222, 30*time.Second)}},
		{name: "no listener", msg: "10.99.0.2,tcp/22", src: "10.99.0.2", noPort: true, want: PortNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := st
			s.RequireSourceMatchSet = tc.matchN
			pp := basePolicy(s)
			if !tc.noPort {
				pp.MD5Port = p.MD5Port
			}
			e := newEnv(t, pp)
			m := baseMessage()
			m.Message = tc.msg
			res := e.s.Handle(context.Background(), pkt(tc.src, e.codec.add(m, keysA)))
			if res.Reason != tc.want {
				t.Fatalf("reason %v, want %v; log:\n%s", res.Reason, tc.want, e.log)
			}
			if got := e.fw.list(); !reflect.DeepEqual(got, tc.granted) {
				t.Fatalf("firewall got %v, want %v", got, tc.granted)
			}
		})
	}
}

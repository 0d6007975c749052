package server

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
)

// hookCall is one OnGrant call.
type hookCall struct {
	stanza int
	grants []firewall.Grant
}

func newHookEnv(t *testing.T, p Policy, hookErr error) (*env, *[]hookCall) {
	t.Helper()
	var calls []hookCall
	e := &env{t: t, codec: newFakeCodec(), fw: &fakeFirewall{}, cache: newFakeCache(), log: &logBuffer{}}
	s, err := New(Config{Policy: p, Firewall: e.fw, Cache: e.cache, NewOpener: e.codec.opener, Logger: e.log.logger(),
		Now: func() time.Time { return testNow },
		OnGrant: func(st *fwconf.Stanza, gs []firewall.Grant) error {
			calls = append(calls, hookCall{st.Num, gs})
			return hookErr
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e, &calls
}

// OnGrant sees the grants the firewall made, after it made them, with the granting stanza.
func TestOnGrant(t *testing.T) {
	s1, s2 := baseStanza(), baseStanza()
	s2.Num, s2.Keys = 2, keysB
	e, calls := newHookEnv(t, basePolicy(s1, s2), nil)
	m := baseMessage()
	m.Message = "10.99.0.2,tcp/22,udp/53"
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(m, keysB))); r.Reason != Granted {
		t.Fatalf("reason %v", r.Reason)
	}
	want := []firewall.Grant{grant("10.99.0.2", "tcp", 22, 30*time.Second), grant("10.99.0.2", "udp", 53, 30*time.Second)}
	if st := e.fw.stanzas(); !reflect.DeepEqual(st, []int{2, 2}) {
		t.Errorf("grants carry stanzas %v, want [2 2] (the ledger records them)", st)
	}
	if !reflect.DeepEqual(e.fw.list(), want) {
		t.Errorf("firewall %+v, want %+v", e.fw.list(), want)
	}
	for i := range want {
		want[i].Stanza = 2
	}
	if len(*calls) != 1 || (*calls)[0].stanza != 2 || !reflect.DeepEqual((*calls)[0].grants, want) {
		t.Errorf("calls %+v, firewall %+v", *calls, e.fw.list())
	}

	// No call when the firewall fails or the packet is refused.
	e.fw.err = errors.New("netlink says no")
	e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA)))
	e.fw.err = nil
	old := baseMessage()
	old.Timestamp -= 1000
	e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(old, keysA)))
	if len(*calls) != 1 {
		t.Errorf("%d calls, want 1", len(*calls))
	}
}

// A failing hook is logged and the grant stands.
func TestOnGrantError(t *testing.T) {
	e, calls := newHookEnv(t, basePolicy(baseStanza()), errors.New("no md5 for you"))
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA))); r.Reason != Granted {
		t.Fatalf("reason %v", r.Reason)
	}
	if len(*calls) != 1 || len(e.fw.list()) != 1 || !strings.Contains(e.log.String(), "no md5 for you") {
		t.Errorf("calls %d, grants %d, log %s", len(*calls), len(e.fw.list()), e.log)
	}
}

// Test mode makes no grants, so the hook is not called.
func TestOnGrantTestMode(t *testing.T) {
	p := basePolicy(baseStanza())
	p.TestMode = true
	e, calls := newHookEnv(t, p, nil)
	if r := e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(baseMessage(), keysA))); r.Reason != Granted {
		t.Fatalf("reason %v", r.Reason)
	}
	if len(*calls) != 0 {
		t.Errorf("%d calls in test mode", len(*calls))
	}
}

package server

import (
	"context"
	"errors"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/cmdclose"
	"github.com/sesame-spa/sesame/internal/cmdexec"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/spa"
)

// fakePool records submitted commands; the test finishes them.
type fakePool struct {
	mu    sync.Mutex
	specs []cmdexec.Spec
	dones []func(cmdexec.Result)
	busy  bool
}

func (p *fakePool) Submit(s cmdexec.Spec, done func(cmdexec.Result)) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy {
		return cmdexec.ErrBusy
	}
	p.specs, p.dones = append(p.specs, s), append(p.dones, done)
	return nil
}

func (p *fakePool) argv() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]string
	for _, s := range p.specs {
		out = append(out, s.Argv)
	}
	return out
}

// finish reports command i done with r.
func (p *fakePool) finish(i int, r cmdexec.Result) {
	p.mu.Lock()
	done := p.dones[i]
	r.Argv = p.specs[i].Argv
	p.mu.Unlock()
	done(r)
}

// fakeTimers records AfterFunc calls; the test fires them.
type fakeTimers struct {
	mu sync.Mutex
	d  []time.Duration
	f  []func()
}

func (t *fakeTimers) after(d time.Duration, f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.d, t.f = append(t.d, d), append(t.f, f)
}

func (t *fakeTimers) fire(i int) { t.mu.Lock(); f := t.f[i]; t.mu.Unlock(); f() }

type cmdEnv struct {
	*env
	pool   *fakePool
	timers *fakeTimers
	store  *cmdclose.Store
}

func newCmdEnv(t *testing.T, p Policy, storePath string) *cmdEnv {
	t.Helper()
	e := &cmdEnv{env: &env{t: t, codec: newFakeCodec(), fw: &fakeFirewall{}, cache: newFakeCache(), log: &logBuffer{}},
		pool: &fakePool{}, timers: &fakeTimers{}}
	var closes CloseStore
	if storePath != "" {
		st, err := cmdclose.Open(storePath)
		if err != nil {
			t.Fatal(err)
		}
		e.store, closes = st, st
	}
	s, err := New(Config{Policy: p, Firewall: e.fw, Cache: e.cache, NewOpener: e.codec.opener, Logger: e.log.logger(),
		Now: func() time.Time { return testNow }, Commands: e.pool, Closes: closes, AfterFunc: e.timers.after})
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	return e
}

func (e *cmdEnv) send(m spa.Message) Result {
	return e.s.Handle(context.Background(), pkt("10.99.0.2", e.codec.add(m, keysA)))
}

func commandMsg(cmd string) spa.Message {
	m := baseMessage()
	m.Type, m.Message = spa.CommandMsg, "10.99.0.2,"+cmd
	return m
}

func TestCommandMessage(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	st := baseStanza()
	st.Cmd = fwconf.Command{Exec: true, User: "nobody"}
	e := newCmdEnv(t, basePolicy(st), "")
	res := e.send(commandMsg("touch /tmp/x"))
	if res.Reason != CommandAccepted || res.Stanza != 1 {
		t.Fatalf("result %+v; log:\n%s", res, e.log)
	}
	if got := e.pool.argv(); !reflect.DeepEqual(got, [][]string{{"touch", "/tmp/x"}}) {
		t.Fatalf("ran %q", got)
	}
	spec := e.pool.specs[0]
	if spec.UID == nil || strconv.Itoa(int(*spec.UID)) != nobody.Uid || spec.GID == nil || strconv.Itoa(int(*spec.GID)) != nobody.Gid {
		t.Errorf("runs as %v/%v, want nobody %s/%s", spec.UID, spec.GID, nobody.Uid, nobody.Gid)
	}
	if len(e.fw.list()) != 0 {
		t.Errorf("a command message made grants: %v", e.fw.list())
	}
	if !strings.Contains(e.log.String(), `msg="command accepted"`) || strings.Contains(e.log.String(), "command finished") {
		t.Errorf("log before the end:\n%s", e.log)
	}
	e.pool.finish(0, cmdexec.Result{Exit: 3, Output: []byte("first\nsecond\n"), Duration: time.Millisecond, Err: errors.New("exit status 3")})
	logs := e.log.String()
	for _, want := range []string{`msg="command finished"`, "exit=3", `output="first | second"`, "duration=1ms", "kind=command"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if s := e.s.Stats(); s.ByReason[CommandAccepted] != 1 || s.Rejected() != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCommandRefusals(t *testing.T) {
	tests := []struct {
		name   string
		cmd    fwconf.Command
		policy func(*Policy)
		busy   bool
		want   Reason
		argv   [][]string
	}{
		{name: "ENABLE_CMD_EXEC N", want: CommandRefused},
		{name: "queue full", cmd: fwconf.Command{Exec: true}, busy: true, want: CommandBusy},
		{name: "cycle stanza", cmd: fwconf.Command{Exec: true, CycleOpen: "true", CycleClose: ""}, want: CommandRefused},
		{name: "test mode", cmd: fwconf.Command{Exec: true}, policy: func(p *Policy) { p.TestMode = true }, want: CommandAccepted},
		{name: "sudo", cmd: fwconf.Command{Exec: true, Sudo: true, SudoUser: "nobody", SudoGroup: "root"},
			policy: func(p *Policy) { p.SudoExe = "/opt/sudo" }, want: CommandAccepted,
			argv: [][]string{{"/opt/sudo", "-u", "nobody", "echo", "hi"}}},
		{name: "sudo default", cmd: fwconf.Command{Exec: true, Sudo: true}, want: CommandAccepted,
			argv: [][]string{{"/usr/bin/sudo", "echo", "hi"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := baseStanza()
			st.Cmd = tc.cmd
			p := basePolicy(st)
			if tc.policy != nil {
				tc.policy(&p)
			}
			e := newCmdEnv(t, p, "")
			e.pool.busy = tc.busy
			if res := e.send(commandMsg("echo hi")); res.Reason != tc.want {
				t.Fatalf("reason %v, want %v; log:\n%s", res.Reason, tc.want, e.log)
			}
			if got := e.pool.argv(); !reflect.DeepEqual(got, tc.argv) {
				t.Errorf("ran %q, want %q", got, tc.argv)
			}
		})
	}
}

func TestCommandStanzaNeedsRunner(t *testing.T) {
	st := baseStanza()
	st.Cmd.Exec = true
	if _, err := New(Config{Policy: basePolicy(st), Firewall: &fakeFirewall{}}); err == nil || !strings.Contains(err.Error(), "command runner") {
		t.Fatalf("New without Commands: %v", err)
	}
	st.Cmd.User = "no-such-user-sesame"
	if _, err := New(Config{Policy: basePolicy(st), Firewall: &fakeFirewall{}, Commands: &fakePool{}}); err == nil ||
		!strings.Contains(err.Error(), "CMD_EXEC_USER no-such-user-sesame") {
		t.Fatalf("unknown user: %v", err)
	}
}

func cycleStanza() fwconf.Stanza {
	st := baseStanza()
	st.OpenPorts = []spa.ProtoPort{{Proto: "tcp", Port: 22}, {Proto: "udp", Port: 53}}
	st.Cmd = fwconf.Command{CycleOpen: "nft add element inet t s { $IP . $PROTO . $PORT }",
		CycleClose: "nft delete element inet t s { $IP } $PKT_SRC $DST $TIMEOUT $CLIENT_TIMEOUT", CycleTimer: 10 * time.Second}
	return st
}

func TestCycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "closes")
	e := newCmdEnv(t, basePolicy(cycleStanza()), path)
	m := baseMessage()
	m.Message = "10.99.0.7,udp/53,tcp/22"
	if res := e.send(m); res.Reason != CommandAccepted {
		t.Fatalf("result %+v; log:\n%s", res, e.log)
	}
	open := []string{"nft", "add", "element", "inet", "t", "s", "{", "10.99.0.7", ".", "17", ".", "53", "}"}
	if got := e.pool.argv(); !reflect.DeepEqual(got, [][]string{open}) {
		t.Fatalf("ran %q", got)
	}
	if len(e.fw.list()) != 0 {
		t.Errorf("a cycle made firewall grants: %v", e.fw.list())
	}
	if !reflect.DeepEqual(e.timers.d, []time.Duration{10 * time.Second}) {
		t.Fatalf("timers %v", e.timers.d)
	}
	closeArgv := []string{"nft", "delete", "element", "inet", "t", "s", "{", "10.99.0.7", "}", "10.99.0.2", "10.99.0.1",
		strconv.FormatInt(testNow.Unix()+10, 10), "0"}
	pending := e.store.Pending()
	if len(pending) != 1 || !reflect.DeepEqual(pending[0].Argv, closeArgv) || !pending[0].Due.Equal(testNow.Add(10*time.Second)) {
		t.Fatalf("pending %+v", pending)
	}
	e.timers.fire(0)
	if got := e.pool.argv(); len(got) != 2 || !reflect.DeepEqual(got[1], closeArgv) {
		t.Fatalf("after the timer ran %q", got)
	}
	if len(e.store.Pending()) != 1 {
		t.Fatal("close forgotten before it finished")
	}
	e.pool.finish(1, cmdexec.Result{})
	if n := len(e.store.Pending()); n != 0 {
		t.Fatalf("%d closes pending after the close ran", n)
	}
	if !strings.Contains(e.log.String(), "kind=cycle-close") {
		t.Errorf("no close line:\n%s", e.log)
	}

	// A port outside OPEN_PORTS runs nothing (fwknopd would run the cycle).
	m.Message = "10.99.0.7,tcp/80"
	if res := e.send(m); res.Reason != PortNotAllowed || len(e.pool.argv()) != 2 {
		t.Fatalf("port not open: %v, ran %q", res.Reason, e.pool.argv())
	}
}

func TestCycleClientTimeoutAndNone(t *testing.T) {
	st := cycleStanza()
	e := newCmdEnv(t, basePolicy(st), "")
	m := baseMessage()
	m.Type, m.ClientTimeout = spa.ClientTimeoutAccessMsg, 45
	if res := e.send(m); res.Reason != CommandAccepted || !reflect.DeepEqual(e.timers.d, []time.Duration{45 * time.Second}) {
		t.Fatalf("%v, timers %v", res.Reason, e.timers.d)
	}
	st.Cmd.CycleClose = "" // NONE
	e = newCmdEnv(t, basePolicy(st), "")
	if res := e.send(baseMessage()); res.Reason != CommandAccepted || len(e.timers.d) != 0 || len(e.pool.argv()) != 1 {
		t.Fatalf("NONE: %v, timers %v, ran %q", res.Reason, e.timers.d, e.pool.argv())
	}
	e = newCmdEnv(t, basePolicy(cycleStanza()), "")
	e.pool.busy = true
	if res := e.send(baseMessage()); res.Reason != CommandBusy || len(e.timers.d) != 0 {
		t.Fatalf("busy: %v, timers %v", res.Reason, e.timers.d)
	}
}

// TestCycleCloseAfterRestart: a close recorded by one server runs from the next one, at once
// when due and later when not; a full queue retries.
func TestCycleCloseAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "closes")
	st, err := cmdclose.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	due, _ := st.Add(cmdclose.Close{Stanza: 1, Src: "10.99.0.7", Argv: []string{"close", "due"}, Due: testNow.Add(-time.Minute)})
	later, _ := st.Add(cmdclose.Close{Stanza: 1, Src: "10.99.0.8", Argv: []string{"close", "later"}, Due: testNow.Add(time.Minute)})
	e := newCmdEnv(t, basePolicy(cycleStanza()), path)
	if !reflect.DeepEqual(e.timers.d, []time.Duration{0, time.Minute}) {
		t.Fatalf("timers %v", e.timers.d)
	}
	e.pool.busy = true
	e.timers.fire(0)
	if len(e.timers.d) != 3 || e.timers.d[2] != closeRetry || !strings.Contains(e.log.String(), "queue is full") {
		t.Fatalf("busy close not retried: %v\n%s", e.timers.d, e.log)
	}
	e.pool.busy = false
	e.timers.fire(2)
	e.timers.fire(1)
	if got := e.pool.argv(); !reflect.DeepEqual(got, [][]string{due.Argv, later.Argv}) {
		t.Fatalf("ran %q", got)
	}
	e.pool.finish(0, cmdexec.Result{})
	if p := e.store.Pending(); len(p) != 1 || p[0].ID != later.ID {
		t.Fatalf("pending %+v", p)
	}
}

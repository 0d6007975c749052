package failclosed

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"github.com/sesame-spa/sesame/internal/sesametest"
)

// healMsg is in the one ERROR line the daemon logs per heal.
const healMsg = "were removed by someone else"

// rig is one row's topology and server.
type rig struct {
	t             *testing.T
	h             host
	srv, cli, out *nstest.NS
	d             *sesametest.Server
	conf, access  string // the row's fwknopd.conf (capture and host lines) and access.conf
}

// cell runs one event of the row: the outsider probes from before action until check ends;
// check runs as the subtest named after the event. An action that fails ends the row, and the
// cell stays recorded as failed.
func (r *rig) cell(name string, action func(), check func(t *testing.T, p *prober)) {
	r.t.Helper()
	r.cellProbing(name, true, action, check)
}

// cellAfter is cell for events that begin with nothing guarding the port (sesame's first start
// on a host without a firewall, a start after the documented flush window): the outsider
// probes from the end of action on.
func (r *rig) cellAfter(name string, action func(), check func(t *testing.T, p *prober)) {
	r.t.Helper()
	r.cellProbing(name, false, action, check)
}

func (r *rig) cellProbing(name string, during bool, action func(), check func(t *testing.T, p *prober)) {
	r.t.Helper()
	record(r.h.name, name, false)
	var p *prober
	if during {
		p = startProbe(r.t, r.out, outAddr)
	}
	action()
	if !during {
		p = startProbe(r.t, r.out, outAddr)
	}
	pass := r.t.Run(name, func(t *testing.T) {
		defer p.halt()
		check(t, p)
	})
	record(r.h.name, name, pass)
}

// granted checks the promise after an event: the granted client connects (within 3 s: a heal
// may be under way) and the outsider, probing throughout, never got in.
func (r *rig) granted(t *testing.T, p *prober) {
	t.Helper()
	took := waitDial(t, r.cli, sshAddr, true, 3*time.Second)
	t.Logf("granted client connected after %v", took.Round(time.Millisecond))
	p.settle(t, 10)
	p.wantShut(t)
}

// revoked checks that neither the client nor the outsider gets in.
func (r *rig) revoked(t *testing.T, p *prober) {
	t.Helper()
	waitDial(t, r.cli, sshAddr, false, 3*time.Second)
	p.settle(t, 10)
	p.wantShut(t)
}

// intact checks that sesame's table and (on host rows) its hook are in place.
func (r *rig) intact(t *testing.T) {
	t.Helper()
	if !tables(t, r.srv)["inet sesame"] {
		t.Errorf("table inet sesame is gone:\n%s", r.srv.Run(t, "nft", "list", "ruleset"))
	}
	if r.h.table != "" && !hooked(t, r.srv, r.h.table) {
		t.Errorf("no sesame hook in table %s:\n%s", r.h.table, r.srv.Run(t, "nft", "list", "ruleset"))
	}
}

func (r *rig) start() *sesametest.Server {
	return sesametest.StartServer(r.t, r.srv, sesametest.ServerOptions{Config: r.conf, Access: r.access})
}

func (r *rig) ledger() string {
	return filepath.Join(filepath.Dir(r.d.Conf), "run", "sesame-sesame.ledger")
}

// TestIntegrationMatrix runs every host set-up (row) through the events (cells, subtests).
func TestIntegrationMatrix(t *testing.T) {
	nstest.Require(t, "fwknop", "nft")
	for _, h := range hosts {
		t.Run(h.name, func(t *testing.T) {
			nstest.Require(t, h.needs...)
			t.Parallel()
			srv, cli := nstest.Pair(t)
			r := &rig{t: t, h: h, srv: srv, cli: cli, out: outsider(t, srv),
				conf: h.captureConf(srv.Ifc) + h.conf, access: stanza(grantSecs, h.open)}
			sesametest.Listen(t, srv, ":22", sesametest.Banner)
			r.run()
		})
	}
}

func (r *rig) run() {
	t, h := r.t, r.h
	cell := r.cell
	if h.setup != nil {
		h.setup(t, r.srv)
	} else {
		cell = r.cellAfter // nothing guards before sesame starts: probe from its start on
	}
	cell("start", func() {
		r.d = r.start()
		if strings.Contains(lastLine(r.d, "firewall ready"), "owned=false") {
			t.Skip("this kernel cannot own the table (Linux < 6.9); TestIntegrationFallbackHeals covers that path")
		}
		knock(t, r.cli, nstest.SrvIP4, nstest.CliIP4)
	}, func(t *testing.T, p *prober) {
		r.d.WaitLog(t, 1, 3*time.Second, "access granted", "src="+nstest.CliIP4)
		ready := lastLine(r.d, "firewall ready")
		if h.hooks != "" {
			want := "hooks=" + h.hooks
			if strings.Contains(h.hooks, " ") {
				want = fmt.Sprintf("hooks=%q", h.hooks)
			}
			if !strings.Contains(ready, want) {
				t.Errorf("start did not hook the host firewall (want %s): %s", want, ready)
			}
		}
		if ls := r.d.LogLines("nothing drops"); len(ls) > 0 {
			t.Errorf("warned that nothing drops: %s", ls[0])
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.reload("host-reload")
	r.attacks()
	r.reload("host-reload-after-flush")
	r.lifecycle()
	r.seconds()
	if !h.udp {
		r.link()
	}
	r.cell("flush-while-stopped", func() {
		r.d.Stop(t, syscall.SIGTERM)
		r.srv.Run(t, "nft", "flush", "ruleset")
	}, func(t *testing.T, p *prober) {
		// The documented window: an orphaned table is not protected.
		if tables(t, r.srv)["inet sesame"] {
			t.Errorf("table inet sesame survived a flush while no daemon owned it")
		}
		ok, tries, _ := p.halt()
		t.Logf("window (not asserted): outsider connected %d times in %d attempts", ok, tries)
	})
	r.cellAfter("start-after-stopped-flush", func() { r.d.Restart(t) }, func(t *testing.T, p *prober) {
		if ready := lastLine(r.d, "firewall ready"); !strings.Contains(ready, "grants_restored=1") {
			t.Errorf("the client's grant was not restored from the ledger: %s", ready)
		}
		if !tables(t, r.srv)["inet sesame"] {
			t.Errorf("no table inet sesame after start")
		}
		r.granted(t, p)
	})
	if h.reload != nil {
		n := len(r.d.LogLines("a host firewall chain appeared"))
		r.cell("host-reload-after-stopped-flush", func() { h.reload(t, r.srv) }, func(t *testing.T, p *prober) {
			r.d.WaitLog(t, n+1, 3*time.Second, "a host firewall chain appeared", "level=WARN")
			r.granted(t, p)
			r.intact(t)
		})
	}
	r.removal()
}

// reload is the host firewall's own reload, which removes sesame's hook: the daemon heals it.
func (r *rig) reload(name string) {
	if r.h.reload == nil {
		return
	}
	n := len(r.d.LogLines(healMsg))
	r.cell(name, func() { r.h.reload(r.t, r.srv) }, func(t *testing.T, p *prober) {
		r.granted(t, p)
		r.intact(t)
		ls := r.d.WaitLog(t, n+1, 3*time.Second, healMsg, "level=ERROR")
		t.Logf("heal: %s", ls[len(ls)-1])
	})
}

// attacks change the ruleset while the daemon owns its table.
func (r *rig) attacks() {
	t := r.t
	var out string
	var err error
	r.cell("delete-table", func() {
		out, err = nftTry(r.srv, "delete", "table", "inet", "sesame")
	}, func(t *testing.T, p *prober) {
		if err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("nft delete table inet sesame: %v, want EPERM:\n%s", err, out)
		}
		r.intact(t)
		r.granted(t, p)
	})
	var refused []string
	r.cell("change-owned-table", func() {
		refused = nil
		for _, args := range [][]string{
			{"delete", "chain", "inet", "sesame", "guard"},
			{"flush", "chain", "inet", "sesame", "guard"},
			{"flush", "set", "inet", "sesame", "grants4"},
			{"delete", "element", "inet", "sesame", "guarded", "{ tcp . 22 }"},
			{"add", "element", "inet", "sesame", "grants4", "{ " + outCli + " . tcp . 22 }"},
		} {
			if out, err := nftTry(r.srv, args...); err == nil {
				refused = append(refused, fmt.Sprintf("nft %s succeeded: %s", strings.Join(args, " "), out))
			}
		}
	}, func(t *testing.T, p *prober) {
		for _, e := range refused {
			t.Error(e)
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("flush-ruleset", func() { r.srv.Run(t, "nft", "flush", "ruleset") }, func(t *testing.T, p *prober) {
		if !tables(t, r.srv)["inet sesame"] {
			t.Errorf("nft flush ruleset removed the owned table")
		}
		r.granted(t, p)
	})
}

// lifecycle stops, restarts and kills the daemon.
func (r *rig) lifecycle() {
	t := r.t
	r.cell("sigterm", func() { r.d.Stop(t, syscall.SIGTERM) }, func(t *testing.T, p *prober) {
		if !r.d.Exited() {
			t.Fatal("server still running")
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("clean-restart", func() { r.d.Restart(t) }, func(t *testing.T, p *prober) {
		if ready := lastLine(r.d, "firewall ready"); !strings.Contains(ready, "grants_in_kernel=1") {
			t.Errorf("restart did not find the client's grant: %s", ready)
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("kill-9", func() { r.d.Stop(t, syscall.SIGKILL) }, func(t *testing.T, p *prober) {
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("start-after-kill-9", func() { r.d.Restart(t) }, func(t *testing.T, p *prober) {
		if ready := lastLine(r.d, "firewall ready"); !strings.Contains(ready, "owned=true") {
			t.Errorf("did not take the orphaned table over: %s", ready)
		}
		r.intact(t)
		r.granted(t, p)
	})
}

// seconds starts second servers next to the running one: none may touch its guard.
func (r *rig) seconds() {
	t := r.t
	var out string
	r.cell("second-started", func() {
		out = runFail(t, r.srv, writeFiles(t, r.conf, r.access)) // same table, own pid file
	}, func(t *testing.T, p *prober) {
		for _, want := range []string{fmt.Sprintf("pid %d", r.d.PID), "SESAME_TABLE"} {
			if !strings.Contains(out, want) {
				t.Errorf("refusal does not name %q:\n%s", want, out)
			}
		}
		if r.d.Exited() {
			t.Fatal("the first server exited")
		}
		if st, _, _ := ctl(t, r.srv, r.d.Conf, r.d.Access, "-S"); !strings.Contains(st, fmt.Sprintf("pid=%d", r.d.PID)) {
			t.Errorf("-S no longer finds the first server: %s", st)
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("second-bad-config", func() {
		out = runFail(t, r.srv, writeFiles(t, r.conf+"MAX_SPA_PACKET_AGE soon;\n", r.access))
	}, func(t *testing.T, p *prober) {
		if !strings.Contains(out, "MAX_SPA_PACKET_AGE") {
			t.Errorf("refusal does not name the variable:\n%s", out)
		}
		r.intact(t)
		r.granted(t, p)
	})
	port := 62201 // the first server's, in UDP mode
	if !r.h.udp {
		port = 62209
		var pc net.PacketConn
		if err := r.srv.Do(t, func() (err error) { pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port)); return err }); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
	}
	r.cell("second-udp-in-use", func() {
		out = runFail(t, r.srv, writeFiles(t, fmt.Sprintf("ENABLE_UDP_SERVER Y;\nUDPSERV_PORT %d;\nSESAME_TABLE fourth;\n", port),
			stanza(grantSecs, "OPEN_PORTS tcp/2224")))
	}, func(t *testing.T, p *prober) {
		if !strings.Contains(out, "address already in use") {
			t.Errorf("refusal does not say why:\n%s", out)
		}
		if tables(t, r.srv)["inet fourth"] {
			t.Errorf("a server that failed to start created its table")
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("second-overlap", func() {
		out = runFail(t, r.srv, writeFiles(t, "ENABLE_UDP_SERVER Y;\nUDPSERV_PORT 62203;\nSESAME_TABLE third;\nSESAME_GUARD_PORTS tcp/22;\n",
			stanza(grantSecs, "OPEN_PORTS tcp/2223")))
	}, func(t *testing.T, p *prober) {
		for _, want := range []string{"inet sesame", "tcp/22"} {
			if !strings.Contains(out, want) {
				t.Errorf("refusal does not name %q:\n%s", want, out)
			}
		}
		if tables(t, r.srv)["inet third"] {
			t.Errorf("a server refused for overlapping ports created its table")
		}
		r.intact(t)
		r.granted(t, p)
	})
	r.cell("second-stopped", func() {
		d2 := sesametest.StartServer(t, r.srv, sesametest.ServerOptions{
			Config: "ENABLE_UDP_SERVER Y;\nUDPSERV_PORT 62202;\nSESAME_TABLE second;\n",
			Access: stanza(grantSecs, "OPEN_PORTS tcp/2222")})
		d2.Stop(t, syscall.SIGTERM)
	}, func(t *testing.T, p *prober) {
		if !tables(t, r.srv)["inet second"] {
			t.Errorf("the second server's own table is gone")
		}
		if r.d.Exited() {
			t.Fatal("the first server exited")
		}
		r.intact(t)
		r.granted(t, p)
	})
}

// link takes the sniffed interface down and up (sniff rows).
func (r *rig) link() {
	t, ifc := r.t, r.srv.Ifc
	r.cell("iface-down", func() {
		r.srv.Run(t, "ip", "link", "set", ifc, "down")
		r.d.WaitLog(t, 1, 5*time.Second, "interface "+ifc+" went down")
	}, func(t *testing.T, p *prober) {
		if r.d.Exited() {
			t.Fatalf("the server exited when its interface went down")
		}
		if left := r.d.FWList(t)[nstest.CliIP4+" tcp/22"]; left <= 0 {
			t.Errorf("the client's grant is gone from the kernel while the link is down")
		}
		r.intact(t)
		p.settle(t, 10)
		p.wantShut(t) // the client has no link: only the outsider is checked
	})
	r.cell("iface-up-knock", func() {
		r.srv.Run(t, "ip", "link", "set", ifc, "up")
		waitUp(t, r.srv, ifc)
		waitUp(t, r.cli, r.cli.Ifc)
		r.d.WaitLog(t, 1, 5*time.Second, "reattached to interface "+ifc)
	}, func(t *testing.T, p *prober) {
		waitDial(t, r.cli, sshAddr, true, 3*time.Second) // the old grant
		n := len(r.d.LogLines("access granted"))
		knock(t, r.cli, nstest.SrvIP4, nstest.CliIP4)
		r.d.WaitLog(t, n+1, 3*time.Second, "access granted", "src="+nstest.CliIP4)
		if r.d.Exited() {
			t.Fatalf("the server exited")
		}
		r.granted(t, p)
	})
}

// removal revokes every grant, then removes sesame's rules: refused while the daemon runs.
func (r *rig) removal() {
	t := r.t
	var stdout, stderr string
	var err error
	r.cell("fw-flush", func() {
		stdout, stderr, err = ctl(t, r.srv, r.d.Conf, r.d.Access, "--fw-flush")
	}, func(t *testing.T, p *prober) {
		if err != nil || !strings.Contains(stdout, "grants revoked") {
			t.Fatalf("--fw-flush: %v\n%s%s", err, stdout, stderr)
		}
		if g := r.d.FWList(t); len(g) != 0 {
			t.Errorf("grants left after --fw-flush: %v", g)
		}
		r.intact(t)
		r.revoked(t, p)
	})
	r.cell("fw-remove-running", func() {
		stdout, stderr, err = ctl(t, r.srv, r.d.Conf, r.d.Access, "--fw-remove")
	}, func(t *testing.T, p *prober) {
		if err == nil || !strings.Contains(stderr, fmt.Sprintf("pid %d", r.d.PID)) {
			t.Errorf("--fw-remove while running: %v, want a refusal naming pid %d\n%s%s", err, r.d.PID, stdout, stderr)
		}
		r.intact(t)
		r.revoked(t, p)
	})
	r.cell("fw-remove-stopped", func() {
		r.d.Stop(t, syscall.SIGTERM)
		stdout, stderr, err = ctl(t, r.srv, r.d.Conf, r.d.Access, "--fw-remove")
	}, func(t *testing.T, p *prober) {
		if err != nil || !strings.Contains(stdout, "removed") || !strings.Contains(stderr, "WARNING") {
			t.Errorf("--fw-remove: %v, want the removal and a warning\n%s%s", err, stdout, stderr)
		}
		if tables(t, r.srv)["inet sesame"] {
			t.Errorf("table inet sesame left after --fw-remove")
		}
		if r.h.table != "" && hooked(t, r.srv, r.h.table) {
			t.Errorf("sesame's hook left in %s after --fw-remove", r.h.table)
		}
		if _, err := os.Stat(r.ledger()); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ledger left after --fw-remove: %v", err)
		}
		if r.h.table == "" {
			// Nothing guards the port any more: the uninstall really happened.
			p.halt()
			waitDial(t, r.out, outAddr, true, 3*time.Second)
			return
		}
		r.revoked(t, p) // the host's own DROP stays
	})
}

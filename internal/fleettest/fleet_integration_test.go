package fleettest

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/sesametest"
)

// fanoutBound is how long a grant may take to reach another gateway before a test fails: a
// bound for failure on a loaded machine, not the measurement (bench/fleet measures).
const fanoutBound = 5 * time.Second

// A packet accepted by gateway A and replayed to B and C is refused there as a replay (the
// grant still reaches B and C through the fleet, as A's grant).
func TestIntegrationFleetReplay(t *testing.T) {
	t.Parallel()
	r := New(t, Options{})
	a, b, c := r.Gateways[0], r.Gateways[1], r.Gateways[2]
	ip := r.AddClientIPs(t, 1)[0]
	pkt := Packet(t, ip)
	r.Send(t, a, pkt)
	a.WaitLog(t, 1, fanoutBound, "access granted", "allow="+ip)
	for _, g := range []*Gateway{b, c} {
		r.Send(t, g, pkt)
	}
	for _, g := range []*Gateway{b, c} {
		g.WaitLog(t, 1, fanoutBound, "reason=replay", "src="+ClientIP)
		g.WaitLog(t, 1, fanoutBound, "fleet: access granted for another gateway", "src="+ip)
		if n := LogCount(g, "access granted", "allow="+ip); n != 0 {
			t.Errorf("gateway %s granted the replayed packet itself (%d lines)", g.Name, n)
		}
	}
	// A replay to A itself is refused too (its own cache and Redis agree).
	r.Send(t, a, pkt)
	a.WaitLog(t, 1, fanoutBound, "reason=replay")
}

// A knock on A lets the client connect through B and C; the time from the knock to the port
// open on C is measured (p50 logged; bench/fleet reports it). --fw-list on C shows the grants
// in the kernel and the fleet's live grants in Redis.
func TestIntegrationFleetFanout(t *testing.T) {
	t.Parallel()
	r := New(t, Options{})
	a, b, c := r.Gateways[0], r.Gateways[1], r.Gateways[2]
	const n = 15
	ips := r.AddClientIPs(t, n)
	pkts := Packets(t, ips)
	var ds []time.Duration
	for i, ip := range ips {
		if res := r.Dial(t, ip, c.SSHAddr(), 200*time.Millisecond); res != sesametest.Timeout {
			t.Fatalf("C before the knock from %s: %v, want timeout", ip, res)
		}
		d, err := r.KnockToOpen(t, a, c, pkts[i], ip, fanoutBound)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	t.Logf("knock on A to port open on C (%d knocks, attempt every %v): p50 %v, p90 %v, max %v",
		n, AttemptEvery, ds[n/2], ds[n*9/10], ds[n-1])
	if res := r.Dial(t, ips[0], b.SSHAddr(), time.Second); res != sesametest.Open {
		t.Errorf("B after the knock on A: %v, want open", res)
	}
	if res := r.Dial(t, ClientIP, c.SSHAddr(), 300*time.Millisecond); res != sesametest.Timeout {
		t.Errorf("C from an address without a grant: %v, want timeout", res)
	}
	out := c.Ctl(t, "--fw-list")
	kernel, err := sesametest.ParseFWList(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if _, ok := kernel[ip+" tcp/22"]; !ok {
			t.Errorf("--fw-list on C lacks the kernel grant for %s:\n%s", ip, out)
		}
		if !strings.Contains(out, "# fleet: "+ip+" tcp/22 expires in ") {
			t.Errorf("--fw-list on C lacks the fleet's grant for %s:\n%s", ip, out)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("# fleet group %s (%s): %d live grant(s)", r.Group, r.Redis.URL(), n)) {
		t.Errorf("--fw-list on C: no fleet summary:\n%s", out)
	}
}

// A gateway restarted during live grants has them again: the one granted before it stopped,
// and the one granted while it was stopped (catch-up from Redis: its own ledger never saw it),
// also after `nft flush ruleset` removed its table while it was stopped.
func TestIntegrationFleetRestart(t *testing.T) {
	t.Parallel()
	r := New(t, Options{})
	a, c := r.Gateways[0], r.Gateways[2]
	ips := r.AddClientIPs(t, 3)
	before, during, never := ips[0], ips[1], ips[2]
	r.Knock(t, a, before)
	r.WaitDial(t, before, c.SSHAddr(), sesametest.Open, fanoutBound)

	c.Stop(t, syscall.SIGTERM)
	r.Knock(t, a, during)
	r.WaitDial(t, during, a.SSHAddr(), sesametest.Open, fanoutBound)
	c.NS.Run(t, "nft", "flush", "ruleset")
	c.Restart(t)
	c.WaitLog(t, 1, fanoutBound, "fleet: access granted for another gateway", "src="+during)
	for _, ip := range []string{before, during} {
		r.WaitDial(t, ip, c.SSHAddr(), sesametest.Open, fanoutBound)
	}
	if res := r.Dial(t, never, c.SSHAddr(), 300*time.Millisecond); res != sesametest.Timeout {
		t.Errorf("C after the restart, from an address never granted: %v, want timeout (the guard is back)", res)
	}
}

// Redis killed mid-stream. closed: a knock is refused with an error naming the fleet; local:
// it is granted from the local cache, logged and counted, and reaches the other gateways once
// Redis is back. Both recover by themselves when redis-server restarts on the same port.
func TestIntegrationFleetRedisDown(t *testing.T) {
	for _, policy := range []string{"closed", "local"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			r := New(t, Options{OnError: policy})
			a, c := r.Gateways[0], r.Gateways[2]
			ips := r.AddClientIPs(t, 3)
			pkts := Packets(t, ips)
			if _, err := r.KnockToOpen(t, a, c, pkts[0], ips[0], fanoutBound); err != nil {
				t.Fatal(err)
			}

			r.Redis.Stop()
			r.Send(t, a, pkts[1])
			if policy == "closed" {
				lines := a.WaitLog(t, 1, fanoutBound, `reason="internal error"`, "fleet")
				if !strings.Contains(lines[0], "policy closed") {
					t.Errorf("refusal does not name the policy: %s", lines[0])
				}
				if res := r.Dial(t, ips[1], a.SSHAddr(), 300*time.Millisecond); res != sesametest.Timeout {
					t.Errorf("A after a knock it could not check: %v, want timeout", res)
				}
			} else {
				a.WaitLog(t, 1, fanoutBound, "access granted", "allow="+ips[1])
				a.WaitLog(t, 1, fanoutBound, "fall back to the local cache")
				r.WaitDial(t, ips[1], a.SSHAddr(), sesametest.Open, fanoutBound)
				syscall.Kill(a.PID, syscall.SIGUSR1)
				a.WaitLog(t, 1, fanoutBound, "stats", "fleet_connected=false", "fleet_local_fallbacks=1")
				r.Send(t, a, pkts[1]) // its own replay is still refused, from the local cache
				a.WaitLog(t, 1, fanoutBound, "reason=replay", "src="+ClientIP)
			}

			r.Redis.Restart(t)
			if policy == "local" { // the grant made during the outage reaches C now
				r.WaitDial(t, ips[1], c.SSHAddr(), sesametest.Open, fanoutBound)
			}
			// A new knock is checked in Redis again and fans out (the first may meet a
			// connection Redis closed: knock until one is granted).
			deadline := time.Now().Add(fanoutBound)
			for i := 0; ; i++ {
				r.Send(t, a, Packet(t, ips[2]))
				if waitLog(a, time.Second, "access granted", "allow="+ips[2]) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("A grants nothing after redis returned:\n%s", a.Log())
				}
			}
			r.WaitDial(t, ips[2], c.SSHAddr(), sesametest.Open, fanoutBound)
			a.WaitLog(t, 1, fanoutBound, "fleet: redis reachable again")
		})
	}
}

// waitLog reports whether g's log holds a line with every one of substrs within d.
func waitLog(g *Gateway, d time.Duration, substrs ...string) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if LogCount(g, substrs...) > 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// A fan-out message written to Redis by hand, without the fleet key, opens nothing and is
// logged by every gateway: in the stream (read live) and in the live hash (read at a restart).
func TestIntegrationFleetForgedMessage(t *testing.T) {
	t.Parallel()
	r := New(t, Options{})
	ip := r.AddClientIPs(t, 1)[0]
	now := time.Now().UnixMilli()
	msg := fmt.Sprintf("S1 g %d gw-evil 0123456789abcdef0123456789abcdef %d %s 6 22 1 %s",
		now, now+60000, ip, strings.Repeat("A", 43))
	stream, live := "sesame:{"+r.Group+"}:grants", "sesame:{"+r.Group+"}:live"
	if out := r.Redis.Cli(t, "XADD", stream, "*", "m", msg); !strings.Contains(out, "-") {
		t.Fatalf("XADD: %q", out)
	}
	for _, g := range r.Gateways {
		g.WaitLog(t, 1, fanoutBound, "fleet: message refused", "from=stream")
	}
	r.Redis.Cli(t, "HSET", live, ip+"/6/22", msg)
	c := r.Gateways[2]
	c.Stop(t, syscall.SIGTERM)
	c.Restart(t)
	c.WaitLog(t, 1, fanoutBound, "fleet: message refused", "from=\"live hash\"")
	for _, g := range r.Gateways {
		if res := r.Dial(t, ip, g.SSHAddr(), 300*time.Millisecond); res != sesametest.Timeout {
			t.Errorf("%s after a forged grant: %v, want timeout", g.Name, res)
		}
		if n := LogCount(g, "fleet: access granted for another gateway"); n != 0 {
			t.Errorf("%s applied a forged grant", g.Name)
		}
	}
}

// --fw-flush on A revokes the grant on A, B and C.
func TestIntegrationFleetFlush(t *testing.T) {
	t.Parallel()
	r := New(t, Options{})
	a := r.Gateways[0]
	ip := r.AddClientIPs(t, 1)[0]
	r.Knock(t, a, ip)
	for _, g := range r.Gateways {
		r.WaitDial(t, ip, g.SSHAddr(), sesametest.Open, fanoutBound)
	}
	if out := a.Ctl(t, "--fw-flush"); !strings.Contains(out, "grants revoked here and on the fleet") {
		t.Errorf("--fw-flush: %q", out)
	}
	for _, g := range r.Gateways {
		r.WaitDial(t, ip, g.SSHAddr(), sesametest.Timeout, fanoutBound)
	}
	for _, g := range r.Gateways[1:] {
		g.WaitLog(t, 1, fanoutBound, "fleet: every grant revoked by another gateway", "origin=gw-a")
	}
}

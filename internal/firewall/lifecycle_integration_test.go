package firewall

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
	"golang.org/x/sys/unix"
)

// TestIntegrationLifecycle: Init adopts existing state and keeps live grants (also from a
// second backend, as after a daemon restart), Grant refreshes a timeout, List reports time
// left, Revoke is idempotent, and Remove removes everything.
func TestIntegrationLifecycle(t *testing.T) {
	for _, mode := range []struct {
		name   string
		noFast bool
	}{{"fast-refresh", false}, {"add-delete-add", true}} {
		t.Run(mode.name, func(t *testing.T) { testLifecycle(t, mode.noFast) })
	}
}

// kernelAtLeast reports whether the running kernel is at least major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi)
	return ma > major || ma == major && mi >= minor
}

func testLifecycle(t *testing.T, noFast bool) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	ctx := context.Background()
	cfg := Config{GuardPorts: []Port{{ProtoTCP, 22}}}
	fw := newBackendMode(t, ns, cfg, noFast)
	if want := !noFast && kernelAtLeast(t, 6, 10); fw.fast != want {
		t.Fatalf("fast refresh = %v, want %v on this kernel", fw.fast, want)
	}
	if out := ns.Run(t, "nft", "list", "table", "inet", "sesame"); strings.Contains(out, probeSetName) {
		t.Fatalf("probe set left behind:\n%s", out)
	}

	a := Grant{Src: mustAddr("192.0.2.7"), Proto: ProtoTCP, Port: 22, Timeout: 30 * time.Second}
	b := Grant{Src: mustAddr("2001:db8::7"), Proto: ProtoUDP, Port: 53, Timeout: 2 * time.Second}
	mapped := Grant{Src: mustAddr("::ffff:198.51.100.1"), Proto: ProtoTCP, Port: 443, Timeout: 30 * time.Second}
	for _, g := range []Grant{a, b, mapped} {
		if err := fw.Grant(ctx, g); err != nil {
			t.Fatalf("Grant(%v): %v", g, err)
		}
	}
	if err := fw.Init(ctx); err != nil {
		t.Fatalf("Init again: %v", err)
	}
	// Restart: a second backend Inits the existing table and sees the grants.
	fw.Close()
	fw2 := newBackendMode(t, ns, cfg, noFast)
	got := listMap(t, fw2)
	if len(got) != 3 {
		t.Fatalf("after re-Init List = %v, want 3 grants", got)
	}
	e, ok := got[key(a)]
	if !ok || e.Timeout != a.Timeout || e.Expires <= 25*time.Second || e.Expires > a.Timeout {
		t.Fatalf("List entry for %v = %+v, want timeout 30s and expiry in (25s, 30s]", a, e)
	}
	if _, ok := got[key(Grant{Src: mustAddr("198.51.100.1"), Proto: ProtoTCP, Port: 443})]; !ok {
		t.Fatalf("IPv4-mapped grant not listed as IPv4: %v", got)
	}

	// Refresh: granting b again after a second restarts its 2 s timeout.
	time.Sleep(1200 * time.Millisecond)
	if e := listMap(t, fw2)[key(b)]; e.Expires > 900*time.Millisecond {
		t.Fatalf("before refresh %v expires in %v, want <= 0.9s", b, e.Expires)
	}
	if err := fw2.Grant(ctx, b); err != nil {
		t.Fatalf("refresh Grant: %v", err)
	}
	if e := listMap(t, fw2)[key(b)]; e.Expires < 1800*time.Millisecond {
		t.Fatalf("after refresh %v expires in %v, want >= 1.8s", b, e.Expires)
	}
	// Kernel expiry.
	time.Sleep(2200 * time.Millisecond)
	if _, ok := listMap(t, fw2)[key(b)]; ok {
		t.Fatalf("%v still listed after its timeout", b)
	}

	if err := fw2.Revoke(ctx, a); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := fw2.Revoke(ctx, a); err != nil {
		t.Fatalf("Revoke of a revoked grant: %v", err)
	}
	if _, ok := listMap(t, fw2)[key(a)]; ok {
		t.Fatalf("%v still listed after Revoke", a)
	}

	if err := fw2.Remove(ctx); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if hasTable(t, ns, DefaultTableName) {
		t.Fatal("table still present after Remove")
	}
	if _, err := fw2.List(ctx); !errors.Is(err, ErrNoTable) {
		t.Fatalf("List after Remove = %v, want ErrNoTable", err)
	}
}

// TestIntegrationGuardPortsChange: a restart with other guard ports replaces the guard set, and
// without guard ports the guard set is empty.
func TestIntegrationGuardPortsChange(t *testing.T) {
	nstest.Require(t, "nft")
	ns := nstest.New(t)
	newBackend(t, ns, Config{GuardPorts: []Port{{ProtoTCP, 22}, {ProtoTCP, 5432}}}).Close()
	if out := ns.Run(t, "nft", "list", "set", "inet", "sesame", "guarded"); !strings.Contains(out, "5432") {
		t.Fatalf("guarded set lacks 5432:\n%s", out)
	}
	newBackend(t, ns, Config{GuardPorts: []Port{{ProtoUDP, 53}}}).Close()
	out := ns.Run(t, "nft", "list", "set", "inet", "sesame", "guarded")
	if strings.Contains(out, "5432") || !strings.Contains(out, "udp . 53") {
		t.Fatalf("guarded set after re-Init:\n%s", out)
	}
	newBackend(t, ns, Config{})
	if out := ns.Run(t, "nft", "list", "set", "inet", "sesame", "guarded"); strings.Contains(out, "elements") {
		t.Fatalf("guard ports kept without guard ports:\n%s", out)
	}
}

func key(g Grant) Grant { g.Timeout = 0; g.Src = g.Src.Unmap(); return g }

func listMap(t *testing.T, fw Backend) map[Grant]Entry {
	t.Helper()
	es, err := fw.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	m := map[Grant]Entry{}
	for _, e := range es {
		m[key(e.Grant)] = e
	}
	return m
}

// TestIntegrationKilledDaemon: a process grants access and is SIGKILLed; the kernel still
// closes the port on time, with no daemon left to do it.
func TestIntegrationKilledDaemon(t *testing.T) {
	nstest.Require(t)
	srv, cli := nstest.Pair(t)
	const port = 2222
	listen(t, srv, port)
	waitLink(t, cli, nstest.SrvIP4, port)

	cmd := srv.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", helperEnv, nstest.CliIP4, port, 2000))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(t, cmd)
	sc := bufio.NewScanner(stdout)
	granted := false
	for sc.Scan() {
		if sc.Text() == "granted" {
			granted = true // the grant was made before this line was printed
			break
		}
		t.Logf("helper: %s", sc.Text())
	}
	if !granted {
		t.Fatalf("helper did not grant (scan: %v)", sc.Err())
	}
	start := time.Now()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill helper: %v", err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	wantOpen(t, cli, nstest.SrvIP4, port, "after the granting process was killed")
	time.Sleep(time.Until(start.Add(2300 * time.Millisecond)))
	wantShut(t, cli, nstest.SrvIP4, port, "timeout passed with the daemon dead")
}

// TestIntegrationConcurrent: Grant, Revoke and List from several goroutines on one backend
// (run it with -race); every grant that was not revoked is listed afterwards.
func TestIntegrationConcurrent(t *testing.T) {
	ns := nstest.New(t)
	fw := newBackend(t, ns, Config{})
	ctx := context.Background()
	const workers, each = 4, 100
	errc := make(chan error, workers)
	for w := range workers {
		go func() {
			gs := synthGrants(workers*each, 22)[w*each : (w+1)*each]
			for i, g := range gs {
				if err := fw.Grant(ctx, g); err != nil {
					errc <- err
					return
				}
				if i%2 == 1 {
					if err := fw.Revoke(ctx, g); err != nil {
						errc <- err
						return
					}
				}
				if i%25 == 0 {
					if _, err := fw.List(ctx); err != nil {
						errc <- err
						return
					}
				}
			}
			errc <- nil
		}()
	}
	for range workers {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	got := listMap(t, fw)
	if len(got) != workers*each/2 {
		t.Fatalf("%d grants listed, want %d", len(got), workers*each/2)
	}
	for i, g := range synthGrants(workers*each, 22) {
		if _, ok := got[key(g)]; ok != (i%2 == 0) {
			t.Fatalf("grant %v listed = %v, want %v", g, ok, i%2 == 0)
		}
	}
}

package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/nstest"
)

// openResilient creates a ResilientSniffer inside ns, as the daemon does in its own namespace;
// it reattaches there from the reading goroutine. It is closed at cleanup.
func openResilient(t *testing.T, ns *nstest.NS, cfg SniffConfig, opts ResilientOptions) (*ResilientSniffer, *logRecorder) {
	t.Helper()
	log := newLogRecorder()
	opts.Log = log.logger()
	var r *ResilientSniffer
	if err := ns.Do(t, func() (err error) {
		r, err = NewResilientSniffer(cfg, opts)
		return err
	}); err != nil {
		t.Fatalf("NewResilientSniffer(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { r.Close() })
	return r, log
}

// addVeth creates the veth pair srvIf (in srv, 10.99.0.1/24) and cliIf (in cli, 10.99.0.2/24)
// under the names given, and waits until both ends carry traffic.
func addVeth(t *testing.T, srv, cli *nstest.NS, srvIf, cliIf string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", "name", srvIf, "netns", srv.Name, "type", "veth",
		"peer", "name", cliIf, "netns", cli.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add %s: %v: %s", srvIf, err, out)
	}
	srv.Run(t, "ip", "addr", "add", nstest.SrvIP4+"/24", "dev", srvIf)
	cli.Run(t, "ip", "addr", "add", nstest.CliIP4+"/24", "dev", cliIf)
	srv.Run(t, "ip", "link", "set", srvIf, "up")
	cli.Run(t, "ip", "link", "set", cliIf, "up")
	waitLinkUp(t, srv, srvIf)
	waitLinkUp(t, cli, cliIf)
}

// waitLinkUp waits until ifc in ns reports carrier (operational state UP).
func waitLinkUp(t *testing.T, ns *nstest.NS, ifc string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		out, _ := exec.Command("ip", "-n", ns.Name, "-o", "link", "show", "dev", ifc).CombinedOutput()
		if strings.Contains(string(out), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("[%s] %s did not come up: %s", ns.Name, ifc, out)
		}
	}
}

// knockUntilSeen sends "<tag> N" datagrams from cli to the server's udp/62201 until rd returns
// one of them (packets sent before the sniffer is back are lost, so it retries), failing
// after 10 s.
func knockUntilSeen(t *testing.T, cli *nstest.NS, rd *reader, tag string) Packet {
	t.Helper()
	return knockToUntilSeen(t, cli, srvAP4.String(), rd, tag)
}

// knockToUntilSeen is knockUntilSeen to dst.
func knockToUntilSeen(t *testing.T, cli *nstest.NS, dst string, rd *reader, tag string) Packet {
	t.Helper()
	for i, deadline := 0, time.Now().Add(10*time.Second); time.Now().Before(deadline); i++ {
		payload := fmt.Sprintf("%s %d", tag, i)
		// Errors (no route while a link is re-created) just mean: try again.
		cli.Do(t, func() error {
			c, err := net.Dial("udp", dst)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(payload))
			return err
		})
		for {
			p, ok := rd.next(t, 100*time.Millisecond)
			if !ok {
				break
			}
			if strings.HasPrefix(string(p.Payload), tag+" ") {
				return p
			}
		}
	}
	t.Fatalf("no %q packet seen", tag)
	return Packet{}
}

func ifIndex(t *testing.T, ns *nstest.NS, name string) int {
	t.Helper()
	var idx int
	if err := ns.Do(t, func() error {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			idx = ifi.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return idx
}

// TestIntegrationResilientDownUp: `ip link set down` then `up` on the sniffed veth; packets
// are seen again on a new socket. A sniffer with ExitOnDown returns ErrInterfaceDown instead.
func TestIntegrationResilientDownUp(t *testing.T) {
	srv, cli := nstest.Pair(t)
	r, log := openResilient(t, srv, SniffConfig{Interface: srv.Ifc}, ResilientOptions{})
	exit, _ := openResilient(t, srv, SniffConfig{Interface: srv.Ifc}, ResilientOptions{ExitOnDown: true})
	exitErr := make(chan error, 1)
	go func() {
		for {
			if _, err := exit.Read(); err != nil {
				exitErr <- err
				return
			}
		}
	}()
	rd := startReading(t, r)
	knockUntilSeen(t, cli, rd, "before")

	srv.Run(t, "ip", "link", "set", "dev", srv.Ifc, "down")
	log.expect(t, slog.LevelWarn, fmt.Sprintf("interface %s went down; waiting for it to come back", srv.Ifc))
	select {
	case err := <-exitErr:
		if !errors.Is(err, ErrInterfaceDown) || !strings.Contains(err.Error(), fmt.Sprintf("%q", srv.Ifc)) {
			t.Fatalf("ExitOnDown Read: %v, want ErrInterfaceDown naming %s", err, srv.Ifc)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("ExitOnDown: link down did not end Read")
	}
	srv.Run(t, "ip", "link", "set", "dev", srv.Ifc, "up")
	log.expect(t, slog.LevelInfo, fmt.Sprintf("reattached to interface %s", srv.Ifc))
	knockUntilSeen(t, cli, rd, "after")
	st, err := r.Stats()
	n, attached := r.Reattachments()
	if err != nil || n != 1 || !attached || st.Received < 2 {
		t.Fatalf("stats %+v, %v, %d reattachments, attached %v; want 1 reattachment, at least 2 received",
			st, err, n, attached)
	}
}

// TestIntegrationResilientRecreate: the sniffed veth is deleted and created again under the
// same name (with a new index); packets are seen again.
func TestIntegrationResilientRecreate(t *testing.T) {
	srv, cli := nstest.New(t), nstest.New(t)
	addVeth(t, srv, cli, "spa0", "spa0c")
	r, log := openResilient(t, srv, SniffConfig{Interface: "spa0"}, ResilientOptions{})
	rd := startReading(t, r)
	knockUntilSeen(t, cli, rd, "first")
	old := ifIndex(t, srv, "spa0")

	srv.Run(t, "ip", "link", "del", "spa0")
	log.expect(t, slog.LevelWarn, "interface spa0 went down; waiting for it to come back")
	addVeth(t, srv, cli, "spa0", "spa0c")
	attrs := log.expect(t, slog.LevelInfo, "reattached to interface spa0")
	if idx := ifIndex(t, srv, "spa0"); attrs["index"].Int64() != int64(idx) || idx == old {
		t.Fatalf("reattached to index %v; the link's index is %d, was %d", attrs["index"], idx, old)
	}
	knockUntilSeen(t, cli, rd, "second")
}

// TestIntegrationResilientLateInterface: started before its interface exists, the sniffer
// warns, and sniffs once the interface is created.
func TestIntegrationResilientLateInterface(t *testing.T) {
	srv, cli := nstest.New(t), nstest.New(t)
	r, log := openResilient(t, srv, SniffConfig{Interface: "spa1"}, ResilientOptions{})
	log.expect(t, slog.LevelWarn, "interface spa1 does not exist yet; waiting for it (PCAP_INTF)")
	rd := startReading(t, r)
	addVeth(t, srv, cli, "spa1", "spa1c")
	log.expect(t, slog.LevelInfo, "attached to interface spa1")
	knockUntilSeen(t, cli, rd, "late")
}

// TestIntegrationResilientAnyFlap: sniffing "any", a veth going down and up does not end Read.
func TestIntegrationResilientAnyFlap(t *testing.T) {
	srv, cli := nstest.Pair(t)
	r, _ := openResilient(t, srv, SniffConfig{Interface: AnyInterface}, ResilientOptions{})
	rd := startReading(t, r)
	knockUntilSeen(t, cli, rd, "before")
	srv.Run(t, "ip", "link", "set", "dev", srv.Ifc, "down")
	srv.Run(t, "ip", "link", "set", "dev", srv.Ifc, "up")
	waitLinkUp(t, srv, srv.Ifc)
	knockUntilSeen(t, cli, rd, "after") // fails if the reader ended
}

// TestIntegrationLinkWatcher: the rtnetlink watcher reports a veth of its own namespace being
// created, coming up and being deleted, and looks links up by name.
func TestIntegrationLinkWatcher(t *testing.T) {
	ns, other := nstest.New(t), nstest.New(t)
	var w *NetlinkWatcher
	if err := ns.Do(t, func() (err error) { w, err = NewLinkWatcher(); return err }); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	events := make(chan LinkEvent, 256)
	errc := make(chan error, 1)
	go func() {
		for {
			ev, err := w.Next()
			if err != nil {
				errc <- err
				return
			}
			events <- ev
		}
	}()
	waitEvent := func(what string, ok func(LinkEvent) bool) LinkEvent {
		t.Helper()
		for deadline := time.After(5 * time.Second); ; {
			select {
			case ev := <-events:
				if ok(ev) {
					return ev
				}
			case <-deadline:
				t.Fatalf("no event: %s", what)
			}
		}
	}

	if ev, ok, err := w.Link("spa2"); err != nil || ok {
		t.Fatalf("Link(spa2) before it exists: %+v, %v, %v", ev, ok, err)
	}
	if ev, ok, err := w.Link("lo"); err != nil || !ok || !ev.Up || ev.Index != 1 || ev.Name != "lo" {
		t.Fatalf("Link(lo): %+v, %v, %v", ev, ok, err)
	}
	addVeth(t, ns, other, "spa2", "spa2c")
	idx := ifIndex(t, ns, "spa2")
	waitEvent("spa2 created", func(ev LinkEvent) bool { return ev.Name == "spa2" && ev.Index == idx && !ev.Gone })
	waitEvent("spa2 running", func(ev LinkEvent) bool {
		return ev.Name == "spa2" && ev.Up && ev.Running && ev.OperState == OperUp
	})
	if ev, ok, err := w.Link("spa2"); err != nil || !ok || !ev.Up || ev.Index != idx {
		t.Fatalf("Link(spa2): %+v, %v, %v", ev, ok, err)
	}
	ns.Run(t, "ip", "link", "set", "spa2", "down")
	waitEvent("spa2 down", func(ev LinkEvent) bool { return ev.Name == "spa2" && !ev.Up && !ev.Gone })
	ns.Run(t, "ip", "link", "del", "spa2")
	waitEvent("spa2 deleted", func(ev LinkEvent) bool { return ev.Name == "spa2" && ev.Gone && ev.Index == idx })
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Next after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

// TestIntegrationSnifferMissingInterface: NewSniffer's error names the missing interface and
// wraps ErrNoInterface.
func TestIntegrationSnifferMissingInterface(t *testing.T) {
	ns := nstest.New(t)
	err := ns.Do(t, func() error {
		s, err := NewSniffer(SniffConfig{Interface: "nosuch0"})
		if err == nil {
			s.Close()
		}
		return err
	})
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), `interface "nosuch0"`) {
		t.Fatalf("NewSniffer on a missing interface: %v", err)
	}
}

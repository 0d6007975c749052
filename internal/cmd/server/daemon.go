package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/cmdclose"
	"github.com/sesame-spa/sesame/internal/cmdexec"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/hostfw"
	"github.com/sesame-spa/sesame/internal/keeper"
	"github.com/sesame-spa/sesame/internal/ledger"
	"github.com/sesame-spa/sesame/internal/nfevents"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/internal/server"
	"github.com/sesame-spa/sesame/internal/tcpserver"
)

// newFirewall opens the firewall the settings describe.
func newFirewall(s *settings) (firewall.Host, error) {
	fw, err := firewall.Open(firewall.Config{TableName: s.tableName, GuardPorts: s.guardPorts,
		GuardLoopback: s.guardLoopback, HostChain: s.hostChain, NoOwner: !s.tableOwner, NAT: s.policy.NAT.Enabled()})
	if err != nil {
		return nil, privHint(fmt.Errorf("firewall: %w", err), "CAP_NET_ADMIN", "nftables needs it")
	}
	return fw, nil
}

// privHint adds to an EPERM error the capability that is missing and how to grant it.
func privHint(err error, capability, why string) error {
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) {
		return err
	}
	return fmt.Errorf("%w: missing privilege %s (%s): run as root, or give the service AmbientCapabilities=%s (see packaging/systemd/sesame-server.service)",
		err, capability, why, capability)
}

// openCache opens the replay cache: the DIGEST_FILE with persistence on, memory otherwise.
func openCache(s *settings, rotate bool, log *slog.Logger) (replay.Cache, error) {
	if !s.digestPersistence {
		log.Warn("ENABLE_DIGEST_PERSISTENCE is N: the replay cache lives in memory and is lost at restart")
		return replay.NewMemory(time.Now), nil
	}
	if rotate {
		if err := os.Rename(s.digestFile, s.digestFile+"-old"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("rotate digest cache: %w", err)
		}
	}
	c, err := replay.OpenFile(s.digestFile, replay.FileOptions{})
	if err != nil {
		return nil, fmt.Errorf("replay cache: %w", err)
	}
	st := c.Stats()
	log.Info("replay cache loaded", "file", s.digestFile, "entries", st.Loaded, "expired", st.Expired, "skipped", st.Skipped)
	return c, nil
}

// openSource opens the capture file (PCAP_FILE), the UDP socket or the sniffer. The sniffer
// reads every interface PCAP_INTF lists, survives each going down and waits for one that does
// not exist yet (unless EXIT_AT_INTF_DOWN is Y).
func openSource(s *settings, log *slog.Logger) (capture.Source, string, error) {
	if s.pcapFile != "" {
		src, err := capture.NewFileSource(s.pcapFile, s.pcapFilter)
		if err != nil {
			return nil, "", fmt.Errorf("PCAP_FILE %s: %w", s.pcapFile, err)
		}
		return src, fmt.Sprintf("capture file %s (%s)", s.pcapFile, src.Filter()), nil
	}
	if s.udpServer {
		pc, err := listenUDP(":"+strconv.Itoa(s.udpPort), udpReadBuffer, log)
		if err != nil {
			return nil, "", err
		}
		src := capture.FromPacketConn(pc)
		return src, fmt.Sprintf("udp server on %v", src.LocalAddr()), nil
	}
	if s.exitAtIntfDown {
		// As fwknopd (whose default this is): a missing interface is an error at start. With
		// EXIT_AT_INTF_DOWN N the sniffer waits for it instead.
		for _, name := range capture.SplitInterfaces(s.pcapIntf) {
			if name == capture.AnyInterface {
				continue
			}
			if _, err := net.InterfaceByName(name); err != nil {
				return nil, "", fmt.Errorf("capture: interface %q (-i/PCAP_INTF) does not exist in this network namespace: name an existing one (ip link), or set EXIT_AT_INTF_DOWN N to wait for it", name)
			}
		}
	}
	src, err := capture.NewMultiSniffer(capture.SniffConfig{Interface: s.pcapIntf, Filter: s.pcapFilter,
		SnapLen: s.snapLen, AnyDirection: s.anyDirection, Promiscuous: s.promiscuous, ReadBuffer: 4 << 20},
		capture.ResilientOptions{Log: log, ExitOnDown: s.exitAtIntfDown})
	if err != nil {
		return nil, "", privHint(fmt.Errorf("capture (-i/PCAP_INTF %s): %w", s.pcapIntf, err), "CAP_NET_RAW",
			"sniffing needs it; ENABLE_UDP_SERVER Y does not")
	}
	return src, fmt.Sprintf("sniffing on %s (%s)", s.pcapIntf, src.Filter()), nil
}

// udpReadBuffer is the UDP socket's receive buffer: room for about 8,000 SPA datagrams, so
// bursts (and floods' jitter) do not drop knocks while the server is busy.
const udpReadBuffer = 8 << 20

// listenUDP opens the UDP-server socket with a large receive buffer (SO_RCVBUFFORCE as root,
// else SO_RCVBUF up to net.core.rmem_max; a failure of both is logged).
func listenUDP(addr string, rcvbuf int, log *slog.Logger) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
				if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
					log.Warn("udp server: cannot enlarge the receive buffer", "bytes", rcvbuf, "err", err)
				}
			}
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp server: %w", err)
	}
	return pc, nil
}

// limitSource ends the source after n packets (fwknopd -C): the read after the n-th fails with
// errLimit, and the server's Run returns only once the packets already read are handled in
// full, so the n-th packet is granted before the server exits. It never cancels the context
// (that would abort the n-th packet's grant).
type limitSource struct {
	capture.Source
	n int
}

func (l *limitSource) Read() (capture.Packet, error) {
	if l.n <= 0 {
		return capture.Packet{}, fmt.Errorf("packet limit reached: %w", errLimit)
	}
	l.n--
	return l.Source.Read()
}

var errLimit = errors.New("done")

// runDaemon runs the server until SIGTERM/SIGINT (or the -C limit), reloading on SIGHUP.
//
// The order is the fail-closed rule: everything that can refuse to start (another server on the
// table, the pid file, the replay cache, the capture source, overlapping tables) is checked
// before the firewall is touched, and nothing on the way out removes the guard or the hooks.
// Grants stay unless FLUSH_IPT_AT_EXIT is Y.
//
// link is the readiness pipe of a detached child (nil otherwise): it is told "ready" where
// systemd is notified. sigs is where mainAs caught SIGHUP and SIGUSR1 before reading the files;
// it gets SIGTERM and SIGINT too once the server is about to run.
func runDaemon(o *options, s *settings, log *slog.Logger, link *readyLink, sigs chan os.Signal) error {
	if !o.foreground && link == nil {
		log.Info("sesame server does not daemonize: running in the foreground (invoked as fwknopd it detaches; use systemd to background it)")
	}
	if s.locale != "" {
		// fwknopd calls setlocale; sesame's messages are English only, but the programs it
		// runs (gpg) get the locale.
		os.Setenv("LC_ALL", s.locale)
	}
	for _, w := range s.warnings {
		log.Warn(w)
	}
	if s.pcapFile != "" {
		return runOffline(s, log)
	}
	inst, err := lockInstance(s.tableName)
	if err != nil {
		return err
	}
	defer inst.close()
	removePID, err := writePID(s.pidFile)
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	defer removePID()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := false

	cache, err := openCache(s, o.rotateDigest, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := cache.Close(); err != nil {
			log.Error("replay cache: close", "file", s.digestFile, "err", err)
		}
	}()
	fl, err := openFleet(ctx, s, cache, log)
	if err != nil {
		return err
	}
	defer fl.close() // before the local cache closes
	src, desc, err := openSource(s, log)
	if err != nil {
		return err
	}
	defer src.Close()
	md5, err := startMD5(ctx, s, log)
	if err != nil {
		return err
	}
	defer md5.Close()
	me, err := listenMetrics(ctx, s)
	if err != nil {
		return err
	}

	var fwall server.Firewall
	if !o.test {
		k, stop, err := startFirewall(ctx, s, log)
		if err != nil {
			return err
		}
		// FLUSH_IPT_AT_EXIT revokes grants only for a server that ran: a failed start changes
		// nothing it did not have to.
		defer func() { stop(ran && s.flushAtExit) }()
		fwall = k
		// The fleet's grants go through the keeper; it stops before the firewall does.
		// FLUSH_IPT_AT_EXIT and FLUSH_IPT_AT_INIT stay local: only --fw-flush is propagated.
		fl.start(ctx, k)
		defer fl.stopRun()
		go inst.serve(ctx, func(ctx context.Context, cmd string) (string, error) {
			switch cmd {
			case "revoke-all":
				if err := k.RevokeAll(ctx); err != nil {
					return "", err
				}
				log.Warn("firewall: every grant revoked on request (--fw-flush)")
				if fl == nil {
					return "grants revoked", nil
				}
				if err := fl.revokeAll(ctx); err != nil {
					log.Error("fleet: the revocation did not reach redis; it is sent when redis answers", "err", err)
					return "grants revoked here; the fleet's revocation waits for redis (" + err.Error() + ")", nil
				}
				return "grants revoked here and on the fleet", nil
			}
			return "", fmt.Errorf("unknown command %q", cmd)
		})
	} else {
		go inst.serve(ctx, func(context.Context, string) (string, error) {
			return "", errors.New("the server runs in test mode (-t): no firewall")
		})
	}

	onGrant := md5.OnGrant
	if fl != nil {
		onGrant = func(st *fwconf.Stanza, gs []firewall.Grant) error {
			err := md5.OnGrant(st, gs)
			fl.OnGrant(st, gs) // never blocks, never fails: publishing is queued
			return err
		}
	}
	var srv *server.Server
	me.prepare(s, src, fl.cache(cache), fwall, fl, func() server.Stats { return srv.Stats() })
	// Commands (ENABLE_CMD_EXEC, CMD_CYCLE_*) run on 4 goroutines with 64 queued at most; the
	// pending CMD_CYCLE_CLOSE commands survive a restart in the run directory.
	closes, err := cmdclose.Open(filepath.Join(s.runDir, "sesame-"+s.tableName+".closes"))
	if err != nil {
		return err
	}
	pool := cmdexec.NewPool(ctx, cmdexec.Exec{}, commandWorkers, commandQueue)
	cfg := server.Config{Policy: s.policy, Firewall: fwall, Cache: fl.cache(cache), Logger: log,
		Workers: s.workers, OnGrant: me.onGrant(onGrant), ReplayTimeout: fl.replayTimeout(), Observe: me.observe(),
		Commands: pool, Closes: closes}
	srv, err = server.New(cfg)
	if err != nil {
		return err
	}
	me.start(ctx, log)
	var source capture.Source = src
	if o.packetLimit > 0 {
		source = &limitSource{Source: src, n: o.packetLimit}
	}

	if sigs == nil {
		sigs = make(chan os.Signal, 4)
		defer signal.Stop(sigs)
	}
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)

	if s.tcpServer && s.pcapFile == "" {
		if err := startTCPServer(ctx, s, log); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, source) }()
	go watchDrops(ctx, log, src)
	log.Info("sesame server started", "source", desc, "stanzas", len(s.policy.Stanzas), "pid", os.Getpid(),
		"test", o.test)
	sd.SdNotify(false, sd.SdNotifyReady)
	link.ready()
	ran = true

	for {
		select {
		case err := <-done:
			logStats(log, srv, src, fwall, fl)
			log.Info("sesame server stopped")
			if errors.Is(err, errLimit) {
				return nil
			}
			return err
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reload(o, s, srv, fwall, log)
				continue
			case syscall.SIGUSR1:
				logStats(log, srv, src, fwall, fl)
				continue
			}
			log.Info("signal received, shutting down", "signal", sig.String())
			sd.SdNotify(false, sd.SdNotifyStopping)
			cancel()
		}
	}
}

// startFirewall opens the firewall, refuses overlapping tables, hooks the host chains that drop,
// reconciles the ledger with the kernel and starts the self-healing. stop closes it all, leaving
// the guard, the hooks and (unless FLUSH_IPT_AT_EXIT) the grants in the kernel.
func startFirewall(ctx context.Context, s *settings, log *slog.Logger) (*keeper.Keeper, func(revoke bool), error) {
	fw, err := newFirewall(s)
	if err != nil {
		return nil, nil, err
	}
	closeFW := func() {
		if err := fw.Close(); err != nil {
			log.Error("firewall: close", "err", err)
		}
	}
	peers, err := fw.PeerTables(ctx)
	if err != nil {
		closeFW()
		return nil, nil, privHint(fmt.Errorf("firewall: %w", err), "CAP_NET_ADMIN", "nftables needs it")
	}
	if err := checkOverlap(s, peers); err != nil {
		closeFW()
		return nil, nil, err
	}
	detect := func(ctx context.Context) ([]firewall.HostChain, error) { return detectHosts(ctx, s, log) }
	hosts, err := detect(ctx)
	if err != nil {
		log.Warn("firewall: reading the host's ruleset failed; hooking only SESAME_HOST_CHAIN", "err", err)
	}
	fw.SetHostChains(append(fw.HostChains(), hosts...))
	led, err := ledger.Open(s.ledgerFile, time.Now)
	if err != nil {
		closeFW()
		return nil, nil, fmt.Errorf("grant ledger: %w", err)
	}
	k := keeper.New(keeper.Config{Backend: fw, Ledger: led, Table: s.tableName, HostChains: fw.HostChains(),
		Detect: detect, Log: log})
	restored, adopted, err := k.Start(ctx, s.flushAtInit)
	if err != nil {
		led.Close()
		closeFW()
		if errors.Is(err, firewall.ErrOwned) {
			return nil, nil, fmt.Errorf("firewall: %w: another process owns table inet %s (a second sesame server? see SESAME_TABLE)", err, s.tableName)
		}
		return nil, nil, privHint(fmt.Errorf("firewall init: %w", err), "CAP_NET_ADMIN", "nftables needs it")
	}
	if s.flushAtInit {
		log.Info("firewall: grants revoked at start (FLUSH_IPT_AT_INIT Y); the guard stays")
	}
	log.Info("firewall ready", "table", "inet "+s.tableName, "owned", fw.Owned(), "guarded", portsList(s.guardPorts),
		"hooks", hostList(fw.HostChains()), "grants_restored", restored, "grants_in_kernel", adopted)
	if !fw.Owned() {
		log.Warn("firewall: this kernel cannot own the table (NFT_TABLE_F_PERSIST needs Linux 6.9) or SESAME_TABLE_OWNER is N: a ruleset flush removes sesame's table until the self-healing restores it")
	}
	warnUnguarded(s, fw.HostChains(), log)
	warnForwarding(s, firewall.ForwardingOff, log)

	wctx, wcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if w, err := nfevents.Watch(nfevents.Config{}); err != nil {
		log.Error("firewall: cannot watch ruleset events; checking every 10 s only", "err", err)
		wg.Go(func() { k.Run(wctx, nil) })
	} else {
		wg.Go(func() {
			if err := k.Run(wctx, w); err != nil {
				log.Error("firewall: self-healing stopped", "err", err)
			}
		})
	}
	wg.Go(func() { // the ledger is fsynced once a second, not per grant
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if err := led.Sync(); err != nil {
					log.Error("grant ledger: sync", "file", s.ledgerFile, "err", err)
				}
			}
		}
	})
	stop := func(revoke bool) {
		wcancel()
		wg.Wait()
		if revoke {
			fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer fcancel()
			if err := k.RevokeAll(fctx); err != nil {
				log.Error("firewall: revoke grants at exit", "err", err)
			} else {
				log.Info("firewall: grants revoked (FLUSH_IPT_AT_EXIT Y); the guard stays")
			}
		}
		if err := led.Close(); err != nil {
			log.Error("grant ledger: close", "file", s.ledgerFile, "err", err)
		}
		closeFW()
	}
	return k, stop, nil
}

// checkOverlap refuses guarded ports that another sesame table guards too: both tables mark
// granted packets with the same bit (firewall.DefaultMark), so a grant made by either server
// would pass both guards, and neither server's access.conf alone would decide who reaches the
// port.
func checkOverlap(s *settings, peers map[string][]firewall.Port) error {
	mine := map[firewall.Port]bool{}
	for _, p := range s.guardPorts {
		mine[p] = true
	}
	for table, ports := range peers {
		var both []string
		for _, p := range ports {
			if mine[p] {
				both = append(both, p.String())
			}
		}
		if len(both) > 0 {
			return fmt.Errorf("firewall: table inet %s (another sesame server) also guards %s; both mark granted packets with the same bit, so either server's grants would open the port past both guards: guard disjoint ports (OPEN_PORTS, SESAME_GUARD_PORTS) or remove that table with `sesame server --fw-remove` and SESAME_TABLE %s",
				table, strings.Join(both, ", "), table)
		}
	}
	return nil
}

// detectHosts reads the host's ruleset for chains that would drop granted packets.
func detectHosts(ctx context.Context, s *settings, log *slog.Logger) ([]firewall.HostChain, error) {
	rep, err := hostfw.Detect(ctx, nil, hostfw.Options{TableName: s.tableName, Ports: s.guardPorts})
	if err != nil {
		return nil, err
	}
	for _, f := range rep.Errors() {
		log.Error("firewall: host firewall", "finding", f.String())
	}
	for _, n := range rep.Notes {
		log.Warn("firewall: host firewall", "note", n)
	}
	return rep.Hooks(), nil
}

// warnUnguarded warns about ports that stay open to everyone.
// warnForwarding warns at start when ENABLE_IPT_FORWARDING is on but the kernel does not
// forward (off is firewall.ForwardingOff): Forward grants would DNAT packets the kernel drops.
func warnForwarding(s *settings, off func() (bool, bool, error), log *slog.Logger) {
	if !s.policy.NAT.Forwarding {
		return
	}
	v4off, v6off, err := off()
	switch {
	case err != nil:
		log.Warn("firewall: cannot tell whether the kernel forwards (ENABLE_IPT_FORWARDING Y)", "err", err)
	case v4off:
		log.Warn("firewall: ENABLE_IPT_FORWARDING Y but the kernel does not forward IPv4: NAT grants will not reach their targets; set net.ipv4.ip_forward=1")
	}
	if err == nil && v6off {
		log.Info("firewall: the kernel does not forward IPv6 (net.ipv6.conf.all.forwarding=0): IPv6 NAT grants will not reach their targets")
	}
}

func warnUnguarded(s *settings, hooks []firewall.HostChain, log *slog.Logger) {
	for _, st := range s.unguardable {
		if len(hooks) == 0 {
			log.Warn("firewall: "+st+" allows any port (no OPEN_PORTS): sesame guards "+guardsOnly(s.guardPorts)+
				" and no host firewall drops by default, so other ports it grants are open to everyone anyway; set OPEN_PORTS or SESAME_GUARD_PORTS", "stanza", st)
		}
	}
	if len(s.guardPorts) == 0 && len(hooks) == 0 {
		log.Warn("firewall: nothing drops any port: no OPEN_PORTS, no SESAME_GUARD_PORTS and no host firewall that drops; grants change nothing")
	}
}

// guardedText names the guarded ports for messages ("no port" when there are none).
func guardedText(ps []firewall.Port) string {
	if len(ps) == 0 {
		return "no port"
	}
	return portsList(ps)
}

// guardsOnly completes "sesame guards ...": "only tcp/22, udp/53", or "no port".
func guardsOnly(ps []firewall.Port) string {
	if len(ps) == 0 {
		return "no port"
	}
	return "only " + portsList(ps)
}

func portsList(ps []firewall.Port) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return strings.Join(out, ",")
}

func hostList(hs []firewall.HostChain) string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.String()
	}
	return strings.Join(out, "; ")
}

// reload re-reads the configuration files and swaps the policy; grants are kept. A change of
// the guarded ports is applied to the firewall; capture and fleet settings need a restart.
func reload(o *options, old *settings, srv *server.Server, fwall server.Firewall, log *slog.Logger) {
	s, err := loadSettings(o)
	if err == nil {
		err = srv.Reload(s.policy)
	}
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded", "err", err)
		return
	}
	if k, ok := fwall.(*keeper.Keeper); ok && portsList(s.guardPorts) != portsList(old.guardPorts) {
		if err := k.SetGuardPorts(context.Background(), s.guardPorts); err != nil {
			log.Error("SIGHUP: guarded ports not changed", "err", err)
		} else {
			log.Info("SIGHUP: guarded ports changed", "guarded", portsList(s.guardPorts))
			old.guardPorts = s.guardPorts
		}
	}
	if fleetChanged(old.fleet, s.fleet) {
		log.Warn("SIGHUP: the SESAME_FLEET_* settings changed; the fleet keeps the old ones until a restart")
	}
	if changed := restartOnly(old, s); len(changed) > 0 {
		log.Warn("SIGHUP: these settings take effect only at a restart; the old values stay in force",
			"changed", strings.Join(changed, ", "))
	}
	log.Info("SIGHUP: configuration reloaded (grants kept)", "stanzas", len(s.policy.Stanzas))
}

// logStats logs the pipeline counters, the capture source's kernel counters, the firewall's
// heals and the fleet's counters (at exit, and on SIGUSR1).
func logStats(log *slog.Logger, srv *server.Server, src capture.Source, fwall server.Firewall, fl *fleetLink) {
	st := srv.Stats()
	attrs := []any{"packets", st.Packets, "grants", st.Grants, "rejected", st.Rejected()}
	for _, r := range server.Reasons()[1:] {
		if n := st.ByReason[r]; n > 0 {
			attrs = append(attrs, slog.Uint64(r.Key(), n))
		}
	}
	if ss, ok := src.(capture.Statser); ok {
		if cs, err := ss.Stats(); err == nil {
			attrs = append(attrs, "kernel_received", cs.Received, "kernel_dropped", cs.Dropped, "filtered", cs.Rejected)
		}
	}
	if r, ok := src.(*capture.MultiSniffer); ok {
		n, attached := r.Reattachments()
		attrs = append(attrs, "reattachments", n, "attached", attached)
	}
	if k, ok := fwall.(*keeper.Keeper); ok {
		n, ms := k.Heals()
		attrs = append(attrs, "heals", n, "last_heal_ms", ms)
	}
	attrs = append(attrs, fl.stats()...)
	log.Info("stats", attrs...)
}

// watchDrops warns once a minute at most when the kernel dropped packets the server never saw:
// under a flood a knock may be among them.
func watchDrops(ctx context.Context, log *slog.Logger, src capture.Source) {
	ss, ok := src.(capture.Statser)
	if !ok {
		return
	}
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cs, err := ss.Stats()
		if err != nil {
			continue
		}
		if cs.Dropped > last {
			log.Warn("capture: the kernel dropped packets before the server read them (a knock may be among them)",
				"dropped", cs.Dropped-last, "dropped_total", cs.Dropped, "received_total", cs.Received)
			last = cs.Dropped
		}
	}
}

// runOffline decides the packets of a capture file (PCAP_FILE, --pcap-file) as the server would
// have when they were captured, logging each verdict, and grants nothing: "would this knock have
// opened?". It takes no lock, pid file or firewall, so it runs beside a live server; the replay
// cache is a fresh one in memory.
func runOffline(s *settings, log *slog.Logger) error {
	src, desc, err := openSource(s, log)
	if err != nil {
		return err
	}
	fs := src.(*capture.FileSource)
	p := s.policy
	p.TestMode = true
	srv, err := server.New(server.Config{Policy: p, Cache: replay.NewMemory(fs.Time), Logger: log, Now: fs.Time, Workers: 1})
	if err != nil {
		return err
	}
	log.Info("deciding a capture file offline (nothing is granted)", "source", desc)
	err = srv.Run(context.Background(), src)
	logStats(log, srv, src, nil, nil)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// startTCPServer runs fwknopd's accept-and-close TCP server (ENABLE_TCP_SERVER) on TCPSERV_PORT
// until ctx ends. The packets themselves are read by the capture, as in fwknopd, so the
// sniffer's filter must take TCP to that port.
func startTCPServer(ctx context.Context, s *settings, log *slog.Logger) error {
	ln, err := net.Listen("tcp", ":"+strconv.Itoa(s.tcpPort))
	if err != nil {
		return fmt.Errorf("ENABLE_TCP_SERVER: %w", err)
	}
	if s.udpServer {
		log.Warn("ENABLE_TCP_SERVER with ENABLE_UDP_SERVER: TCP connections are accepted, but only the UDP socket is read; SPA over TCP or HTTP needs sniffing (PCAP_INTF, a PCAP_FILTER with tcp)")
	}
	log.Info("tcp server: accepting and closing connections", "addr", ln.Addr().String())
	go func() {
		if err := tcpserver.Serve(ctx, ln, nil); err != nil {
			log.Error("tcp server stopped", "err", err)
		}
	}()
	return nil
}

// The command pool: commandWorkers commands at once, commandQueue more waiting; beyond that a
// command message or cycle is refused (reason "command queue full").
const (
	commandWorkers = 4
	commandQueue   = 64
)

// restartOnly names the settings that differ between old and s but are read only at start
// (the capture source, the table, the listeners, the files): SIGHUP swaps the policy alone.
func restartOnly(old, s *settings) []string {
	var changed []string
	for _, c := range []struct {
		name     string
		was, now any
	}{
		{"PCAP_INTF", old.pcapIntf, s.pcapIntf},
		{"PCAP_FILTER", old.pcapFilter, s.pcapFilter},
		{"ENABLE_UDP_SERVER", old.udpServer, s.udpServer},
		{"UDPSERV_PORT", old.udpPort, s.udpPort},
		{"ENABLE_TCP_SERVER", old.tcpServer, s.tcpServer},
		{"TCPSERV_PORT", old.tcpPort, s.tcpPort},
		{"SESAME_TABLE", old.tableName, s.tableName},
		{"SESAME_TABLE_OWNER", old.tableOwner, s.tableOwner},
		{"SESAME_HOST_CHAIN", old.hostChain, s.hostChain},
		{"SESAME_MD5_LISTEN", old.md5Listen, s.md5Listen},
		{"SESAME_MD5_UPSTREAM", old.md5Upstream, s.md5Upstream},
		{"SESAME_METRICS_LISTEN", old.metricsListen, s.metricsListen},
		{"DIGEST_FILE", old.digestFile, s.digestFile},
		{"FWKNOP_PID_FILE", old.pidFile, s.pidFile},
		{"ENABLE_IPT_FORWARDING/ENABLE_IPT_LOCAL_NAT", old.policy.NAT.Enabled(), s.policy.NAT.Enabled()},
	} {
		if c.was != c.now {
			changed = append(changed, c.name)
		}
	}
	return changed
}

package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"golang.org/x/sys/unix"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/internal/server"
)

// newFirewall builds the nftables backend from the settings.
func newFirewall(s *settings) (*firewall.Nftables, error) {
	fw, err := firewall.NewNftables(firewall.Config{TableName: s.tableName, GuardPorts: s.guardPorts,
		GuardLoopback: s.guardLoopback, HostChain: s.hostChain})
	if err != nil {
		return nil, fmt.Errorf("firewall: %w", err)
	}
	return fw, nil
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

// openSource opens the UDP socket or the sniffer.
func openSource(s *settings) (capture.Source, string, error) {
	if s.udpServer {
		pc, err := listenUDP(":"+strconv.Itoa(s.udpPort), udpReadBuffer)
		if err != nil {
			return nil, "", err
		}
		src := capture.FromPacketConn(pc)
		return src, fmt.Sprintf("udp server on %v", src.LocalAddr()), nil
	}
	src, err := capture.NewSniffer(capture.SniffConfig{Interface: s.pcapIntf, Filter: s.pcapFilter,
		SnapLen: s.snapLen, AnyDirection: s.anyDirection, Promiscuous: s.promiscuous, ReadBuffer: 4 << 20})
	if err != nil {
		return nil, "", err
	}
	return src, fmt.Sprintf("sniffing on %s (%s)", s.pcapIntf, src.Filter()), nil
}

// udpReadBuffer is the UDP socket's receive buffer: room for about 8,000 SPA datagrams, so
// bursts (and floods' jitter) do not drop knocks while the server is busy.
const udpReadBuffer = 8 << 20

// listenUDP opens the UDP-server socket with a large receive buffer (SO_RCVBUFFORCE as root,
// else SO_RCVBUF up to net.core.rmem_max).
func listenUDP(addr string, rcvbuf int) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}
		})
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("udp server: %w", err)
	}
	return pc, nil
}

// limitSource stops after n packets (fwknopd -C).
type limitSource struct {
	capture.Source
	n      int
	cancel context.CancelFunc
}

func (l *limitSource) Read() (capture.Packet, error) {
	if l.n <= 0 {
		l.cancel()
		return capture.Packet{}, fmt.Errorf("packet limit reached: %w", errLimit)
	}
	l.n--
	return l.Source.Read()
}

var errLimit = errors.New("done")

// runDaemon runs the server until SIGTERM/SIGINT (or the -C limit), reloading on SIGHUP.
func runDaemon(o *options, s *settings, log *slog.Logger) error {
	if !o.foreground {
		log.Info("sesame server does not daemonize: running in the foreground (use systemd to background it)")
	}
	for _, w := range s.warnings {
		log.Warn(w)
	}
	if path := os.Getenv("SESAME_CPUPROFILE"); path != "" { // for benchmarks: profile the whole run
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("SESAME_CPUPROFILE: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("SESAME_CPUPROFILE: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	removePID, err := writePID(s.pidFile)
	if err != nil {
		return err
	}
	defer removePID()

	fw, err := newFirewall(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !o.test {
		if s.flushAtInit {
			if err := fw.RevokeAll(ctx); err != nil {
				fw.Close()
				return fmt.Errorf("firewall flush at init: %w", err)
			}
			log.Info("firewall flushed at start (FLUSH_IPT_AT_INIT Y): live grants revoked")
		}
		if err := fw.Init(ctx); err != nil {
			fw.Close()
			return fmt.Errorf("firewall init: %w", err)
		}
	}
	exitFirewall := func() {
		if s.flushAtExit && !o.test {
			fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer fcancel()
			if err := fw.RevokeAll(fctx); err != nil {
				log.Error("flush firewall at exit", "err", err)
			} else {
				log.Info("firewall flushed (FLUSH_IPT_AT_EXIT Y)")
			}
		}
		fw.Close()
	}
	defer exitFirewall()

	cache, err := openCache(s, o.rotateDigest, log)
	if err != nil {
		return err
	}
	defer cache.Close()

	md5, err := startMD5(ctx, s, log)
	if err != nil {
		return err
	}
	defer md5.Close()

	srv, err := server.New(server.Config{Policy: s.policy, Firewall: fw, Cache: cache, Logger: log,
		Workers: s.workers, OnGrant: md5.OnGrant})
	if err != nil {
		return err
	}
	src, desc, err := openSource(s)
	if err != nil {
		return err
	}
	var source capture.Source = src
	if o.packetLimit > 0 {
		source = &limitSource{Source: src, n: o.packetLimit, cancel: cancel}
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, source) }()
	log.Info("sesame server started", "source", desc, "stanzas", len(s.policy.Stanzas), "pid", os.Getpid(),
		"test", o.test)
	sd.SdNotify(false, sd.SdNotifyReady)

	for {
		select {
		case err := <-done:
			logStats(log, srv)
			log.Info("sesame server stopped")
			if errors.Is(err, errLimit) {
				return nil
			}
			return err
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				reload(o, srv, log)
				continue
			case syscall.SIGUSR1:
				logStats(log, srv)
				continue
			}
			log.Info("signal received, shutting down", "signal", sig.String())
			sd.SdNotify(false, sd.SdNotifyStopping)
			cancel()
		}
	}
}

// reload re-reads the configuration files and swaps the policy; grants are kept. Capture and
// firewall settings need a restart.
func reload(o *options, srv *server.Server, log *slog.Logger) {
	s, err := loadSettings(o)
	if err == nil {
		err = srv.Reload(s.policy)
	}
	if err != nil {
		log.Error("SIGHUP: configuration not reloaded", "err", err)
		return
	}
	log.Info("SIGHUP: configuration reloaded (grants kept)", "stanzas", len(s.policy.Stanzas))
}

// logStats logs the pipeline counters (at exit, and on SIGUSR1).
func logStats(log *slog.Logger, srv *server.Server) {
	st := srv.Stats()
	attrs := []any{"packets", st.Packets, "grants", st.Grants, "rejected", st.Rejected()}
	for _, r := range server.Reasons()[1:] {
		if n := st.ByReason[r]; n > 0 {
			attrs = append(attrs, slog.Uint64(r.Key(), n))
		}
	}
	log.Info("stats", attrs...)
}

package server

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sesame-spa/sesame/internal/capture"
	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/logging"
	"github.com/sesame-spa/sesame/internal/server"
	"github.com/sesame-spa/sesame/internal/spahttp"
	"github.com/sesame-spa/sesame/spa"
)

// overrides turns command-line options into fwknopd.conf overrides, as fwknopd does.
func overrides(o *options) map[string]string {
	m := map[string]string{}
	set := func(name, v string) {
		if v != "" {
			m[name] = v
		}
	}
	set("ACCESS_FILE", o.accessFile)
	set("ACCESS_FOLDER", o.accessFolder)
	set("PCAP_INTF", o.intf)
	set("PCAP_FILTER", o.pcapFilter)
	set("PCAP_FILE", o.pcapFile)
	set("DIGEST_FILE", o.digestFile)
	set("FWKNOP_PID_FILE", o.pidFile)
	set("FWKNOP_RUN_DIR", o.runDir)
	set("GPG_HOME_DIR", o.gpgHomeDir)
	set("GPG_EXE", o.gpgExe)
	set("SUDO_EXE", o.sudoExe)
	if o.udpServer {
		m["ENABLE_UDP_SERVER"] = "Y"
	}
	if o.anyDirection {
		m["ENABLE_PCAP_ANY_DIRECTION"] = "Y"
	}
	return m
}

// overrideFiles reads the -O files (comma-separated, as fwknopd) in order and returns the
// variables they set, later files winning. Each file is read and checked on its own (a value
// may not refer with $VAR to a variable of fwknopd.conf). A missing file is an error, as in
// fwknopd.
func overrideFiles(list string) (map[string]string, error) {
	m := map[string]string{}
	if list == "" {
		return m, nil
	}
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		sc, _, err := fwconf.LoadServer(f, fwconf.Options{})
		if err != nil {
			return nil, fmt.Errorf("-O/--override-config %s: %w", f, err)
		}
		for k, v := range sc.Raw {
			m[k] = v
		}
	}
	return m, nil
}

// checkPaths refuses, as fwknopd does before it starts, --gpg-home-dir, --gpg-exe or
// --sudo-exe naming nothing. (A relative FWKNOP_RUN_DIR is refused by fwconf.)
func checkPaths(o *options) error {
	for _, p := range []struct{ flag, path, what string }{
		{"--gpg-home-dir", o.gpgHomeDir, "directory"}, {"--gpg-exe", o.gpgExe, "program"}, {"--sudo-exe", o.sudoExe, "program"},
	} {
		if p.path == "" {
			continue
		}
		st, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("%s %s: %w: name an existing %s", p.flag, p.path, err, p.what)
		}
		if p.what == "directory" && !st.IsDir() {
			return fmt.Errorf("%s %s: not a directory", p.flag, p.path)
		}
		if p.what == "program" && (st.IsDir() || st.Mode().Perm()&0o111 == 0) {
			return fmt.Errorf("%s %s: not an executable file", p.flag, p.path)
		}
	}
	return nil
}

// loadSettings reads fwknopd.conf and the access stanzas it names, with the command line's
// overrides.
func loadSettings(o *options) (*settings, error) { return load(o, true) }

// load reads fwknopd.conf and, if withAccess, the access stanzas. Control commands (-S, -K,
// -R, --fw-list, --fw-flush) need only fwknopd.conf.
func load(o *options, withAccess bool) (*settings, error) {
	ov, err := overrideFiles(o.overrideConfig)
	if err != nil {
		return nil, err
	}
	for k, v := range overrides(o) { // the command line wins over -O files, as in fwknopd
		ov[k] = v
	}
	var read []string // every file fwconf reads, for CheckCommandFiles
	opts := fwconf.Options{Overrides: ov, Read: &read}
	sc, warns, err := fwconf.LoadServer(o.configFile, opts)
	if err != nil {
		return nil, err
	}
	if err := checkPaths(o); err != nil {
		return nil, err
	}
	var stanzas []*fwconf.Stanza
	var awarns []fwconf.Warning
	if withAccess {
		if stanzas, awarns, err = sc.LoadAccess(opts); err != nil {
			return nil, err
		}
		if err := checkCommandFiles(stanzas, read); err != nil {
			return nil, err
		}
		if err := sc.CheckNAT(stanzas); err != nil {
			return nil, err
		}
	}
	s := &settings{
		policy: server.Policy{
			PacketAging:  sc.EnableSPAPacketAging,
			MaxPacketAge: sc.MaxSPAPacketAge,
			ReplayMargin: sc.ReplayMargin,
			TestMode:     o.test,
			SPAOverHTTP:  sc.EnableSPAOverHTTP,
			HTTP:         spahttp.Options{AllowAnyUserAgent: sc.AllowAnyUserAgent, XForwardedFor: sc.EnableXForwardedFor},
			SudoExe:      sc.SudoExe,
			NAT: server.NAT{Forwarding: sc.EnableIPTForwarding, LocalNAT: sc.EnableIPTLocalNAT, SNAT: sc.EnableIPTSNAT,
				SNATAddr: sc.SNATTranslateIP, DNS: sc.EnableNATDNS},
			DestinationRule: sc.DestinationRule,
		},
		tcpServer:         sc.EnableTCPServer,
		tcpPort:           int(sc.TCPServPort),
		udpServer:         sc.EnableUDPServer,
		udpPort:           int(sc.UDPServPort),
		pcapIntf:          sc.PcapIntf,
		pcapFilter:        sc.PcapFilter,
		pcapFile:          sc.PcapFile,
		anyDirection:      sc.PcapAnyDirection,
		digestPersistence: sc.EnableDigestPersistence,
		digestFile:        sc.DigestFile,
		pidFile:           sc.PIDFile,
		runDir:            sc.RunDir,
		flushAtInit:       sc.FlushAtInit, // default N in sesame: grants survive a restart
		flushAtExit:       sc.FlushAtExit,
		exitAtIntfDown:    sc.ExitAtIntfDown,
		tableName:         sc.Table,
		tableOwner:        sc.TableOwner,
		workers:           defaultWorkers,
		md5Listen:         sc.MD5Listen,
		metricsListen:     sc.MetricsListen,
		md5Upstream:       sc.MD5Upstream,
		locale:            cmp.Or(o.locale, sc.Raw["LOCALE"]),
		syslogIdentity:    cmp.Or(sc.Raw["SYSLOG_IDENTITY"], "fwknopd"),
		syslogFacility:    cmp.Or(sc.Raw["SYSLOG_FACILITY"], "LOG_DAEMON"),
	}
	if _, err := logging.ParseFacility(s.syslogFacility); err != nil {
		return nil, fmt.Errorf("%s: SYSLOG_FACILITY: %w", sc.File, err)
	}
	if s.udpPort == 0 {
		s.udpPort = defaultUDPPort
	}
	if s.fleet, err = loadFleet(sc); err != nil {
		return nil, err
	}
	if sc.HostChain != (firewall.HostChain{}) {
		s.hostChain = sc.HostChain.String()
	}
	if s.pcapFile != "" {
		// Offline decisions only: a capture file never opens the firewall (fwknopd would).
		s.policy.TestMode = true
	}
	if !s.udpServer || s.pcapFile != "" {
		// The start compiles the filter for the kernel; so does --exit-parse-config.
		if _, err := capture.CompileFilter(cmp.Or(s.pcapFilter, capture.DefaultFilter)); err != nil {
			return nil, fmt.Errorf("%s: PCAP_FILTER %q: %w", sc.File, s.pcapFilter, err)
		}
	}
	if s.tableName == "" {
		s.tableName = firewall.DefaultTableName
	}
	s.ledgerFile = filepath.Join(s.runDir, "sesame-"+s.tableName+".ledger")
	guard := map[firewall.Port]bool{}
	addGuard := func(pp spa.ProtoPort) {
		p, err := firewall.ParsePort(pp.String())
		if err != nil || guard[p] {
			return
		}
		guard[p] = true
		s.guardPorts = append(s.guardPorts, p)
	}
	for _, p := range sc.GuardPorts {
		addGuard(p)
	}
	for _, st := range stanzas {
		if st.Cmd.CycleOpen != "" {
			continue // its commands open access (fwknopd's CMD_CYCLE_OPEN), not sesame's table
		}
		for _, p := range st.OpenPorts {
			addGuard(p)
		}
		if len(st.OpenPorts) == 0 {
			s.unguardable = append(s.unguardable, fmt.Sprintf("stanza #%d (%s:%d)", st.Num, st.File, st.Line))
		}
	}
	var md5Errs []string
	for _, st := range stanzas {
		s.policy.Stanzas = append(s.policy.Stanzas, *st)
		if st.MD5 && s.md5Listen == "" {
			md5Errs = append(md5Errs, fmt.Sprintf("%s:%d: stanza #%d has SESAME_MD5 Y but fwknopd.conf sets no SESAME_MD5_LISTEN: add SESAME_MD5_LISTEN and SESAME_MD5_UPSTREAM, or remove SESAME_MD5",
				st.File, st.Line, st.Num))
		}
	}
	if len(md5Errs) > 0 {
		return nil, errors.New(strings.Join(md5Errs, "\n"))
	}
	if s.md5Listen != "" {
		// The signed listener is the only port SESAME_MD5 grants open: guard it too.
		_, port, err := net.SplitHostPort(s.md5Listen)
		n, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || perr != nil || n == 0 {
			return nil, fmt.Errorf("%s: SESAME_MD5_LISTEN %q: want [ADDR]:PORT", sc.File, s.md5Listen)
		}
		s.policy.MD5Port = uint16(n)
		addGuard(spa.ProtoPort{Proto: "tcp", Port: uint16(n)})
	}
	for _, w := range append(warns, awarns...) {
		s.warnings = append(s.warnings, w.String())
	}
	s.sc = sc
	s.dump = dump(sc, s)
	return s, nil
}

// dump is the second part of -v -D (after dumpFwknopd): what sesame derives from the files
// (capture, replay keep, guarded ports, ...) as comments, then the effective fwknopd.conf and
// access stanzas as fwconf.DumpServer and fwconf.DumpAccess write them (keys hidden), which
// parse back.
func dump(sc *fwconf.Server, s *settings) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# effective: capture=%s replay-keep=%v digest-file=%s pid-file=%s guard=%v host-chain=%q flush-at-exit=%v\n",
		captureDesc(s), sc.ReplayKeep(), s.digestFile, s.pidFile, s.guardPorts, s.hostChain, s.flushAtExit)
	if s.md5Listen != "" {
		fmt.Fprintf(&b, "# effective: tcp-md5 listener %s -> %s\n", s.md5Listen, s.md5Upstream)
	}
	if f := s.fleet; f != nil {
		fmt.Fprintf(&b, "# effective: fleet redis=%s group=%s on-error=%s tls=%v\n", fwconf.RedactURL(f.URL),
			cmp.Or(f.Group, "default"), f.OnError, f.TLS != nil)
	}
	fwconf.DumpServer(&b, sc) // a strings.Builder does not fail
	stanzas := make([]*fwconf.Stanza, len(s.policy.Stanzas))
	for i := range s.policy.Stanzas {
		stanzas[i] = &s.policy.Stanzas[i]
	}
	b.WriteString("\n")
	fwconf.DumpAccess(&b, stanzas, fwconf.DumpOptions{})
	return b.String()
}

func captureDesc(s *settings) string {
	if s.udpServer {
		return "udp:" + strconv.Itoa(s.udpPort)
	}
	return "sniff:" + s.pcapIntf + " (" + s.pcapFilter + ")"
}

// defaultWorkers is how many goroutines handle packets that pass the HMAC check. The reader
// rejects forged packets itself and handles a lone knock itself; the packets of a burst wait
// on the firewall in the workers, and several waiting at once are committed in one nftables
// transaction.
const defaultWorkers = 64

// checkCommandFiles refuses to start when a stanza runs commands (ENABLE_CMD_EXEC, a command
// cycle) and a file the configuration came from (files: what fwconf read), or its directory,
// could be changed by someone other than root or the daemon.
func checkCommandFiles(stanzas []*fwconf.Stanza, files []string) error {
	for _, st := range stanzas {
		if st.RunsCommands() {
			if err := fwconf.CheckCommandFiles(files, os.Geteuid()); err != nil {
				return fmt.Errorf("stanza #%d (%s:%d) runs commands, so its configuration must be safe from other users:\n%w",
					st.Num, st.File, st.Line, err)
			}
			return nil
		}
	}
	return nil
}

package server

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// options are fwknopd 2.6's command-line options (fwknopd -h), plus sesame's own.
type options struct {
	configFile     string // -c
	accessFile     string // -a
	accessFolder   string // --access-folder
	overrideConfig string // -O: comma-separated files applied over fwknopd.conf
	foreground     bool   // -f
	intf           string // -i
	pcapFilter     string // -P
	pcapFile       string // --pcap-file
	anyDirection   bool   // --pcap-any-direction
	udpServer      bool   // -U
	digestFile     string // -d
	pidFile        string // -p
	runDir         string // -r
	locale         string // -l
	syslogEnable   bool   // --syslog-enable
	gpgHomeDir     string // --gpg-home-dir
	gpgExe         string // --gpg-exe
	sudoExe        string // --sudo-exe
	noFirewdCheck  bool   // --no-firewd-check-support (no effect)
	noIptCheck     bool   // --no-ipt-check-support (no effect)
	test           bool   // -t
	verbose        int    // -v, repeatable
	dumpConfig     bool   // -D
	exitParse      bool   // --exit-parse-config
	exitDigest     bool   // --exit-parse-digest-cache
	fwList         bool   // --fw-list
	fwListAll      bool   // --fw-list-all
	fwFlush        bool   // --fw-flush
	fwRemove       bool   // --fw-remove (sesame's)
	kill           bool   // -K
	status         bool   // -S
	restart        bool   // -R
	packetLimit    int    // -C: exit after this many candidate packets
	rotateDigest   bool   // --rotate-digest-cache
	keyGen         bool   // --key-gen
	keyGenFile     string // --key-gen-file
	keyLen         int    // --key-len
	hmacKeyLen     int    // --hmac-key-len
	hmacDigest     string // --hmac-digest-type
	version        bool   // -V
	help           bool   // -h

	// fwknopd options sesame does not implement: accepted by the parser so that using one
	// says "not supported yet" rather than "unknown flag".
	aflFuzzing     bool   // -A
	dumpErrCodes   bool   // --dump-serv-err-codes
	faultInjection string // --fault-injection-tag

	// given records which flags appeared on the command line (pflag's Changed).
	given map[string]bool
}

const defaultConfigFile = "/etc/fwknop/fwknopd.conf"

// unsupportedFlags are fwknopd 2.6.10's options that sesame lacks, with why.
var unsupportedFlags = map[string]string{
	"afl-fuzzing":         "AFL fuzzing mode (use sesame's Go fuzz tests)",
	"dump-serv-err-codes": "fwknopd's test-suite error code list",
	"fault-injection-tag": "fwknopd's test-suite fault injection",
}

// errNotSupported is wrapped by parseFlags' error for an fwknopd option sesame lacks.
var errNotSupported = errors.New("not supported yet")

func parseFlags(args []string, stderr io.Writer) (*options, *pflag.FlagSet, error) {
	o := &options{}
	fs := pflag.NewFlagSet("sesame server", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVarP(&o.configFile, "config-file", "c", defaultConfigFile, "fwknopd.conf to read")
	fs.StringVarP(&o.accessFile, "access-file", "a", "", "access.conf to read (default: ACCESS_FILE of fwknopd.conf)")
	fs.StringVar(&o.accessFolder, "access-folder", "", "read every *.conf file in this directory as access.conf")
	fs.StringVarP(&o.overrideConfig, "override-config", "O", "", "comma-separated fwknopd.conf files whose settings override fwknopd.conf (later files win; the command line wins over all)")
	fs.BoolVarP(&o.foreground, "foreground", "f", false, "run in the foreground; invoked as fwknopd without -f sesame detaches like fwknopd, `sesame server` never does")
	fs.StringVarP(&o.intf, "interface", "i", "", "interface to sniff (PCAP_INTF)")
	fs.StringVarP(&o.pcapFilter, "pcap-filter", "P", "", "capture filter (PCAP_FILTER)")
	fs.StringVar(&o.pcapFile, "pcap-file", "", "decide the packets of this capture file (pcap or pcapng) and exit; nothing is granted (PCAP_FILE)")
	fs.BoolVar(&o.anyDirection, "pcap-any-direction", false, "also sniff packets the host sends, not only those it receives (ENABLE_PCAP_ANY_DIRECTION)")
	fs.BoolVarP(&o.udpServer, "udp-server", "U", false, "read SPA packets from a UDP socket instead of sniffing (ENABLE_UDP_SERVER)")
	fs.StringVarP(&o.digestFile, "digest-file", "d", "", "replay cache file (DIGEST_FILE)")
	fs.StringVarP(&o.pidFile, "pid-file", "p", "", "PID file (FWKNOP_PID_FILE)")
	fs.StringVarP(&o.runDir, "run-dir", "r", "", "run directory, an absolute path (FWKNOP_RUN_DIR)")
	fs.StringVarP(&o.locale, "locale", "l", "", "locale (LOCALE): exported as LC_ALL to the programs sesame runs (gpg); sesame's own messages do not change")
	fs.BoolVar(&o.syslogEnable, "syslog-enable", false, "also log to syslog (/dev/log, SYSLOG_IDENTITY, SYSLOG_FACILITY) in the foreground")
	fs.StringVar(&o.gpgHomeDir, "gpg-home-dir", "", "GnuPG home directory (GPG_HOME_DIR)")
	fs.StringVar(&o.gpgExe, "gpg-exe", "", "path to gpg (GPG_EXE)")
	fs.StringVar(&o.sudoExe, "sudo-exe", "", "path to sudo (SUDO_EXE), for stanzas with ENABLE_CMD_SUDO_EXEC")
	fs.BoolVar(&o.noFirewdCheck, "no-firewd-check-support", false, "accepted; no effect (sesame uses nftables, not firewall-cmd)")
	fs.BoolVar(&o.noIptCheck, "no-ipt-check-support", false, "accepted; no effect (sesame uses nftables, not iptables -C)")
	fs.BoolVarP(&o.test, "test", "t", false, "test mode: process packets but make no firewall change")
	fs.CountVarP(&o.verbose, "verbose", "v", "more log output (repeat for more)")
	fs.BoolVarP(&o.dumpConfig, "dump-config", "D", false, "print the configuration and exit")
	fs.BoolVar(&o.exitParse, "exit-parse-config", false, "parse the configuration files and exit")
	fs.BoolVar(&o.exitDigest, "exit-parse-digest-cache", false, "parse the digest cache (DIGEST_FILE) and exit")
	fs.BoolVar(&o.fwList, "fw-list", false, "list the live grants and exit")
	fs.BoolVar(&o.fwListAll, "fw-list-all", false, "list the live grants, the guard and the host chains hooked, and exit")
	fs.BoolVar(&o.fwFlush, "fw-flush", false, "revoke every grant and exit (the guard stays)")
	fs.BoolVar(&o.fwRemove, "fw-remove", false, "uninstall: delete sesame's table and hooks (the guarded ports open to all); the server must be stopped")
	fs.BoolVarP(&o.kill, "kill", "K", false, "stop the running server (SIGTERM to the PID in the PID file)")
	fs.BoolVarP(&o.status, "status", "S", false, "report whether a server is running")
	fs.BoolVarP(&o.restart, "restart", "R", false, "make the running server reload its configuration (SIGHUP)")
	fs.IntVarP(&o.packetLimit, "packet-limit", "C", 0, "exit after this many candidate packets, the last one handled in full (0: never)")
	fs.BoolVar(&o.rotateDigest, "rotate-digest-cache", false, "rename the digest file to <file>-old at start")
	fs.BoolVar(&o.keyGen, "key-gen", false, "print a new KEY_BASE64 and HMAC_KEY_BASE64 and exit")
	fs.StringVar(&o.keyGenFile, "key-gen-file", "", "with --key-gen: write the keys to this file")
	fs.IntVar(&o.keyLen, "key-len", 32, "with --key-gen: Rijndael key length in bytes (1..32)")
	fs.IntVar(&o.hmacKeyLen, "hmac-key-len", 0, "with --key-gen: HMAC key length in bytes (default by digest type)")
	fs.StringVar(&o.hmacDigest, "hmac-digest-type", "sha256", "with --key-gen: HMAC digest type")
	fs.BoolVarP(&o.version, "version", "V", false, "print the version and exit")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help and exit")
	fs.BoolVarP(&o.aflFuzzing, "afl-fuzzing", "A", false, "not supported yet (fwknopd's AFL fuzzing mode)")
	fs.BoolVar(&o.dumpErrCodes, "dump-serv-err-codes", false, "not supported yet (fwknopd test suite)")
	fs.StringVar(&o.faultInjection, "fault-injection-tag", "", "not supported yet (fwknopd test suite)")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.given = map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { o.given[f.Name] = true })
	for name, why := range unsupportedFlags {
		if o.given[name] {
			return nil, fs, &optionError{fmt.Errorf("fwknopd option --%s is %w in sesame: %s", name, errNotSupported, why)}
		}
	}
	if err := checkFlags(o); err != nil {
		return nil, fs, &optionError{err}
	}
	return o, fs, nil
}

// optionError is an option fwknopd would accept as syntax but refuses (exit 1, not 2).
type optionError struct{ err error }

func (e *optionError) Error() string { return e.err.Error() }
func (e *optionError) Unwrap() error { return e.err }

// checkFlags refuses the combinations fwknopd refuses.
func checkFlags(o *options) error {
	n := 0
	for _, b := range []bool{o.dumpConfig, o.kill, o.restart, o.status} {
		if b {
			n++
		}
	}
	if n > 1 {
		return errors.New("the -D, -K, -R, and -S options are mutually exclusive: pick only one (as fwknopd)")
	}
	if o.given["access-folder"] && strings.TrimSpace(o.accessFolder) == "" {
		return errors.New("--access-folder: empty path: name a directory of *.conf access files, or leave the option out to read ACCESS_FILE")
	}
	if o.given["override-config"] {
		for _, f := range strings.Split(o.overrideConfig, ",") {
			if strings.TrimSpace(f) == "" {
				return fmt.Errorf("-O/--override-config %q: empty file name in the list", o.overrideConfig)
			}
		}
	}
	if o.packetLimit < 0 {
		return fmt.Errorf("-C/--packet-limit %d: want 0 (no limit) or more", o.packetLimit)
	}
	return nil
}

package server

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"
)

// options are fwknopd 2.6's command-line options that sesame server supports.
type options struct {
	configFile   string // -c
	accessFile   string // -a
	accessFolder string // --access-folder
	foreground   bool   // -f
	intf         string // -i
	pcapFilter   string // -P
	pcapFile     string // --pcap-file
	udpServer    bool   // -U
	digestFile   string // -d
	pidFile      string // -p
	runDir       string // -r
	test         bool   // -t
	verbose      int    // -v, repeatable
	dumpConfig   bool   // -D
	exitParse    bool   // --exit-parse-config
	fwList       bool   // --fw-list
	fwListAll    bool   // --fw-list-all
	fwFlush      bool   // --fw-flush
	fwRemove     bool   // --fw-remove (sesame's)
	kill         bool   // -K
	status       bool   // -S
	restart      bool   // -R
	packetLimit  int    // -C: exit after this many candidate packets
	rotateDigest bool   // --rotate-digest-cache
	keyGen       bool   // --key-gen
	keyGenFile   string // --key-gen-file
	keyLen       int    // --key-len
	hmacKeyLen   int    // --hmac-key-len
	hmacDigest   string // --hmac-digest-type
	version      bool   // -V
	help         bool   // -h
}

const defaultConfigFile = "/etc/fwknop/fwknopd.conf"

func parseFlags(args []string, stderr io.Writer) (*options, *pflag.FlagSet, error) {
	o := &options{}
	fs := pflag.NewFlagSet("sesame server", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	fs.StringVarP(&o.configFile, "config-file", "c", defaultConfigFile, "fwknopd.conf to read")
	fs.StringVarP(&o.accessFile, "access-file", "a", "", "access.conf to read (default: ACCESS_FILE of fwknopd.conf)")
	fs.StringVar(&o.accessFolder, "access-folder", "", "read every *.conf file in this directory as access.conf")
	fs.BoolVarP(&o.foreground, "foreground", "f", false, "run in the foreground (sesame never daemonizes; use systemd)")
	fs.StringVarP(&o.intf, "interface", "i", "", "interface to sniff (PCAP_INTF)")
	fs.StringVarP(&o.pcapFilter, "pcap-filter", "P", "", "capture filter (PCAP_FILTER)")
	fs.StringVar(&o.pcapFile, "pcap-file", "", "decide the packets of this capture file (pcap or pcapng) and exit; nothing is granted (PCAP_FILE)")
	fs.BoolVarP(&o.udpServer, "udp-server", "U", false, "read SPA packets from a UDP socket instead of sniffing (ENABLE_UDP_SERVER)")
	fs.StringVarP(&o.digestFile, "digest-file", "d", "", "replay cache file (DIGEST_FILE)")
	fs.StringVarP(&o.pidFile, "pid-file", "p", "", "PID file (FWKNOP_PID_FILE)")
	fs.StringVarP(&o.runDir, "run-dir", "r", "", "run directory (FWKNOP_RUN_DIR)")
	fs.BoolVarP(&o.test, "test", "t", false, "test mode: process packets but make no firewall change")
	fs.CountVarP(&o.verbose, "verbose", "v", "more log output (repeat for more)")
	fs.BoolVarP(&o.dumpConfig, "dump-config", "D", false, "print the configuration and exit")
	fs.BoolVar(&o.exitParse, "exit-parse-config", false, "parse the configuration files and exit")
	fs.BoolVar(&o.fwList, "fw-list", false, "list the live grants and exit")
	fs.BoolVar(&o.fwListAll, "fw-list-all", false, "list the live grants and exit (same as --fw-list)")
	fs.BoolVar(&o.fwFlush, "fw-flush", false, "revoke every grant and exit (the guard stays)")
	fs.BoolVar(&o.fwRemove, "fw-remove", false, "uninstall: delete sesame's table and hooks (the guarded ports open to all); the server must be stopped")
	fs.BoolVarP(&o.kill, "kill", "K", false, "stop the running server (SIGTERM to the PID in the PID file)")
	fs.BoolVarP(&o.status, "status", "S", false, "report whether a server is running")
	fs.BoolVarP(&o.restart, "restart", "R", false, "make the running server reload its configuration (SIGHUP)")
	fs.IntVarP(&o.packetLimit, "packet-limit", "C", 0, "exit after this many candidate packets (0: never)")
	fs.BoolVar(&o.rotateDigest, "rotate-digest-cache", false, "rename the digest file to <file>-old at start")
	fs.BoolVar(&o.keyGen, "key-gen", false, "print a new KEY_BASE64 and HMAC_KEY_BASE64 and exit")
	fs.StringVar(&o.keyGenFile, "key-gen-file", "", "with --key-gen: write the keys to this file")
	fs.IntVar(&o.keyLen, "key-len", 32, "with --key-gen: Rijndael key length in bytes (1..32)")
	fs.IntVar(&o.hmacKeyLen, "hmac-key-len", 0, "with --key-gen: HMAC key length in bytes (default by digest type)")
	fs.StringVar(&o.hmacDigest, "hmac-digest-type", "sha256", "with --key-gen: HMAC digest type")
	fs.BoolVarP(&o.version, "version", "V", false, "print the version and exit")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help and exit")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, fs, nil
}

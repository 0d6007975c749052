package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/sesame-spa/sesame/internal/firewall"
	"github.com/sesame-spa/sesame/internal/fwconf"
	"github.com/sesame-spa/sesame/internal/replay"
	"github.com/sesame-spa/sesame/internal/spahttp"
	"github.com/sesame-spa/sesame/spa"
)

// Firewall is the part of firewall.Backend the pipeline uses.
type Firewall interface {
	Grant(ctx context.Context, g firewall.Grant) error
}

// Policy is the reloadable part of the configuration: the access stanzas and the fwknopd.conf
// settings that decide whether a packet is granted. Server.Reload swaps it atomically.
type Policy struct {
	Stanzas []fwconf.Stanza

	// PacketAging enables the timestamp check (ENABLE_SPA_PACKET_AGING); MaxPacketAge is
	// MAX_SPA_PACKET_AGE (120 s when zero).
	PacketAging  bool
	MaxPacketAge time.Duration
	// ReplayMargin (SESAME_REPLAY_MARGIN) goes into fwconf.ReplayKeep, the rule for how long a
	// digest is kept: 2*MaxPacketAge + ReplayMargin with aging on, forever with it off.
	ReplayMargin time.Duration

	// SPAOverHTTP (ENABLE_SPA_OVER_HTTP) takes SPA packets out of HTTP requests ("GET /..."
	// from `fwknop -P http`), shaped by HTTP (ALLOW_ANY_USER_AGENT, ENABLE_X_FORWARDED_FOR).
	SPAOverHTTP bool
	HTTP        spahttp.Options

	// TestMode (fwknopd -t) runs every check but makes no firewall change and records no
	// replay digest.
	TestMode bool

	// SudoExe (SUDO_EXE, "" for /usr/bin/sudo) runs the commands of ENABLE_CMD_SUDO_EXEC
	// stanzas.
	SudoExe string

	// MD5Port is the TCP-MD5 listener's port (SESAME_MD5_LISTEN). A SESAME_MD5 stanza's grant
	// opens that port only, whatever ports the packet asks for (after they pass the stanza's
	// port checks), so a granted address still cannot reach the service unsigned.
	MD5Port uint16

	// NAT is fwknopd.conf's NAT switches: with none on, NAT messages are refused (NATRefused).
	// NAT grants need a firewall made with firewall.Config.NAT.
	NAT NAT

	// DestinationRule (ENABLE_DESTINATION_RULE) makes each access grant open its ports only on
	// the address the knock was sent to (firewall.Grant.Dst = the packet's destination). When
	// that address is unspecified (a source that does not report it) or of another family than
	// the allowed address (an IPv4 allow-IP in a knock sent over IPv6), the grant is for any
	// destination, as fwknopd writes 0.0.0.0/0 then; the log's dst attribute says "any". NAT
	// and command grants are unaffected.
	DestinationRule bool
}

// Config holds what a Server is built from.
type Config struct {
	Policy Policy

	Firewall Firewall     // required unless Policy.TestMode
	Cache    replay.Cache // nil: no replay protection
	Logger   *slog.Logger // nil: discard
	// Now is the clock (nil: time.Now, and then the checks a forged packet gets take the time
	// the source read it, capture.Packet.Time, when it has one).
	Now func() time.Time

	// NewOpener builds a stanza's Opener from its keys, once per stanza and Reload (nil:
	// NewSPAOpener). Tests may substitute a fake.
	NewOpener func(spa.Keys) (Opener, error)

	// GnuPG builds the Opener of each stanza with GPG.Enabled, once per stanza and Reload
	// (nil: NewGnuPGOpener with the keys of the stanza's GnuPG home, from GnuPGKeys).
	GnuPG func(st *fwconf.Stanza) (GnuPGOpener, error)
	// GnuPGKeys loads GnuPG keys for the default GnuPG builder (nil: gpgkeys.Load, which runs
	// the stanza's gpg once per home and Reload).
	GnuPGKeys KeyLoader
	// GnuPGBudget bounds private-key decryptions for GnuPG stanzas without an HMAC key.
	GnuPGBudget Budget

	// Commands runs the commands of command messages (ENABLE_CMD_EXEC) and command cycles
	// (CMD_CYCLE_OPEN, CMD_CYCLE_CLOSE) off the packet path; required when a stanza runs
	// commands (New and Reload fail without it). See command.go.
	Commands CommandRunner
	// Closes keeps pending CMD_CYCLE_CLOSE commands across restarts (nil: in memory only).
	// New schedules those a previous run left, running the ones already due at once.
	Closes CloseStore
	// AfterFunc runs f after d on another goroutine, for CMD_CYCLE_CLOSE (nil: time.AfterFunc).
	AfterFunc func(d time.Duration, f func())

	// ReplayTimeout is the deadline of every replay cache call (default 1 s); a call that
	// fails or misses it rejects the packet (InternalError): fail closed.
	ReplayTimeout time.Duration

	// Workers is how many goroutines Run uses to handle packets; 0 or 1 handles them in the
	// reading goroutine. With Workers > 1 the reader itself rejects what fails the cheap
	// checks (wire, source, one HMAC per matching stanza) and handles a lone Rijndael packet
	// (see the package doc), and Queue is the backlog between the reader and the workers
	// (default 1024); when it is full the reader waits, leaving packets in the source's
	// (kernel) buffer.
	Workers int
	Queue   int

	// LogBurst and LogInterval rate-limit rejection log lines per source address: at most
	// LogBurst lines per LogInterval per address (defaults 20 per 10 s); the rest are counted
	// and reported in the next line logged for that address ("suppressed=N").
	LogBurst    int
	LogInterval time.Duration

	// OnGrant, if set, is called after the firewall made the grants gs for stanza st (never
	// in test mode), from the goroutine that handled the packet. An error is logged; the
	// firewall grants stand. sesame's TCP-MD5 listener (package md5grant) uses it.
	OnGrant func(st *fwconf.Stanza, gs []firewall.Grant) error

	// ResolveNAT resolves the host name of a NAT request (ENABLE_NAT_DNS), with a deadline of
	// one second (nil: net.DefaultResolver). Tests substitute a fake.
	ResolveNAT Resolver

	// Observe, if set, is told how long each settled packet took to handle and whether it was
	// granted (the metrics' handling histogram). It must be cheap and safe for concurrent use.
	Observe func(granted bool, d time.Duration)
}

const (
	defaultMaxPacketAge  = 120 * time.Second
	defaultReplayTimeout = time.Second
	defaultQueue         = 1024
	defaultLogBurst      = 20
	defaultLogInterval   = 10 * time.Second
	maxLogLimiterEntries = 4096
)

func (p *Policy) maxAge() time.Duration {
	if p.MaxPacketAge <= 0 {
		return defaultMaxPacketAge
	}
	return p.MaxPacketAge
}

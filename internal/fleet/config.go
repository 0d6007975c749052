package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/sesame-spa/sesame/internal/ledger"
)

// Policy is what the replay check does when Redis cannot answer in time
// (SESAME_FLEET_ON_ERROR).
type Policy int

const (
	// Closed refuses the knock: CheckAndAdd returns an error (the default).
	Closed Policy = iota
	// Local checks the digest against Config.Local instead, logs and counts it.
	Local
)

// ParsePolicy reads "closed" or "local" (any case).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "closed":
		return Closed, nil
	case "local":
		return Local, nil
	}
	return 0, fmt.Errorf("fleet: on-error policy %q: want closed or local", s)
}

func (p Policy) String() string {
	if p == Local {
		return "local"
	}
	return "closed"
}

// Checker is the replay check of a local cache (replay.Cache has it).
type Checker interface {
	CheckAndAdd(ctx context.Context, digest string, now time.Time, keep time.Duration) (fresh bool, err error)
}

// Applier receives what other gateways publish. Run calls it from one goroutine.
type Applier interface {
	// Apply grants es locally, each until its absolute Expires (merge: the later expiry wins).
	Apply(es []ledger.Entry) error
	// Revoke revokes the grants for keys locally; absent keys are ignored.
	Revoke(keys []ledger.Key) error
	// RevokeAll revokes every grant locally.
	RevokeAll() error
}

// Config configures a Fleet.
type Config struct {
	// URL names the Redis server; see the package doc (redis://, rediss://, redis+sentinel://,
	// rediss+sentinel://). Timeouts in it are replaced by Timeout.
	URL string
	// TLS, if set, is the TLS configuration for a rediss URL (a private CA, a client
	// certificate: see LoadTLS); ServerName defaults to the URL's host. nil: the system roots.
	// Setting it with a plain redis URL is an error.
	TLS *tls.Config
	// Group names the gateways that share grants and replay digests (SESAME_FLEET_GROUP):
	// 1 to 64 of [A-Za-z0-9._-]; "" means "default".
	Group string
	// Key is the fleet key, at least 32 bytes (ParseKeyFile). Redis never sees it.
	Key []byte
	// OnError is the replay check's policy when Redis fails.
	OnError Policy
	// Local is the local replay cache Local falls back to; with Local it is required, and every
	// digest Redis accepts is recorded in it too, so this gateway refuses its own replays
	// during an outage.
	Local Checker
	// Timeout is the deadline of every Redis call (default 200 ms).
	Timeout time.Duration
	// MaxSkew bounds the clock difference between gateways and Redis (default 2 s).
	MaxSkew time.Duration
	// WaitReplicas, if > 0, makes every write wait (WAIT) until that many replicas have it,
	// within Timeout; fewer is an error (the policy applies). The deadline of such writes is
	// Timeout + 150 ms, since Redis checks WAIT's timeout only 10 times a second (hz 10).
	WaitReplicas int
	// Gateway is this gateway's name in messages (default: a random id per Fleet), 1 to 64 of
	// [A-Za-z0-9._-]. Run skips messages from this name.
	Gateway string
	// StreamLen is the approximate length the grant stream is trimmed to (default 10000).
	StreamLen int
	Now       func() time.Time
	Log       *slog.Logger
}

const (
	defaultTimeout   = 200 * time.Millisecond
	defaultMaxSkew   = 2 * time.Second
	defaultStreamLen = 10000
	minKeyLen        = 32
	// maxGrant is the longest grant accepted from another gateway (firewall.MaxTimeout).
	maxGrant = 24 * time.Hour
)

func (c *Config) defaults() error {
	if c.Group == "" {
		c.Group = "default"
	}
	if !validName(c.Group) {
		return fmt.Errorf("fleet: group %q: want 1 to 64 of A-Z a-z 0-9 . _ -", c.Group)
	}
	if len(c.Key) < minKeyLen {
		return fmt.Errorf("fleet: key has %d bytes, want at least %d", len(c.Key), minKeyLen)
	}
	if c.OnError != Closed && c.OnError != Local {
		return fmt.Errorf("fleet: unknown policy %d", c.OnError)
	}
	if c.OnError == Local && c.Local == nil {
		return errors.New("fleet: policy local needs a local replay cache")
	}
	if c.Timeout <= 0 {
		c.Timeout = defaultTimeout
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = defaultMaxSkew
	}
	if c.WaitReplicas < 0 {
		return fmt.Errorf("fleet: WaitReplicas %d < 0", c.WaitReplicas)
	}
	if c.Gateway == "" {
		c.Gateway = "gw-" + randomHex(8)
	}
	if !validName(c.Gateway) {
		return fmt.Errorf("fleet: gateway name %q: want 1 to 64 of A-Z a-z 0-9 . _ -", c.Gateway)
	}
	if c.StreamLen <= 0 {
		c.StreamLen = defaultStreamLen
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// newClientFunc returns a function that makes a client for cfg.URL (Run's stream reader gets
// its own, so a blocking read never holds up a replay check).
func newClientFunc(cfg *Config) (func() *redis.Client, error) {
	u := cfg.URL
	scheme, _, ok := strings.Cut(u, "://")
	if !ok {
		return nil, errors.New("fleet: URL: want redis://, rediss://, redis+sentinel:// or rediss+sentinel://")
	}
	tlsOn := scheme == "rediss" || scheme == "rediss+sentinel"
	if cfg.TLS != nil && !tlsOn {
		return nil, errors.New("fleet: TLS settings given for a URL without TLS (use rediss://)")
	}
	sock := cfg.Timeout // socket timeouts; every call's ctx deadline bounds it too
	if cfg.WaitReplicas > 0 {
		sock += waitSlack
	}
	tune := func(o *redis.Options) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = cfg.Timeout, sock, sock, cfg.Timeout
		o.ContextTimeoutEnabled = true
		o.MaxRetries = 1 // one retry on a fresh connection after Redis restarted
		o.DialerRetries = 1
		o.Protocol = 2
		o.DisableIdentity = true
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	}
	switch scheme {
	case "redis", "rediss":
		opt, err := redis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("fleet: URL: %w", redact(err, u))
		}
		if tlsOn {
			opt.TLSConfig = tlsFor(cfg.TLS, opt.TLSConfig)
		}
		tune(opt)
		return func() *redis.Client { o := *opt; return redis.NewClient(&o) }, nil
	case "redis+sentinel", "rediss+sentinel":
		fo, err := parseSentinel(u)
		if err != nil {
			return nil, err
		}
		if tlsOn {
			fo.TLSConfig = tlsFor(cfg.TLS, &tls.Config{ServerName: fo.tlsHost, MinVersion: tls.VersionTLS12})
		}
		f := &fo.FailoverOptions
		f.DialTimeout, f.ReadTimeout, f.WriteTimeout, f.PoolTimeout = cfg.Timeout, sock, sock, cfg.Timeout
		f.ContextTimeoutEnabled, f.MaxRetries, f.DialerRetries, f.Protocol = true, 1, 1, 2
		f.DisableIdentity = true
		return func() *redis.Client { c := *f; return redis.NewFailoverClient(&c) }, nil
	}
	return nil, fmt.Errorf("fleet: URL scheme %q: want redis, rediss, redis+sentinel or rediss+sentinel", scheme)
}

func tlsFor(given, dflt *tls.Config) *tls.Config {
	if given == nil {
		return dflt
	}
	c := given.Clone()
	if c.ServerName == "" && dflt != nil {
		c.ServerName = dflt.ServerName
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// redact keeps a password in the URL out of an error.
func redact(err error, u string) error {
	if p, err2 := url.Parse(u); err2 == nil && p.User != nil {
		if pw, ok := p.User.Password(); ok && pw != "" {
			return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
		}
	}
	return err
}

type sentinelOptions struct {
	redis.FailoverOptions
	tlsHost string
}

// parseSentinel reads redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master[/db]
// [?sentinel_user=U&sentinel_password=P]. The user and password authenticate to the master and
// its replicas; sentinel_user and sentinel_password to the sentinels (default: none).
func parseSentinel(u string) (*sentinelOptions, error) {
	bad := func(what string) (*sentinelOptions, error) {
		return nil, fmt.Errorf("fleet: sentinel URL: %s (want redis+sentinel://[user:password@]host:port[,host:port...]/master[/db])", what)
	}
	_, rest, _ := strings.Cut(u, "://")
	auth, pathq := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		auth, pathq = rest[:i], rest[i:]
	}
	fo := &sentinelOptions{}
	if at := strings.LastIndexByte(auth, '@'); at >= 0 {
		user, pass, _ := strings.Cut(auth[:at], ":")
		var err1, err2 error
		fo.Username, err1 = url.PathUnescape(user)
		fo.Password, err2 = url.PathUnescape(pass)
		if err1 != nil || err2 != nil {
			return bad("bad escape in user or password")
		}
		auth = auth[at+1:]
	}
	for _, h := range strings.Split(auth, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), "26379"
		}
		if host == "" || strings.ContainsAny(host, "[]/@") {
			return bad(fmt.Sprintf("host %q", h))
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return bad(fmt.Sprintf("port in %q", h))
		}
		if fo.tlsHost == "" {
			fo.tlsHost = host
		}
		fo.SentinelAddrs = append(fo.SentinelAddrs, net.JoinHostPort(host, port))
	}
	pu, err := url.Parse("x://h" + pathq)
	if err != nil {
		return bad(err.Error())
	}
	parts := strings.Split(strings.Trim(pu.Path, "/"), "/")
	if parts[0] == "" || len(parts) > 2 {
		return bad("path")
	}
	fo.MasterName = parts[0]
	if len(parts) == 2 {
		if fo.DB, err = strconv.Atoi(parts[1]); err != nil || fo.DB < 0 {
			return bad("database number")
		}
	}
	for k, v := range pu.Query() {
		switch k {
		case "sentinel_user":
			fo.SentinelUsername = v[len(v)-1]
		case "sentinel_password":
			fo.SentinelPassword = v[len(v)-1]
		default:
			return bad(fmt.Sprintf("unknown option %q", k))
		}
	}
	return fo, nil
}

package differential

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-spa/sesame/internal/server"
)

// class is a verdict as both servers can express it.
type class string

const (
	granted        class = "granted"
	replay         class = "replay"
	tooOldOrNew    class = "too-old-or-new"
	username       class = "username"
	portDenied     class = "port-denied"
	sourceRequired class = "source-required"
	noStanza       class = "no-stanza-or-decode-failure"
	malformed      class = "malformed"
	natRefused     class = "nat-refused"
	commandRefused class = "command-refused"
	commandRun     class = "command-run"
)

// verdict is one server's answer to one packet. Allow, Ports and Timeout are set for granted
// only; Ports is sorted ("tcp/22,tcp/80"). A Timeout read from fwknopd's expiry time is an
// upper bound: the true timeout lies in [Timeout-Slack, Timeout]. Detail is what the server
// said, for reports.
type verdict struct {
	Class   class
	Allow   string
	Ports   string
	Timeout time.Duration
	Slack   time.Duration
	Detail  string
}

func (v verdict) String() string {
	switch {
	case v.Class == granted && v.Slack > 0:
		return fmt.Sprintf("granted %s %s %v..%v", v.Allow, v.Ports, v.Timeout-v.Slack, v.Timeout)
	case v.Class == granted:
		return fmt.Sprintf("granted %s %s %v", v.Allow, v.Ports, v.Timeout)
	}
	return string(v.Class)
}

// The one mapping table: fwknopd's per-stanza log details (substrings, fwknop 2.6.10) and
// sesame's reason= values, to classes.
var (
	fwknopdDetails = []struct {
		substr string
		class  class
	}{
		{"SPA data time difference is too great", tooOldOrNew},
		{"does not match required username", username},
		{"One or more requested protocol/ports was denied", portDenied},
		{"Got 0.0.0.0 when valid source IP was required", sourceRequired},
		{"requested NAT access, but is not enabled", natRefused},
		{"SPA Command messages are not allowed", commandRefused},
		{"Running command '", commandRun},
	}
	sesameReasons = map[server.Reason]class{
		server.Granted:          granted,
		server.Replay:           replay,
		server.TooOld:           tooOldOrNew,
		server.TooNew:           tooOldOrNew,
		server.UsernameMismatch: username,
		server.RestrictedPort:   portDenied,
		server.PortNotAllowed:   portDenied,
		server.NoPorts:          portDenied,
		server.SourceRequired:   sourceRequired,
		server.UnknownSource:    noStanza,
		server.StanzaExpired:    noStanza,
		server.WrongMode:        noStanza,
		server.BadHMAC:          noStanza,
		server.DecryptFailed:    noStanza,
		server.BadPlaintext:     noStanza,
		server.Malformed:        malformed,
		server.NATRefused:       natRefused,
		server.CommandRefused:   commandRefused,
		server.CommandAccepted:  commandRun,
	}
	// unmappedReasons cannot happen for these packets and configs: GnuPG, SESAME_* stanza
	// options, firewall and internal failures.
	unmappedReasons = []server.Reason{server.Throttled, server.NotSigned, server.BadSignature,
		server.SignerNotValid, server.SignerNotAllowed, server.SourceMismatch, server.BadAccess,
		server.FirewallError, server.InternalError, server.CommandBusy}
)

// reasonByName is sesameReasons keyed by the logged reason= text.
func reasonByName() map[string]server.Reason {
	m := map[string]server.Reason{}
	for _, r := range server.Reasons() {
		m[r.String()] = r
	}
	return m
}

// parseKV splits one slog text line (key=value pairs, values optionally Go-quoted) into a
// map. It returns an error for a pair without '=' or a bad quoted value.
func parseKV(line string) (map[string]string, error) {
	kv := map[string]string{}
	s := strings.TrimSpace(line)
	for s != "" {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsFunc(s[:eq], func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f }) {
			return nil, fmt.Errorf("no key=value at %q", s)
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			if val, err = strconv.Unquote(q); err != nil {
				return nil, fmt.Errorf("key %s: %w", key, err)
			}
			rest = rest[len(q):]
			if rest != "" && rest[0] != ' ' {
				return nil, fmt.Errorf("key %s: text after the quoted value", key)
			}
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			val, rest = rest[:end], rest[end:]
		}
		kv[key] = val
		s = strings.TrimLeft(rest, " ")
	}
	return kv, nil
}

// isSesameVerdict reports whether a log line is sesame's verdict on one packet.
func isSesameVerdict(line string) bool {
	return strings.Contains(line, `msg="access granted"`) || strings.Contains(line, `msg="SPA packet rejected"`) ||
		strings.Contains(line, `msg="command accepted"`)
}

// sesameVerdict reads one of sesame's verdict lines.
func sesameVerdict(line string) (verdict, error) {
	kv, err := parseKV(line)
	if err != nil {
		return verdict{}, fmt.Errorf("sesame log line %q: %w", line, err)
	}
	switch kv["msg"] {
	case "access granted":
		d, err := time.ParseDuration(kv["timeout"])
		if err != nil {
			return verdict{}, fmt.Errorf("sesame grant line %q: timeout: %w", line, err)
		}
		ports := strings.Split(kv["ports"], ",")
		slices.Sort(ports)
		return verdict{Class: granted, Allow: kv["allow"], Ports: strings.Join(ports, ","), Timeout: d,
			Detail: "stanza " + kv["stanza"]}, nil
	case "command accepted":
		return verdict{Class: commandRun, Detail: fmt.Sprintf("%s %q (stanza %s)", kv["kind"], kv["cmd"], kv["stanza"])}, nil
	case "SPA packet rejected":
		r, ok := reasonByName()[kv["reason"]]
		if !ok {
			return verdict{}, fmt.Errorf("sesame line %q: unknown reason %q", line, kv["reason"])
		}
		c, ok := sesameReasons[r]
		if !ok {
			return verdict{}, fmt.Errorf("sesame line %q: reason %q has no class", line, kv["reason"])
		}
		return verdict{Class: c, Detail: fmt.Sprintf("%s (stanza %s)", kv["reason"], kv["stanza"])}, nil
	}
	return verdict{}, fmt.Errorf("sesame line %q is not a verdict", line)
}

// reRuleLine is fwknopd's INPUT grant line: "Added access rule to FWKNOP_INPUT for ALLOW ->
// 0.0.0.0/0 PROTO/PORT[,PROTO/PORT...], expires at UNIX".
var reRuleLine = regexp.MustCompile(`^Added access rule to FWKNOP_INPUT for (\d+\.\d+\.\d+\.\d+) -> \S+ ((?:[a-z]+/\d+,)*[a-z]+/\d+), expires at (\d+)$`)

// fwknopdDatagram returns the lines fwknopd logged for the n-th datagram it received
// (1-based, UDP-server mode at -v -v): from its "Got UDP datagram" line up to the next one.
func fwknopdDatagram(log string, n int) []string {
	var out []string
	seen := 0
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "Got UDP datagram (") {
			seen++
		}
		if seen == n {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	return out
}

// fwknopdVerdict classifies the log lines of one datagram (fwknopdDatagram). The datagram was
// sent at sent and its lines were read at seen; fwknopd logs a grant's expiry in whole Unix
// seconds, so the timeout is known to lie between expiry-seen and expiry-sent (Slack).
// Several policy refusals (one per stanza) give the last one's class.
func fwknopdVerdict(lines []string, sent, seen time.Time) (verdict, error) {
	var g verdict
	ports := map[string]bool{}
	for _, l := range lines {
		m := reRuleLine.FindStringSubmatch(l)
		if m == nil {
			if strings.HasPrefix(l, "Added ") && strings.Contains(l, " rule to ") {
				return verdict{}, fmt.Errorf("fwknopd rule line %q: not an INPUT access rule", l)
			}
			continue
		}
		exp, _ := strconv.ParseInt(m[3], 10, 64)
		// One second before sent: fwknopd may take its time before sent is read (seen in CI:
		// a 60 s grant read as 59 s when a second boundary fell between the two).
		base := sent.Unix() - 1
		d := time.Duration(exp-base) * time.Second
		if g.Class == granted && (g.Allow != m[1] || g.Timeout != d) {
			return verdict{}, fmt.Errorf("fwknopd rules of one packet differ: %q after %v", l, g)
		}
		g = verdict{Class: granted, Allow: m[1], Timeout: d, Slack: time.Duration(seen.Unix()-base) * time.Second}
		for _, p := range strings.Split(m[2], ",") {
			ports[p] = true // fwknopd logs the whole port list once per port
		}
	}
	if g.Class == granted {
		g.Ports = strings.Join(slices.Sorted(maps.Keys(ports)), ",")
		return g, nil
	}
	found, detail := noStanza, "" // every matching stanza failed HMAC or decryption, or none matched
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Replay detected"):
			return verdict{Class: replay, Detail: l}, nil
		case strings.Contains(l, "preprocess_spa_data() returned error"),
			strings.HasPrefix(l, "Error initializing FKO context"):
			return verdict{Class: malformed, Detail: l}, nil
		}
		for _, d := range fwknopdDetails {
			if strings.Contains(l, d.substr) {
				found, detail = d.class, l
			}
		}
	}
	return verdict{Class: found, Detail: detail}, nil
}

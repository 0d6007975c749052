package differential

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sesame-spa/sesame/internal/server"
)

// TestReasonTable checks that every sesame reason has a class or is named as impossible here,
// so a new reason cannot slip through as an unknown verdict.
func TestReasonTable(t *testing.T) {
	for _, r := range server.Reasons() {
		_, mapped := sesameReasons[r]
		if mapped == slices.Contains(unmappedReasons, r) {
			t.Errorf("reason %q (%s): mapped %v, in unmappedReasons %v; want exactly one", r, r.Key(), mapped, !mapped)
		}
	}
}

func TestSesameVerdict(t *testing.T) {
	for _, tt := range []struct {
		line string
		want verdict
	}{
		{`time=2026-11-30T22:52:04.535Z level=INFO msg="access granted" src=10.99.0.2 stanza=1 allow=10.99.0.72 ports=tcp/80,tcp/22 timeout=30s user=root test=false`,
			grant("10.99.0.72", "tcp/22,tcp/80", 30*time.Second)},
		{`time=2026-11-30T22:52:04Z level=WARN msg="SPA packet rejected" src=10.99.0.2 reason="NAT access refused" stanza=1 detail="type 2: NAT access requested, but ENABLE_IPT_FORWARDING is not enabled"`,
			verdict{Class: natRefused}},
		{`time=2026-11-30T22:52:04Z level=WARN msg="SPA packet rejected" src=10.99.0.3 reason="HMAC mismatch" stanza=7 err="spa: HMAC \"x\" mismatch"`,
			verdict{Class: noStanza}},
		{`time=2026-11-30T22:52:04Z level=INFO msg="SPA packet rejected" src=10.99.0.2 reason="malformed packet" stanza=0`,
			verdict{Class: malformed}},
	} {
		got, err := sesameVerdict(tt.line)
		if err != nil || !match(got, tt.want) || (got.Class == granted && got.Timeout != tt.want.Timeout) {
			t.Errorf("sesameVerdict(%q) = %v, %v; want %v", tt.line, got, err, tt.want)
		}
	}
	for _, bad := range []string{
		`msg="SPA packet rejected" reason="no such reason"`,
		`msg="access granted" allow=10.0.0.1 ports=tcp/22 timeout=soon`,
		`msg="sesame server started"`,
		`msg="unterminated`,
	} {
		if v, err := sesameVerdict(bad); err == nil {
			t.Errorf("sesameVerdict(%q) = %v, want an error", bad, v)
		}
	}
}

func TestFwknopdVerdict(t *testing.T) {
	sent, seen := time.Unix(1796079214, 0), time.Unix(1796079215, 0)
	log := strings.Join([]string{
		"startup noise",
		"udp_server: Got UDP datagram (225 bytes) from: 10.99.0.2",
		"[10.99.0.2] (stanza #1) SPA Decode (res=0):",
		"Added access rule to FWKNOP_INPUT for 10.99.0.72 -> 0.0.0.0/0 tcp/22,tcp/80, expires at 1796079244",
		"Added access rule to FWKNOP_INPUT for 10.99.0.72 -> 0.0.0.0/0 tcp/22,tcp/80, expires at 1796079244",
		"udp_server: Got UDP datagram (8 bytes) from: 10.99.0.2",
		"[10.99.0.2] preprocess_spa_data() returned error 4096: 'x' for incoming packet.",
		"udp_server: Got UDP datagram (225 bytes) from: 10.99.0.2",
		"(stanza #1) SPA packet from 10.99.0.2 requested NAT access, but is not enabled/supported",
		"[10.99.0.2] (stanza #2) Error creating fko context: Args contain invalid data: FKO_ERROR_INVALID_DATA_HMAC_COMPAREFAIL",
		"udp_server: Got UDP datagram (225 bytes) from: 10.99.0.2",
		"[10.99.0.2] (stanza #2) Error creating fko context: Args contain invalid data: FKO_ERROR_INVALID_DATA_HMAC_COMPAREFAIL",
		"udp_server: Got UDP datagram (204 bytes) from: 10.99.0.3",
		"[10.99.0.3] Replay detected from source IP: 10.99.0.3, destination IP: 0.0.0.0",
	}, "\n")
	for n, want := range map[int]verdict{
		1: {Class: granted, Allow: "10.99.0.72", Ports: "tcp/22,tcp/80", Timeout: 31 * time.Second, Slack: 2 * time.Second}, // sent taken 1 s early
		2: {Class: malformed},
		3: {Class: natRefused},
		4: {Class: noStanza},
		5: {Class: replay},
		6: {Class: noStanza}, // no such datagram: nothing logged
	} {
		got, err := fwknopdVerdict(fwknopdDatagram(log, n), sent, seen)
		if err != nil || !match(got, want) || got.Timeout != want.Timeout || got.Slack != want.Slack {
			t.Errorf("datagram %d: %v, %v; want %v", n, got, err, want)
		}
	}
	if _, err := fwknopdVerdict([]string{"Added access rule to FWKNOP_PREROUTING for 10.0.0.1 -> x"}, sent, seen); err == nil {
		t.Error("a non-INPUT rule line was accepted")
	}
}

// TestDocsList checks that docs/migrating-from-fwknop.md's section lists exactly the
// intended differences of the test, by name, with both verdicts.
func TestDocsList(t *testing.T) {
	b, err := os.ReadFile("../../docs/migrating-from-fwknop.md")
	if err != nil {
		t.Fatal(err)
	}
	const heading = "## Intended differences (checked by internal/differential)"
	_, sec, ok := strings.Cut(string(b), heading+"\n")
	if !ok {
		t.Fatalf("docs/migrating-from-fwknop.md has no %q section", heading)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\|([^|]*)\\|([^|]*)\\|([^|]*)\\|")
	var names []string
	for _, m := range row.FindAllStringSubmatch(sec, -1) {
		names = append(names, m[1])
		i := slices.IndexFunc(intended, func(d difference) bool { return d.name == m[1] })
		if i < 0 {
			continue
		}
		d := intended[i]
		if !strings.Contains(m[3], string(d.fwknopd.Class)) || !strings.Contains(m[4], string(d.sesame.Class)) {
			t.Errorf("docs row %q: verdicts %q / %q, the test says %v / %v", m[1], m[3], m[4], d.fwknopd, d.sesame)
		}
	}
	var want []string
	for _, d := range intended {
		want = append(want, d.name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("docs list %q, the test's intended list is %q", names, want)
	}
}

func TestMatch(t *testing.T) {
	f := verdict{Class: granted, Allow: "10.0.0.1", Ports: "tcp/22", Timeout: 31 * time.Second, Slack: time.Second}
	for _, tt := range []struct {
		b    verdict
		want bool
	}{
		{grant("10.0.0.1", "tcp/22", 30*time.Second), true},
		{grant("10.0.0.1", "tcp/22", 31*time.Second), true},
		{grant("10.0.0.1", "tcp/22", 29*time.Second), false},
		{grant("10.0.0.1", "tcp/22", 32*time.Second), false},
		{grant("10.0.0.2", "tcp/22", 30*time.Second), false},
		{grant("10.0.0.1", "tcp/22,tcp/80", 30*time.Second), false},
		{verdict{Class: replay}, false},
	} {
		if got := match(f, tt.b); got != tt.want || match(tt.b, f) != tt.want {
			t.Errorf("match(%v, %v) = %v, want %v", f, tt.b, got, tt.want)
		}
	}
	if !match(verdict{Class: replay, Detail: "a"}, verdict{Class: replay}) {
		t.Error("two replays do not match")
	}
}

func TestParseKV(t *testing.T) {
	kv, err := parseKV(`a=1 b="two words" c="q\"uote" d=`)
	if err != nil || kv["a"] != "1" || kv["b"] != "two words" || kv["c"] != `q"uote` || kv["d"] != "" || len(kv) != 4 {
		t.Errorf("parseKV = %q, %v", kv, err)
	}
	for _, bad := range []string{`novalue`, `=x`, `a="x"y`, `a="x`, `a b=1`} {
		if kv, err := parseKV(bad); err == nil {
			t.Errorf("parseKV(%q) = %q, want an error", bad, kv)
		}
	}
}

// FuzzParseKV checks that parseKV does not panic and that what it parses survives being
// written back (keys sorted, values quoted) and parsed again.
func FuzzParseKV(f *testing.F) {
	f.Add(`time=2026-11-30T22:52:04Z level=INFO msg="access granted" src=10.99.0.2 ports=tcp/22`)
	f.Add(`a="\x00\"" b=`)
	f.Fuzz(func(t *testing.T, line string) {
		kv, err := parseKV(line)
		if err != nil {
			return
		}
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(kv)) {
			parts = append(parts, k+"="+strconv.Quote(kv[k]))
		}
		again, err := parseKV(strings.Join(parts, " "))
		if err != nil || len(again) != len(kv) {
			t.Fatalf("round trip of %q: %q, %v", kv, again, err)
		}
		for k, v := range kv {
			if again[k] != v {
				t.Fatalf("round trip of %q: key %q = %q", kv, k, again[k])
			}
		}
		sesameVerdict(line) // must not panic either
	})
}

// FuzzFwknopdVerdict checks that the fwknopd log classifier does not panic and that a grant
// always names an allow IP and ports.
func FuzzFwknopdVerdict(f *testing.F) {
	f.Add("udp_server: Got UDP datagram (1 bytes) from: x\nAdded access rule to FWKNOP_INPUT for a -> b tcp/1,, expires at 99999999999999999999", 1)
	f.Add("Got UDP datagram (\nAdded access rule to FWKNOP_INPUT for 0 -> 0 ,, expires at 0", 1)
	f.Add("Replay detected\nGot UDP datagram (\nOne or more requested protocol/ports was denied", 2)
	f.Fuzz(func(t *testing.T, log string, n int) {
		v, err := fwknopdVerdict(fwknopdDatagram(log, n), time.Unix(0, 0), time.Unix(1, 0))
		if err == nil && v.Class == granted && (v.Allow == "" || v.Ports == "") {
			t.Fatalf("grant without allow IP or ports: %+v", v)
		}
	})
}

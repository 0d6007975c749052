package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// fakes are the daemons' numbers as the tests move them.
type fakes struct {
	mu      sync.Mutex
	packets map[string]uint64
	made    FamilyCounter
	live    Families
	replay  int
	capture CaptureStats
	capErr  error
	heals   int
	healMs  float64
	fleet   FleetStatus
	conns   ConnStats
	md5     MD5Counters
	md5Err  error
}

func newFakes() *fakes {
	return &fakes{packets: map[string]uint64{"granted": 0, "bad_hmac": 0, "replay": 0}}
}

func (f *fakes) lock() func() { f.mu.Lock(); return f.mu.Unlock }

func (f *fakes) server() ServerSources {
	return ServerSources{
		Transport: "udp",
		Packets: func() map[string]uint64 {
			defer f.lock()()
			m := map[string]uint64{}
			for k, v := range f.packets {
				m[k] = v
			}
			return m
		},
		GrantsMade:    f.made.Load,
		LiveGrants:    func() Families { defer f.lock()(); return f.live },
		ReplayEntries: func() int { defer f.lock()(); return f.replay },
		Capture:       func() (CaptureStats, error) { defer f.lock()(); return f.capture, f.capErr },
		Heals:         func() (int, float64) { defer f.lock()(); return f.heals, f.healMs },
		Fleet:         func() FleetStatus { defer f.lock()(); return f.fleet },
	}
}

func (f *fakes) shield() ShieldSources {
	return ShieldSources{
		Conns:    func() ConnStats { defer f.lock()(); return f.conns },
		MaxConns: 64,
		MD5:      func() (MD5Counters, error) { defer f.lock()(); return f.md5, f.md5Err },
	}
}

// TestLint runs promlint over every metric of both registries, the Go and process
// collectors' included, and checks that every sesame metric is there and named sesame_*.
func TestLint(t *testing.T) {
	f := newFakes()
	srv := NewServer(f.server())
	srv.ObserveHandling(true, time.Millisecond)
	for name, reg := range map[string]*prometheus.Registry{"server": srv.Registry, "shield": NewShield(f.shield())} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("%s: gather: %v", name, err)
		}
		problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
		if err != nil {
			t.Fatalf("%s: lint: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("%s: promlint: %s: %s", name, p.Metric, p.Text)
		}
		own := 0
		for _, mf := range mfs {
			n := mf.GetName()
			if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") {
				continue
			}
			own++
			if !strings.HasPrefix(n, "sesame_") {
				t.Errorf("%s: metric %s is not named sesame_*", name, n)
			}
			if mf.GetHelp() == "" {
				t.Errorf("%s: metric %s has no help", name, n)
			}
		}
		want := map[string]int{"server": 16, "shield": 9}[name]
		if own != want {
			t.Errorf("%s: %d sesame metrics, want %d", name, own, want)
		}
	}
}

// TestLintCatches is TestLint's control: promlint does flag a badly named counter.
func TestLintCatches(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_grants_made", Help: "x"}, func() float64 { return 1 }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) == 0 {
		t.Errorf("promlint passed a counter without _total: %v, %v", problems, err)
	}
}

// TestNilSources checks that sources left nil leave their metrics out.
func TestNilSources(t *testing.T) {
	for name, reg := range map[string]*prometheus.Registry{"server": NewServer(ServerSources{}).Registry, "shield": NewShield(ShieldSources{})} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if n := mf.GetName(); strings.HasPrefix(n, "sesame_") && n != "sesame_build_info" && n != "sesame_spa_packet_handling_seconds" {
				t.Errorf("%s: %s present without a source", name, n)
			}
		}
	}
	var s *Server
	s.ObserveHandling(true, time.Second) // no panic
}

// scrape fetches url and returns its samples, keyed by metric name and labels in the text
// format's order ("sesame_grants_live{family=\"ipv4\"}"), histogram buckets left out.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"=\""+lp.GetValue()+"\"")
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[key+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func start(t *testing.T, g prometheus.Gatherer, log *slog.Logger) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := Start(ctx, "127.0.0.1:0", g, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := e.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
	})
	return "http://" + e.Addr().String()
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing from the scrape", k)
		} else if g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// TestServeServer scrapes a served server registry fed by fakes, moves every number and
// checks the next scrape shows it.
func TestServeServer(t *testing.T) {
	f := newFakes()
	m := NewServer(f.server())
	url := start(t, m.Registry, slog.New(slog.NewTextHandler(io.Discard, nil))) + "/metrics"

	expect(t, scrape(t, url), map[string]float64{
		`sesame_spa_packets_total{reason="bad_hmac",transport="udp",verdict="rejected"}`:       0,
		`sesame_spa_packets_total{reason="granted",transport="udp",verdict="granted"}`:         0,
		`sesame_grants_total{family="ipv4"}`:                                                   0,
		`sesame_grants_live{family="ipv6"}`:                                                    0,
		`sesame_capture_packets_dropped_total{transport="udp"}`:                                0,
		`sesame_ruleset_heals_total`:                                                           0,
		`sesame_fleet_connected`:                                                               0,
		`sesame_spa_packet_handling_seconds{verdict="granted"}_count`:                          0,
		`sesame_spa_packet_handling_seconds{verdict="rejected"}_count`:                         0,
		`sesame_build_info{goversion="` + runtime.Version() + `",revision="",version="devel"}`: 1,
	})

	f.mu.Lock()
	f.packets["granted"] = 3
	f.packets["bad_hmac"] = 7
	f.live = Families{IPv4: 2, IPv6: 1}
	f.replay = 10
	f.capture = CaptureStats{Received: 12, Dropped: 1, Rejected: 2}
	f.heals, f.healMs = 2, 37
	f.fleet = FleetStatus{Connected: true, Published: 3, Applied: 4, Refused: 5, LocalFallbacks: 6}
	f.mu.Unlock()
	f.made.Add(netip.MustParseAddr("::ffff:192.0.2.1"), 2)
	f.made.Add(netip.MustParseAddr("2001:db8::1"), 1)
	m.ObserveHandling(true, 2*time.Millisecond)
	m.ObserveHandling(false, 30*time.Microsecond)
	m.ObserveHandling(false, 30*time.Microsecond)

	expect(t, scrape(t, url), map[string]float64{
		`sesame_spa_packets_total{reason="bad_hmac",transport="udp",verdict="rejected"}`: 7,
		`sesame_spa_packets_total{reason="granted",transport="udp",verdict="granted"}`:   3,
		`sesame_spa_packets_total{reason="replay",transport="udp",verdict="rejected"}`:   0,
		`sesame_grants_total{family="ipv4"}`:                                             2,
		`sesame_grants_total{family="ipv6"}`:                                             1,
		`sesame_grants_live{family="ipv4"}`:                                              2,
		`sesame_grants_live{family="ipv6"}`:                                              1,
		`sesame_replay_cache_entries`:                                                    10,
		`sesame_capture_packets_received_total{transport="udp"}`:                         12,
		`sesame_capture_packets_dropped_total{transport="udp"}`:                          1,
		`sesame_capture_packets_rejected_total{transport="udp"}`:                         2,
		`sesame_ruleset_heals_total`:                                                     2,
		`sesame_ruleset_last_heal_duration_seconds`:                                      0.037,
		`sesame_fleet_connected`:                                                         1,
		`sesame_fleet_messages_published_total`:                                          3,
		`sesame_fleet_messages_applied_total`:                                            4,
		`sesame_fleet_messages_refused_total`:                                            5,
		`sesame_fleet_replay_local_fallbacks_total`:                                      6,
		`sesame_spa_packet_handling_seconds{verdict="granted"}_count`:                    1,
		`sesame_spa_packet_handling_seconds{verdict="granted"}_sum`:                      0.002,
		`sesame_spa_packet_handling_seconds{verdict="rejected"}_count`:                   2,
	})
}

// TestServeSourceError checks that a failing source costs its own metrics only: the rest
// are served, and the error is logged.
func TestServeSourceError(t *testing.T) {
	f := newFakes()
	f.capErr = errors.New("capture stats: socket closed")
	f.md5Err = errors.New("netstat: no TcpExt values")
	var logBuf syncBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	for name, reg := range map[string]prometheus.Gatherer{"server": NewServer(f.server()).Registry, "shield": NewShield(f.shield())} {
		got := scrape(t, start(t, reg, log)+"/metrics")
		for k := range got {
			if strings.HasPrefix(k, "sesame_capture_") || strings.HasPrefix(k, "sesame_tcpmd5_") {
				t.Errorf("%s: %s served although its source failed", name, k)
			}
		}
		if _, ok := got["sesame_build_info"+"{goversion=\""+runtime.Version()+"\",revision=\"\",version=\"devel\"}"]; !ok {
			t.Errorf("%s: the other metrics were not served: %v", name, got)
		}
	}
	for _, want := range []string{"socket closed", "no TcpExt values"} {
		if !strings.Contains(logBuf.String(), want) {
			t.Errorf("log does not mention %q:\n%s", want, logBuf.String())
		}
	}
}

func TestServeShield(t *testing.T) {
	f := newFakes()
	url := start(t, NewShield(f.shield()), slog.New(slog.NewTextHandler(io.Discard, nil))) + "/metrics"
	expect(t, scrape(t, url), map[string]float64{
		`sesame_shield_connections_active`:                                    0,
		`sesame_shield_connections_max`:                                       64,
		`sesame_tcpmd5_dropped_segments_total{reason="wrong_signature"}`:      0,
		`sesame_tcpmd5_dropped_segments_total{reason="no_signature"}`:         0,
		`sesame_tcpmd5_dropped_segments_total{reason="unexpected_signature"}`: 0,
	})
	f.mu.Lock()
	f.conns = ConnStats{Active: 2, Peak: 5, Accepted: 9, Refused: 1, Relayed: 7, Failed: 1}
	f.md5 = MD5Counters{NotFound: 4, Failure: 3, Unexpected: 1}
	f.mu.Unlock()
	expect(t, scrape(t, url), map[string]float64{
		`sesame_shield_connections_active`:                                    2,
		`sesame_shield_connections_peak`:                                      5,
		`sesame_shield_connections_accepted_total`:                            9,
		`sesame_shield_connections_refused_total`:                             1,
		`sesame_shield_connections_relayed_total`:                             7,
		`sesame_shield_connections_failed_total`:                              1,
		`sesame_tcpmd5_dropped_segments_total{reason="no_signature"}`:         4,
		`sesame_tcpmd5_dropped_segments_total{reason="wrong_signature"}`:      3,
		`sesame_tcpmd5_dropped_segments_total{reason="unexpected_signature"}`: 1,
	})
}

// TestServeOnlyMetrics checks the endpoint serves /metrics to GET and HEAD only, stops when
// its context ends, and reports a taken port at Start.
func TestServeOnlyMetrics(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	e, err := Start(ctx, "127.0.0.1:0", NewShield(ShieldSources{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + e.Addr().String()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/metrics", 200}, {"HEAD", "/metrics", 200}, {"GET", "/", 404}, {"GET", "/metrics/x", 404},
		{"GET", "/debug/pprof/", 404}, {"POST", "/metrics", 405},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if _, err := Start(ctx, e.Addr().String(), NewShield(ShieldSources{}), slog.Default()); err == nil {
		t.Error("Start on a taken port succeeded")
	}
	cancel()
	if err := e.Wait(); err != nil {
		t.Errorf("Wait after cancel: %v", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("endpoint still answers after its context ended")
	}
	if err := Serve(context.Background(), "127.0.0.1:notaport", NewShield(ShieldSources{}), slog.Default()); err == nil {
		t.Error("Serve on a bad address succeeded")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

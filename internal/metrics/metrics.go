// Package metrics exposes sesame's counters to Prometheus: the SPA server's (NewServer) and
// the TCP-MD5 shield's (NewShield), each in a registry of its own that Start serves at
// /metrics over HTTP.
//
// The package reads the numbers, it does not keep them: the daemons already count, so each
// source is a function the registry calls at every scrape (Sources fields left nil leave
// their metrics out). It imports none of the daemon packages; thin adapters in the
// commands turn server.Stats, capture.SourceStats, keeper.Heals, fleet.Status,
// shield.ConnStats and shield.Counters into the small types here. The one number the
// package keeps itself is the packet handling latency, which the server reports with
// Server.ObserveHandling.
//
// Every sesame metric is named sesame_*, and a test lints them all with promlint. The Go
// runtime (go_*) and process (process_*) collectors are registered too.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sesame-spa/sesame/internal/version"
)

const namespace = "sesame"

// Families are counts split by address family.
type Families struct {
	IPv4, IPv6 uint64
}

// newRegistry returns a registry with the Go, process and build-info collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	v := version.Get()
	ver := v.Version
	if ver == "" {
		ver = "devel"
	}
	rev := v.Revision
	if v.Modified && rev != "" {
		rev += "+modified"
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace:   namespace,
		Name:        "build_info",
		Help:        "Always 1; the labels say what the binary was built from (module version, VCS revision, Go version).",
		ConstLabels: prometheus.Labels{"version": ver, "revision": rev, "goversion": v.Go},
	}, func() float64 { return 1 }))
	return reg
}

// metric is one sesame metric read at scrape time: its description and how to read it.
type metric struct {
	desc    *prometheus.Desc
	collect func(d *prometheus.Desc, ch chan<- prometheus.Metric)
}

// funcCollector collects a fixed list of metrics, calling their sources at each scrape.
type funcCollector []metric

func (c funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c {
		ch <- m.desc
	}
}

func (c funcCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c {
		m.collect(m.desc, ch)
	}
}

func desc(name, help string, labels []string, constLabels prometheus.Labels) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, constLabels)
}

// counter is a metric of one unlabelled counter read from f.
func counter(name, help string, cl prometheus.Labels, f func() uint64) metric {
	return metric{desc(name, help, nil, cl), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(f()))
	}}
}

// gauge is a metric of one unlabelled gauge read from f.
func gauge(name, help string, cl prometheus.Labels, f func() float64) metric {
	return metric{desc(name, help, nil, cl), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, f())
	}}
}

// byFamily is a metric with a family label ("ipv4", "ipv6") read from f.
func byFamily(name, help string, t prometheus.ValueType, f func() Families) metric {
	return metric{desc(name, help, []string{"family"}, nil), func(d *prometheus.Desc, ch chan<- prometheus.Metric) {
		v := f()
		ch <- prometheus.MustNewConstMetric(d, t, float64(v.IPv4), "ipv4")
		ch <- prometheus.MustNewConstMetric(d, t, float64(v.IPv6), "ipv6")
	}}
}

package embedded

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// The gateway's metrics. The calls and triggers are counted in atomics
// on the hot path (gateway.go, dispatch.Metrics); this collector reads
// them when scraped, so a call takes no lock for its metrics.
var (
	descCalls = prometheus.NewDesc("ferry_gateway_calls_total",
		"Calls through the gateway, the triggers' attempts included, by the status class of the answer.", []string{"env", "function", "code"}, nil)
	descFailures = prometheus.NewDesc("ferry_gateway_failures_total",
		"Calls answered 5xx: the function failed, timed out (504) or could not start (503).", []string{"env", "function"}, nil)
	descDuration = prometheus.NewDesc("ferry_gateway_duration_seconds",
		"Time from a call's arrival to the end of its answer.", []string{"env", "function"}, nil)
	descColdStarts = prometheus.NewDesc("ferry_gateway_cold_starts_total",
		"Calls that had to start an instance of a function scaled to zero.", []string{"env", "function"}, nil)
	descInFlight = prometheus.NewDesc("ferry_gateway_in_flight",
		"Calls being served now, those answered 504 whose handler still runs included.", []string{"env", "function"}, nil)
	descOverdue = prometheus.NewDesc("ferry_gateway_overdue",
		"Calls answered 504 whose handler still runs; each keeps its slot in ferry_gateway_in_flight until the function answers it or its process ends.", []string{"env", "function"}, nil)
	descRestarts = prometheus.NewDesc("ferry_gateway_restarts_total",
		"Restarts of a function whose calls still running past their timeout filled its concurrency.", []string{"env", "function"}, nil)
)

// gatewayCollector collects the gateway's call and trigger metrics.
type gatewayCollector struct{ g *gateway }

var _ prometheus.Collector = gatewayCollector{}

// Collector collects the metrics the gateway serves at /_ferry/metrics
// (calls by function, triggers' deliveries), for a registry of the
// caller's: ferry serve adds them to its own /metrics.
func (h *Host) Collector() prometheus.Collector { return gatewayCollector{h.gw} }

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descFailures, descDuration, descColdStarts, descInFlight, descOverdue, descRestarts} {
		ch <- d
	}
	c.g.triggerStats.Describe(ch)
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	c.g.mu.Lock()
	var routes []*routeStats
	for _, fns := range c.g.stats {
		for _, st := range fns {
			routes = append(routes, st)
		}
	}
	c.g.mu.Unlock()
	for _, st := range routes {
		env, fn := st.env, st.function
		for class := range st.calls {
			// A class with no calls has no sample, so 1xx…9xx do not
			// all show.
			if n := st.calls[class].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(n), env, fn, strconv.Itoa(class)+"xx")
			}
		}
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(st.failures.Load()), env, fn)
		// why: the count is the sum of the buckets read here, so +Inf and
		// _count agree even while calls are counted.
		buckets := make(map[float64]uint64, len(gatewayBuckets))
		var cumulative uint64
		for i, le := range gatewayBuckets {
			cumulative += st.buckets[i].Load()
			buckets[le] = cumulative
		}
		cumulative += st.buckets[len(gatewayBuckets)].Load()
		ch <- prometheus.MustNewConstHistogram(descDuration, cumulative, float64(st.sumNs.Load())/1e9, buckets, env, fn)
		ch <- prometheus.MustNewConstMetric(descColdStarts, prometheus.CounterValue, float64(st.cold.Load()), env, fn)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(max(st.inFlight.Load(), 0)), env, fn)
		ch <- prometheus.MustNewConstMetric(descOverdue, prometheus.GaugeValue, float64(max(st.overdue.Load(), 0)), env, fn)
		ch <- prometheus.MustNewConstMetric(descRestarts, prometheus.CounterValue, float64(st.restarts.Load()), env, fn)
	}

	c.g.triggerStats.Collect(ch)
}

// serveMetrics writes every environment's gateway metrics in the
// Prometheus text format; the registry sorts them by name and labels.
func (g *gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "the metrics answer GET and HEAD only")
		return
	}
	families, err := g.metrics.Gather()
	if err != nil {
		writeError(w, http.StatusInternalServerError, "gathering the metrics: "+err.Error())
		return
	}
	// why: the plain text format, always, as this endpoint has served
	// from the start; promhttp would add a negotiated escaping parameter.
	format := expfmt.NewFormat(expfmt.TypeTextPlain)
	w.Header().Set("Content-Type", string(format))
	if r.Method == http.MethodHead {
		return
	}
	enc := expfmt.NewEncoder(w, format)
	for _, f := range families {
		if err := enc.Encode(f); err != nil {
			return // the client left
		}
	}
}

// newGatewayRegistry is the registry /_ferry/metrics serves: the gateway's
// own metrics only, as ferry run has no other.
func newGatewayRegistry(g *gateway) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(gatewayCollector{g})
	return reg
}

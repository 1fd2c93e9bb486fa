package server

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/pprof"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/httpstatus"
	"github.com/ferrycd/ferry/store"
)

// ferry serve's own metrics, at /metrics on the API address. Figures the
// store or a part holds (runs by status, the queue, the functions'
// processes) are read when scraped, so they say what is true now, after a
// restart too; only what happens and is not kept (a fetch, a step's time,
// a webhook, a failed write) is counted as it happens.

// metricsScrapeTimeout bounds the store reads of one scrape: Prometheus
// gives a scrape 10 s by default.
const metricsScrapeTimeout = 5 * time.Second

// stepBuckets are the upper bounds of ferry_step_duration_seconds: a
// checkout takes milliseconds, a cold build minutes.
var stepBuckets = []float64{.01, .05, .1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// fetchBuckets are the upper bounds of ferry_fetch_duration_seconds: a
// fetch with nothing new takes milliseconds, a first clone seconds, a hung
// server its whole timeout.
var fetchBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// metricsStore is what the metrics read of the store; store.SQLite has it.
type metricsStore interface {
	ListSources(ctx context.Context) ([]store.Source, error)
	CountRuns(ctx context.Context) (map[store.RunStatus]int, error)
	CountPromotions(ctx context.Context) (map[string]int, error)
	WriteErrors() map[string]uint64
}

// metricsConfig is what ferry serve's metrics read when scraped.
type metricsConfig struct {
	Store metricsStore
	// Queued returns the runs waiting per source (nil: none told).
	Queued func() map[string]int
	// Environments returns the environments that exist now (previews
	// come and go), and Status tells what each one's functions do.
	Environments func() []string
	Status       func(ctx context.Context, env string) (*environments.Status, error)
	// Gateway collects the gateway's series (nil: none).
	Gateway prometheus.Collector
	// Log hears a scrape that could not read everything.
	Log func(format string, args ...any)
}

// serveMetrics is ferry serve's registry and the metrics counted as
// things happen.
type serveMetrics struct {
	reg      *prometheus.Registry
	steps    *prometheus.HistogramVec
	fetches  *prometheus.HistogramVec
	failures *prometheus.CounterVec
	webhooks *prometheus.CounterVec
	log      func(format string, args ...any)
}

func newServeMetrics(cfg metricsConfig) *serveMetrics {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	m := &serveMetrics{
		// why: a registry of ferry serve's own, not the global default, so
		// that no library registers series ferry does not document.
		reg: prometheus.NewRegistry(),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_step_duration_seconds",
			Help:    "Time a pipeline step took, by step and result (succeeded or failed).",
			Buckets: stepBuckets,
		}, []string{"step", "result"}),
		fetches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ferry_fetch_duration_seconds",
			Help:    "Time a fetch of a source's branch took, failed ones included.",
			Buckets: fetchBuckets,
		}, []string{"source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_fetch_failures_total",
			Help: "Fetches of a source that failed.",
		}, []string{"source"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_webhook_deliveries_total",
			Help: "Webhook deliveries, by direction (in: received) and result (accepted, ignored, refused, failed).",
		}, []string{"direction", "result"}),
		log: cfg.Log,
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.steps, m.fetches, m.failures, m.webhooks,
		&stateCollector{cfg: cfg},
	)
	if cfg.Gateway != nil {
		m.reg.MustRegister(cfg.Gateway)
	}
	return m
}

// fetched is the watcher's OnFetch.
func (m *serveMetrics) fetched(source string, took time.Duration, err error) {
	m.fetches.WithLabelValues(source).Observe(took.Seconds())
	if err != nil {
		m.failures.WithLabelValues(source).Inc()
	} else {
		// why: the series exists from the first fetch, so a rate over it
		// reads 0 rather than nothing before the first failure.
		m.failures.WithLabelValues(source)
	}
}

// timeSteps returns st, which times every step the pipeline records as
// finished in ferry_step_duration_seconds.
func (m *serveMetrics) timeSteps(st store.Store) store.Store {
	return stepTimer{Store: st, m: m}
}

type stepTimer struct {
	store.Store
	m *serveMetrics
}

func (s stepTimer) UpdateStep(ctx context.Context, step store.Step) error {
	if err := s.Store.UpdateStep(ctx, step); err != nil {
		return err
	}
	if (step.Status == store.StatusSucceeded || step.Status == store.StatusFailed) && !step.Started.IsZero() && step.Ended.After(step.Started) {
		s.m.steps.WithLabelValues(step.Name, string(step.Status)).Observe(step.Ended.Sub(step.Started).Seconds())
	}
	return nil
}

// countWebhooks counts the deliveries h answers, by their answer.
func (m *serveMetrics) countWebhooks(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := httpstatus.New(w)
		h.ServeHTTP(&sw, r)
		m.webhooks.WithLabelValues("in", webhookResult(sw.Status())).Inc()
	})
}

// webhookResult names a receiver's answer: 202 synced, 200 nothing to do
// (another branch, a ping, a duplicate), 4xx refused, 5xx failed (the
// sender retries).
func webhookResult(code int) string {
	switch {
	case code == http.StatusAccepted:
		return "accepted"
	case code == 0 || code < 300:
		return "ignored"
	case code < 500:
		return "refused"
	}
	return "failed"
}

// route serves /metrics to any token (a viewer's is enough: a scraper
// reads, as a viewer does) and the profiler at /debug/pprof/ to admin
// tokens only, as a profile shows the heap, secrets included.
func (m *serveMetrics) route(mux *http.ServeMux, toks *tokens) {
	metrics := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// why: one figure that cannot be read (the store busy past the
		// timeout) must not hide all the others.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{m.log},
	})
	mux.Handle("GET /metrics", withRole(toks, RoleViewer, metrics))
	mux.Handle("GET /debug/pprof/", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/cmdline", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Cmdline)))
	mux.Handle("GET /debug/pprof/profile", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/symbol", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("POST /debug/pprof/symbol", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Symbol)))
	mux.Handle("GET /debug/pprof/trace", withRole(toks, RoleAdmin, http.HandlerFunc(pprof.Trace)))
}

// promLogger hands promhttp's errors to ferry's log.
type promLogger struct {
	log func(format string, args ...any)
}

func (l promLogger) Println(v ...any) { l.log("metrics: %s", fmt.Sprint(v...)) }

// stateCollector reads, when scraped, the figures ferry keeps elsewhere.
type stateCollector struct{ cfg metricsConfig }

var (
	descRuns = prometheus.NewDesc("ferry_runs",
		"Pipeline runs the store holds, by status.", []string{"status"}, nil)
	descQueue = prometheus.NewDesc("ferry_run_queue_depth",
		"Runs waiting to start, by source.", []string{"source"}, nil)
	descPromotions = prometheus.NewDesc("ferry_promotions",
		"Promotions the store holds, by status.", []string{"status"}, nil)
	descWriteErrors = prometheus.NewDesc("ferry_store_write_errors_total",
		"Writes the store failed (a full disk, an I/O error, a lock held too long), by the store operation.", []string{"operation"}, nil)
	descProcesses = prometheus.NewDesc("ferry_function_processes",
		"Functions of each environment's live release, by the state of their process.", []string{"env", "state"}, nil)
)

// runStatuses and processStates always have a sample, 0 when none is in
// them, so that a chart of each starts at ferry's start.
var (
	runStatuses   = []store.RunStatus{store.StatusQueued, store.StatusRunning, store.StatusSucceeded, store.StatusFailed, store.StatusSuperseded}
	processStates = []string{"starting", "running", "restarting", "idle", "stopped"}
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRuns, descQueue, descPromotions, descWriteErrors, descProcesses} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsScrapeTimeout)
	defer cancel()
	st := c.cfg.Store

	if runs, err := st.CountRuns(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descRuns, err)
	} else {
		for _, s := range runStatuses {
			ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(runs[s]), string(s))
		}
		for s, n := range runs {
			if !slices.Contains(runStatuses, s) {
				ch <- prometheus.MustNewConstMetric(descRuns, prometheus.GaugeValue, float64(n), string(s))
			}
		}
	}

	if c.cfg.Queued != nil {
		queued := c.cfg.Queued()
		if sources, err := st.ListSources(ctx); err == nil {
			for _, s := range sources {
				if _, ok := queued[s.Name]; !ok {
					queued[s.Name] = 0
				}
			}
		}
		for source, n := range queued {
			ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(n), source)
		}
	}

	if proms, err := st.CountPromotions(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(descPromotions, err)
	} else {
		for _, s := range slices.Sorted(maps.Keys(proms)) {
			ch <- prometheus.MustNewConstMetric(descPromotions, prometheus.GaugeValue, float64(proms[s]), s)
		}
	}

	for op, n := range st.WriteErrors() {
		ch <- prometheus.MustNewConstMetric(descWriteErrors, prometheus.CounterValue, float64(n), op)
	}

	if c.cfg.Status != nil && c.cfg.Environments != nil {
		for _, env := range c.cfg.Environments() {
			s, err := c.cfg.Status(ctx, env)
			if err != nil {
				ch <- prometheus.NewInvalidMetric(descProcesses, err)
				continue
			}
			count := map[string]int{}
			for _, f := range s.Functions {
				count[f.State]++
			}
			for _, state := range processStates {
				ch <- prometheus.MustNewConstMetric(descProcesses, prometheus.GaugeValue, float64(count[state]), env, state)
				delete(count, state)
			}
			for state, n := range count {
				ch <- prometheus.MustNewConstMetric(descProcesses, prometheus.GaugeValue, float64(n), env, state)
			}
		}
	}
}

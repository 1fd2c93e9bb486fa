package dispatch

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrycd/ferry/manifests"
)

// Kinds of trigger, as the kind label of the trigger metrics names them.
const (
	KindCron  = "cron"
	KindNATS  = "nats"
	KindKafka = "kafka"
	KindHTTP  = "http"
)

// Metrics counts what every trigger of a host did. Counters are made on a
// trigger's first apply and kept across the releases that have it, so
// they never go back while it lives; those of a trigger a release drops,
// and an environment's when it is deleted, are dropped too, so neither a
// trigger renamed at each commit nor previews make the series pile up.
// The embedded gateway counts its HTTPTriggers' calls here too, so one
// collector serves every kind.
type Metrics struct {
	mu    sync.Mutex
	byKey map[TriggerKey]*Counters
}

// TriggerKey names one trigger of one environment.
type TriggerKey struct{ Env, Kind, Name string }

// Counters are one trigger's counters. Only atomics: a delivery takes no
// lock.
type Counters struct {
	key TriggerKey

	// Ticks: a cron schedule fired (cron only).
	Ticks atomic.Uint64
	// Deliveries: an event handed to one function, counted once
	// whatever its retries (for http: a call).
	Deliveries atomic.Uint64
	// Failures: a delivery that still failed after its last attempt (for
	// http: a call answered 5xx).
	Failures atomic.Uint64
	// Retries: an attempt after the first of a delivery.
	Retries atomic.Uint64
}

// NewMetrics returns counters of no trigger.
func NewMetrics() *Metrics {
	return &Metrics{byKey: map[TriggerKey]*Counters{}}
}

// Counters returns the counters of env's trigger of kind and name, made
// on first use.
func (m *Metrics) Counters(env, kind, name string) *Counters {
	k := TriggerKey{env, kind, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byKey[k]
	if c == nil {
		c = &Counters{key: k}
		m.byKey[k] = c
	}
	return c
}

// Forget drops env's counters: the environment is gone.
func (m *Metrics) Forget(env string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.byKey {
		if k.Env == env {
			delete(m.byKey, k)
		}
	}
}

// KeepOnly drops env's counters of the triggers live does not have: a
// release without them went live.
func (m *Metrics) KeepOnly(env string, live map[TriggerKey]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.byKey {
		if k.Env == env && !live[k] {
			delete(m.byKey, k)
		}
	}
}

// LiveTriggers are the keys of set's triggers in env.
func LiveTriggers(env string, set *manifests.Set) map[TriggerKey]bool {
	keys := map[TriggerKey]bool{}
	for _, tr := range set.HTTPTriggers {
		keys[TriggerKey{env, KindHTTP, tr.Name}] = true
	}
	for _, tr := range set.CronTriggers {
		keys[TriggerKey{env, KindCron, tr.Name}] = true
	}
	for _, tr := range set.NATSTriggers {
		keys[TriggerKey{env, KindNATS, tr.Name}] = true
	}
	for _, tr := range set.KafkaTriggers {
		keys[TriggerKey{env, KindKafka, tr.Name}] = true
	}
	return keys
}

// triggerKind splits a dispatch plan's name ("CronTrigger nightly") into
// the kind label and the trigger's name.
func triggerKind(planName string) (kind, name string) {
	k, name, _ := strings.Cut(planName, " ")
	switch k {
	case "CronTrigger":
		return KindCron, name
	case "NATSTrigger":
		return KindNATS, name
	case "KafkaTrigger":
		return KindKafka, name
	case "HTTPTrigger":
		return KindHTTP, name
	}
	return strings.ToLower(strings.TrimSuffix(k, "Trigger")), name
}

// The trigger metrics. Counted in atomics on the hot path; the collector
// reads them when scraped.
var (
	triggerLabels = []string{"env", "trigger", "kind"}
	descTicks     = prometheus.NewDesc("ferry_trigger_ticks_total",
		"Times a CronTrigger's schedule fired.", triggerLabels, nil)
	descDeliveries = prometheus.NewDesc("ferry_trigger_deliveries_total",
		"Events a trigger handed to a function (an HTTPTrigger: calls), each counted once whatever its retries.", triggerLabels, nil)
	descFailures = prometheus.NewDesc("ferry_trigger_failures_total",
		"Deliveries that still failed after their last attempt (an HTTPTrigger: calls answered 5xx).", triggerLabels, nil)
	descRetries = prometheus.NewDesc("ferry_trigger_retries_total",
		"Attempts after the first of a delivery.", triggerLabels, nil)
)

var _ prometheus.Collector = (*Metrics)(nil)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTicks, descDeliveries, descFailures, descRetries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	all := make([]*Counters, 0, len(m.byKey))
	for _, c := range m.byKey {
		all = append(all, c)
	}
	m.mu.Unlock()
	for _, c := range all {
		k := c.key
		if k.Kind == KindCron {
			ch <- prometheus.MustNewConstMetric(descTicks, prometheus.CounterValue, float64(c.Ticks.Load()), k.Env, k.Name, k.Kind)
		}
		ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(c.Deliveries.Load()), k.Env, k.Name, k.Kind)
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, float64(c.Failures.Load()), k.Env, k.Name, k.Kind)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(c.Retries.Load()), k.Env, k.Name, k.Kind)
	}
}

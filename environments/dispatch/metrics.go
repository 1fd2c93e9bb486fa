package embedded

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ferrycd/ferry/manifests"
)

// Kinds of trigger, as the kind label of the trigger metrics names them.
const (
	kindCron  = "cron"
	kindNATS  = "nats"
	kindKafka = "kafka"
	kindHTTP  = "http"
)

// triggerMetrics counts what every trigger of the host did, for the
// gateway's /_ferry/metrics (metrics_gateway.go). Counters are made on a
// trigger's first apply and kept across the releases that have it, so
// they never go back while it lives; those of a trigger a release drops,
// and an environment's when it is deleted, are dropped too, so neither a
// trigger renamed at each commit nor previews make the series pile up.
type triggerMetrics struct {
	mu    sync.Mutex
	byKey map[triggerKey]*triggerCounters
}

type triggerKey struct{ env, kind, name string }

// triggerCounters are one trigger's counters. Only atomics: a delivery
// takes no lock.
type triggerCounters struct {
	key triggerKey

	// ticks: a cron schedule fired (cron only).
	ticks atomic.Uint64
	// deliveries: an event handed to one function, counted once
	// whatever its retries (for http: a call).
	deliveries atomic.Uint64
	// failures: a delivery that still failed after its last attempt (for
	// http: a call answered 5xx).
	failures atomic.Uint64
	// retries: an attempt after the first of a delivery.
	retries atomic.Uint64
}

func newTriggerMetrics() *triggerMetrics {
	return &triggerMetrics{byKey: map[triggerKey]*triggerCounters{}}
}

// counters returns the counters of env's trigger of kind and name, made
// on first use.
func (m *triggerMetrics) counters(env, kind, name string) *triggerCounters {
	k := triggerKey{env, kind, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byKey[k]
	if c == nil {
		c = &triggerCounters{key: k}
		m.byKey[k] = c
	}
	return c
}

// forget drops env's counters: the environment is gone.
func (m *triggerMetrics) forget(env string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.byKey {
		if k.env == env {
			delete(m.byKey, k)
		}
	}
}

// keepOnly drops env's counters of the triggers live does not have: a
// release without them went live.
func (m *triggerMetrics) keepOnly(env string, live map[triggerKey]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.byKey {
		if k.env == env && !live[k] {
			delete(m.byKey, k)
		}
	}
}

// liveTriggers are the keys of set's triggers in env.
func liveTriggers(env string, set *manifests.Set) map[triggerKey]bool {
	keys := map[triggerKey]bool{}
	for _, tr := range set.HTTPTriggers {
		keys[triggerKey{env, kindHTTP, tr.Name}] = true
	}
	for _, tr := range set.CronTriggers {
		keys[triggerKey{env, kindCron, tr.Name}] = true
	}
	for _, tr := range set.NATSTriggers {
		keys[triggerKey{env, kindNATS, tr.Name}] = true
	}
	for _, tr := range set.KafkaTriggers {
		keys[triggerKey{env, kindKafka, tr.Name}] = true
	}
	return keys
}

// triggerKind splits a dispatch plan's name ("CronTrigger nightly") into
// the kind label and the trigger's name.
func triggerKind(planName string) (kind, name string) {
	k, name, _ := strings.Cut(planName, " ")
	switch k {
	case "CronTrigger":
		return kindCron, name
	case "NATSTrigger":
		return kindNATS, name
	case "KafkaTrigger":
		return kindKafka, name
	case "HTTPTrigger":
		return kindHTTP, name
	}
	return strings.ToLower(strings.TrimSuffix(k, "Trigger")), name
}

package embedded

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Kinds of trigger, as the kind label of the trigger metrics names them.
const (
	kindCron  = "cron"
	kindNATS  = "nats"
	kindKafka = "kafka"
	kindHTTP  = "http"
)

// triggerMetrics counts what every trigger of the host did, for the
// gateway's /_ferry/metrics. Counters are made on a trigger's first apply
// and kept across releases, so they never go back; an environment's are
// dropped when it is deleted, so previews do not pile up.
type triggerMetrics struct {
	mu    sync.Mutex
	byKey map[triggerKey]*triggerCounters
}

type triggerKey struct{ env, kind, name string }

// triggerCounters are one trigger's counters. Only atomics: a delivery
// takes no lock.
type triggerCounters struct {
	key    triggerKey
	labels string // env="…",trigger="…",kind="…", escaped

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
		c = &triggerCounters{key: k,
			labels: `env="` + escapeLabel(env) + `",trigger="` + escapeLabel(name) + `",kind="` + kind + `"`}
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

// format appends the trigger metrics in the Prometheus text format,
// sorted by environment, kind and trigger.
func (m *triggerMetrics) format(b []byte) []byte {
	m.mu.Lock()
	all := make([]*triggerCounters, 0, len(m.byKey))
	for _, c := range m.byKey {
		all = append(all, c)
	}
	m.mu.Unlock()
	slices.SortFunc(all, func(a, b *triggerCounters) int {
		return cmp.Or(strings.Compare(a.key.env, b.key.env), strings.Compare(a.key.kind, b.key.kind), strings.Compare(a.key.name, b.key.name))
	})
	families := []struct {
		name, help string
		value      func(*triggerCounters) *atomic.Uint64
		cronOnly   bool
	}{
		{"ferry_trigger_ticks_total", "Times a CronTrigger's schedule fired.", func(c *triggerCounters) *atomic.Uint64 { return &c.ticks }, true},
		{"ferry_trigger_deliveries_total", "Events a trigger handed to a function (an HTTPTrigger: calls), each counted once whatever its retries.", func(c *triggerCounters) *atomic.Uint64 { return &c.deliveries }, false},
		{"ferry_trigger_failures_total", "Deliveries that still failed after their last attempt (an HTTPTrigger: calls answered 5xx).", func(c *triggerCounters) *atomic.Uint64 { return &c.failures }, false},
		{"ferry_trigger_retries_total", "Attempts after the first of a delivery.", func(c *triggerCounters) *atomic.Uint64 { return &c.retries }, false},
	}
	for _, f := range families {
		b = append(b, "# HELP "+f.name+" "+f.help+"\n# TYPE "+f.name+" counter\n"...)
		for _, c := range all {
			if f.cronOnly && c.key.kind != kindCron {
				continue
			}
			b = append(b, f.name+"{"+c.labels+"} "...)
			b = strconv.AppendUint(b, f.value(c).Load(), 10)
			b = append(b, '\n')
		}
	}
	return b
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

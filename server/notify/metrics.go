package notify

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferrycd/ferry/store"
)

// scrapeTimeout bounds the store read of one scrape, as ferry serve's
// other figures do.
const scrapeTimeout = 5 * time.Second

var descPending = prometheus.NewDesc("ferry_notices_pending",
	"Notices waiting in the outbox to be delivered, by sink.", []string{"sink"}, nil)

// metrics counts deliveries as they happen; the queue's length is read
// from the store when scraped, so that it is true after a restart too.
type metrics struct {
	outbox    store.Outbox
	sinks     []string
	delivered *prometheus.CounterVec
	failed    *prometheus.CounterVec
	dropped   *prometheus.CounterVec
}

func newMetrics(outbox store.Outbox, sinks []string) *metrics {
	m := &metrics{
		outbox: outbox,
		sinks:  sinks,
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_notices_delivered_total",
			Help: "Notices a sink's receiver accepted.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_notice_attempts_failed_total",
			Help: "Delivery attempts that failed (each retry counts), by sink.",
		}, []string{"sink"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ferry_notices_dropped_total",
			Help: "Notices given up, by sink and reason (refused: the receiver said no retry helps; expired: tried for too long).",
		}, []string{"sink", "reason"}),
	}
	// why: every series exists from the start, so a rate over it reads 0
	// rather than nothing before the first failure.
	for _, s := range sinks {
		m.delivered.WithLabelValues(s)
		m.failed.WithLabelValues(s)
		m.dropped.WithLabelValues(s, "refused")
		m.dropped.WithLabelValues(s, "expired")
	}
	return m
}

// Collector returns the notifier's metrics, for ferry serve's registry.
func (n *Notifier) Collector() prometheus.Collector { return n.metrics }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPending
	m.delivered.Describe(ch)
	m.failed.Describe(ch)
	m.dropped.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.delivered.Collect(ch)
	m.failed.Collect(ch)
	m.dropped.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	pending, err := m.outbox.Pending(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPending, err)
		return
	}
	for _, s := range m.sinks {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(pending[s]), s)
		delete(pending, s)
	}
	// why: notices of a sink no longer configured still wait; they show.
	for s, n := range pending {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(n), s)
	}
}

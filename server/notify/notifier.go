package notify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/ferrycd/ferry/store"
)

// How the worker delivers. Each default says why its value.
const (
	// DefaultAttemptTimeout bounds one delivery: a receiver that accepts
	// the connection and never answers is tried again later rather than
	// holding its sink.
	DefaultAttemptTimeout = 30 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait after a
	// failed attempt, doubled each time: a blip is retried within a
	// second, a receiver down for hours is asked every five minutes.
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// DefaultGiveUpAfter is how long a notice is tried, from when it was
	// first queued: a day covers a receiver down over a night, and a
	// notice older than that tells of a state long gone.
	DefaultGiveUpAfter = 24 * time.Hour
	// storeRetry is the wait after the store failed to list or record.
	storeRetry = 5 * time.Second
	// batch is how many notices of a sink one read of the store takes.
	batch = 32
)

// never is the instant Due is asked for to list a sink's whole queue.
var never = time.Unix(0, 1<<62)

// Config wires a Notifier.
type Config struct {
	// Outbox keeps the notices until they are delivered (the store).
	Outbox store.Outbox
	// Sinks are the receivers; their names must differ.
	Sinks []Sink
	// Log hears what went wrong (nil: nothing is said).
	Log func(format string, args ...any)
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	// Zero means the default of the same name.
	AttemptTimeout time.Duration
	MinBackoff     time.Duration
	MaxBackoff     time.Duration
	GiveUpAfter    time.Duration
}

// Notifier plans events into each sink's outbox queue (Publish) and
// delivers the queues (Run), one worker per sink so that a sink that is
// down or slow never delays another, nor the engine that publishes.
//
// Delivery is at least once: a notice leaves the outbox only once its
// receiver accepted it, so a crash between the answer and the store's
// delete sends it again (receivers dedupe by the delivery id). A sink's
// notices go in the order they were queued, and one that fails holds
// back those behind it: they are for the same receiver, which is likely
// to refuse them too, and a chat must not read "deployed" before "waiting
// for approval". A notice about a key (a commit status) replaced before it
// went out is sent only in its newest form.
type Notifier struct {
	cfg     Config
	wake    map[string]chan struct{}
	metrics *metrics
}

// New checks cfg and returns its Notifier.
func New(cfg Config) (*Notifier, error) {
	if cfg.Outbox == nil {
		return nil, errors.New("notify: no outbox; give the store")
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultAttemptTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = DefaultGiveUpAfter
	}
	n := &Notifier{cfg: cfg, wake: map[string]chan struct{}{}}
	var names []string
	for _, s := range cfg.Sinks {
		if _, dup := n.wake[s.Name()]; dup {
			return nil, fmt.Errorf("notify: two sinks named %s; give each its own name", s.Name())
		}
		n.wake[s.Name()] = make(chan struct{}, 1)
		names = append(names, s.Name())
	}
	n.metrics = newMetrics(cfg.Outbox, names)
	return n, nil
}

// Publish queues what ev makes for each sink and wakes the sinks'
// workers. It only writes to the store: a plan or a write that fails is
// logged, never returned, as an outcome told outside ferry must not stop
// the run or promotion it tells of.
func (n *Notifier) Publish(ctx context.Context, ev Event) {
	if ev.At.IsZero() {
		ev.At = n.cfg.Now()
	}
	for _, s := range n.cfg.Sinks {
		ds, err := s.Plan(ev)
		if err != nil {
			n.cfg.Log("notifications: %s: planning %s: %v", s.Name(), ev.Kind, err)
			continue
		}
		queued := false
		for _, d := range ds {
			if _, err := n.cfg.Outbox.Enqueue(ctx, store.OutboxItem{Sink: s.Name(), Key: d.Key, Body: d.Body}); err != nil {
				n.cfg.Log("notifications: %s: %s is not sent: %v", s.Name(), ev.Kind, err)
				continue
			}
			queued = true
		}
		if queued {
			select {
			case n.wake[s.Name()] <- struct{}{}:
			default: // already woken
			}
		}
	}
}

// Run delivers until ctx ends, then returns nil. What is left waits in
// the outbox for the next start.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range n.cfg.Sinks {
		wg.Go(func() { n.work(ctx, s, n.wake[s.Name()]) })
	}
	// why: Run returns only when ctx ends, sinks or none, as ferry serve
	// takes any of its parts returning for a reason to stop.
	<-ctx.Done()
	wg.Wait()
	return nil
}

// work is one sink's worker: it delivers what is due, then sleeps until
// the head of the queue is due or Publish wakes it.
func (n *Notifier) work(ctx context.Context, s Sink, wake <-chan struct{}) {
	storeFailing := false
	for {
		next, err := n.drain(ctx, s)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// why: said once per outage, not at every retry.
			if !storeFailing {
				n.cfg.Log("notifications: %s: %v; trying again every %s", s.Name(), err, storeRetry)
			}
			storeFailing = true
			next = n.cfg.Now().Add(storeRetry)
		} else {
			storeFailing = false
		}
		var timer <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(max(next.Sub(n.cfg.Now()), 0))
			timer = t.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// drain delivers s's due notices in order and returns when the head of
// its queue is next due (zero: the queue is empty).
func (n *Notifier) drain(ctx context.Context, s Sink) (time.Time, error) {
	for {
		items, err := n.cfg.Outbox.Due(ctx, s.Name(), never, batch)
		if err != nil {
			return time.Time{}, err
		}
		if len(items) == 0 {
			return time.Time{}, nil
		}
		for _, it := range items {
			if now := n.cfg.Now(); it.NextAt.After(now) {
				return it.NextAt, nil
			}
			next, err := n.attempt(ctx, s, it)
			if err != nil || !next.IsZero() {
				return next, err
			}
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
		}
	}
}

// attempt delivers it once and records the result; it returns when to
// try it again (zero: it is done with, delivered or dropped).
func (n *Notifier) attempt(ctx context.Context, s Sink, it store.OutboxItem) (time.Time, error) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	err := s.Deliver(actx, it.Body)
	cancel()
	if ctx.Err() != nil {
		// why: a stop is not the receiver's failure; the notice waits,
		// untouched, for the next start.
		return time.Time{}, ctx.Err()
	}
	// why: the outbox is written even while ctx ends, so that a delivery
	// made is not made again for want of its delete.
	wctx := context.WithoutCancel(ctx)
	if err == nil {
		n.metrics.delivered.WithLabelValues(s.Name()).Inc()
		if it.Attempts > 0 {
			n.cfg.Log("notifications: %s: delivered after %d failed attempts", s.Name(), it.Attempts)
		}
		return time.Time{}, n.cfg.Outbox.OutboxDone(wctx, it.ID, it.Version)
	}
	n.metrics.failed.WithLabelValues(s.Name()).Inc()
	now := n.cfg.Now()
	if IsPermanent(err) {
		n.metrics.dropped.WithLabelValues(s.Name(), "refused").Inc()
		n.cfg.Log("notifications: %s: dropped notice %d, which the receiver refuses: %v", s.Name(), it.ID, err)
		return time.Time{}, n.cfg.Outbox.OutboxDone(wctx, it.ID, it.Version)
	}
	if now.Sub(it.Created) >= n.cfg.GiveUpAfter {
		n.metrics.dropped.WithLabelValues(s.Name(), "expired").Inc()
		n.cfg.Log("notifications: %s: gave up notice %d after %d attempts over %s: %v", s.Name(), it.ID, it.Attempts+1, n.cfg.GiveUpAfter, err)
		return time.Time{}, n.cfg.Outbox.OutboxDone(wctx, it.ID, it.Version)
	}
	next := now.Add(n.backoff(it.Attempts))
	var re *RetryError
	if errors.As(err, &re) && re.After > 0 {
		next = now.Add(re.After)
	}
	if it.Attempts == 0 {
		n.cfg.Log("notifications: %s: %v; trying again until it is accepted (at most %s)", s.Name(), err, n.cfg.GiveUpAfter)
	}
	if rerr := n.cfg.Outbox.OutboxRetry(wctx, it.ID, next, err.Error()); rerr != nil {
		return time.Time{}, rerr
	}
	return next, nil
}

// backoff is the wait after a notice's attempts-th failure: MinBackoff
// doubled each time up to MaxBackoff, less up to a half at random so that
// notices failed together do not all come back at once.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.cfg.MinBackoff
	for range min(attempts, 30) {
		d *= 2
		if d >= n.cfg.MaxBackoff {
			d = n.cfg.MaxBackoff
			break
		}
	}
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

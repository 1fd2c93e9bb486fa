package dispatch

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Defaults of the dispatcher.
const (
	// natsInFlight is how many messages of one NATSTrigger are dispatched
	// at once. When all are busy the subscription waits, and messages wait
	// in the client's pending buffer instead of in goroutines.
	natsInFlight = 64
)

// CloudEvents types of the events the triggers send.
const (
	CronEventType  = "dev.ferry.cron.tick"
	NATSEventType  = "dev.ferry.nats.message"
	KafkaEventType = "dev.ferry.kafka.record"
)

// cronParser accepts what manifests validates: five fields or a
// descriptor, with the time zone given as a CRON_TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Invoker is how a dispatcher reaches a function. The embedded target
// implements it with its gateway, so a trigger's calls share each
// function's concurrency and timeout with its HTTP calls; `ferry
// dispatch` with plain HTTP to the functions' Services (HTTPInvoker).
type Invoker interface {
	// Invoke sends ev to function and returns the answer's status and the
	// start of its body, which explains a failure; err is a call that got
	// no answer. ctx ends a wait before the call (for a free slot of the
	// function's concurrency), not a call under way, which the function's
	// timeout bounds: a trigger removed or stopping lets its calls finish.
	// A redirect is an answer, never followed.
	Invoke(ctx context.Context, function string, ev *environments.Event) (status int, head []byte, err error)
}

// Config wires the Dispatcher of one environment.
type Config struct {
	Environment string
	// NATSURL is the NATS server of the environment; "" refuses every
	// NATSTrigger at apply.
	NATSURL string
	// KafkaBrokers are the seed brokers of the environment's Kafka; none
	// refuses every KafkaTrigger at apply.
	KafkaBrokers []string
	// Log is where dispatch failures, skipped ticks and NATS disconnects
	// are reported.
	Log func(format string, args ...any)
	// Metrics counts ticks, deliveries, failures and retries; nil: counts
	// of this dispatcher alone, which nothing serves.
	Metrics *Metrics
}

// Dispatcher runs an environment's CronTriggers, NATSTriggers and
// KafkaTriggers (kafka.go) against its functions. Every dispatch is a
// CloudEvents 1.0 request in binary mode (environments.Event) handed to
// the Invoker.
//
// Core NATS has no acknowledgement: a message whose calls still fail after
// the trigger's retries is dropped and logged, and a message that arrives
// while no dispatcher subscribes is never seen.
type Dispatcher struct {
	cfg  Config
	cron *cron.Cron

	// mu serialises apply and stop, and guards what follows.
	mu      sync.Mutex
	running map[string]*runningTrigger // by kind/name
	nc      *nats.Conn
	stopped bool

	// calls counts dispatches in flight, so stop can wait for them.
	calls sync.WaitGroup
}

// runningTrigger is one started trigger. Its plan (what it calls, with
// what) is swapped in place when a release changes only that, so an
// unchanged schedule or subscription keeps running.
type runningTrigger struct {
	key  string // what starting it depends on; a change restarts it
	plan atomic.Pointer[dispatchPlan]
	// ctx is cancelled when the trigger is removed: no more retries.
	ctx    context.Context
	cancel context.CancelFunc

	entry atomic.Int64       // cron: the entry's id
	sub   *nats.Subscription // nats
	slots chan struct{}      // nats: dispatches in flight
	kafka *kafkaConsumer     // kafka
}

// dispatchPlan is what a trigger calls and how.
type dispatchPlan struct {
	name    string // kind and name, for messages: "CronTrigger nightly"
	targets []string
	invoker Invoker
	data    []byte         // cron: the event data
	zone    *time.Location // cron: ce-time is written in the trigger's zone
	retry   retryPolicy
	// stats are the trigger's counters; apply sets them.
	stats *Counters
}

type retryPolicy struct {
	attempts            int
	backoff, maxBackoff time.Duration
}

// New returns a dispatcher running no trigger.
func New(cfg Config) *Dispatcher {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	t := &Dispatcher{
		cfg:     cfg,
		running: map[string]*runningTrigger{},
	}
	// Every schedule carries its own CRON_TZ, so the scheduler's zone is
	// only a fallback; UTC keeps it the same on every host.
	t.cron = cron.New(cron.WithParser(cronParser), cron.WithLocation(time.UTC),
		cron.WithLogger(cronLogger{log: cfg.Log, what: "environment " + cfg.Environment}),
		cron.WithChain(cron.Recover(cronLogger{log: cfg.Log, what: "environment " + cfg.Environment})))
	t.cron.Start()
	return t
}

// desiredTrigger is a trigger of the set, resolved and ready to start.
type desiredTrigger struct {
	id    string // kind/name
	key   string
	plan  *dispatchPlan
	sched cron.Schedule // cron
	subj  string        // nats
	group string        // nats
	kafka *kafkaSpec    // kafka
}

// Apply replaces the running triggers with the cron, NATS and Kafka
// triggers of set, calling set's functions (and no others) through inv. A
// trigger whose schedule or subscription is unchanged keeps running with
// the new targets; removed ones stop; new ones start. It fails, changing
// nothing, on a trigger it cannot start.
func (t *Dispatcher) Apply(ctx context.Context, set *manifests.Set, inv Invoker) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return errors.New("the triggers have been stopped")
	}
	want, err := t.resolve(set)
	if err != nil {
		return err
	}
	for _, d := range want {
		kind, name := triggerKind(d.plan.name)
		d.plan.stats = t.cfg.Metrics.Counters(t.cfg.Environment, kind, name)
		d.plan.invoker = inv
	}

	// NATS first: connecting and subscribing are the steps that can fail,
	// and they are undone on failure before anything else changed.
	added := map[string]*runningTrigger{} // by kind/name
	newConn := false
	undo := func() {
		for _, r := range added {
			if r.sub != nil {
				_ = r.sub.Unsubscribe()
			}
			if r.kafka != nil {
				r.kafka.client.Close() // never polled: leaving needs no rebalance
			}
			r.cancel()
		}
		if newConn {
			t.nc.Close()
			t.nc = nil
		}
	}
	for _, d := range want {
		if d.subj == "" || t.unchanged(d) {
			continue
		}
		if t.nc == nil {
			if err := t.connect(); err != nil {
				return fmt.Errorf("%s: %w", d.plan.name, err)
			}
			newConn = true
		}
		r := t.newRunning(d)
		r.slots = make(chan struct{}, natsInFlight)
		r.sub, err = t.nc.QueueSubscribe(d.subj, d.group, func(m *nats.Msg) { t.onMessage(r, m) })
		added[d.id] = r
		if err != nil {
			undo()
			return fmt.Errorf("%s: subscribing to %q in queue group %q: %w", d.plan.name, d.subj, d.group, err)
		}
	}
	if len(added) > 0 {
		// A subscription is only in place once the server has it; a
		// message published right after apply returns must not be missed.
		if err := t.nc.FlushTimeout(5 * time.Second); err != nil {
			undo()
			return fmt.Errorf("subscribing to NATS at %s: %w", t.cfg.NATSURL, err)
		}
	}
	// Kafka after NATS, for the same reason: creating a group member and
	// reaching a broker can fail. Its consumer only starts once apply can
	// no longer fail, so an undone member has consumed nothing.
	for _, d := range want {
		if d.kafka == nil || t.unchanged(d) {
			continue
		}
		k, err := t.startKafka(ctx, d)
		if err != nil {
			undo()
			return err
		}
		r := t.newRunning(d)
		r.kafka = k
		added[d.id] = r
	}

	// From here on nothing fails.
	keep := map[string]bool{}
	for _, d := range want {
		if t.unchanged(d) {
			t.running[d.id].plan.Store(d.plan)
			keep[d.id] = true
		}
	}
	for id, r := range t.running {
		if !keep[id] {
			t.remove(r)
			delete(t.running, id)
		}
	}
	for id, r := range added {
		t.running[id] = r
		if r.kafka != nil {
			// Counted as a call: stop waits for the loop, and with it for the
			// client to leave the group.
			t.calls.Add(1)
			go t.consumeKafka(r)
		}
	}
	for _, d := range want {
		if d.sched == nil || keep[d.id] {
			continue
		}
		r := t.newRunning(d)
		job := cron.NewChain(cron.SkipIfStillRunning(cronLogger{log: t.cfg.Log, what: d.plan.name, skip: true})).
			Then(cron.FuncJob(func() { t.onTick(r) }))
		r.entry.Store(int64(t.cron.Schedule(d.sched, job)))
		t.running[d.id] = r
	}
	if t.nc != nil && !t.anyNATS() {
		t.nc.Close() // no NATS trigger left: stop reconnecting to a server no one uses
		t.nc = nil
	}
	return nil
}

// resolve turns the set's cron, NATS and Kafka triggers into what runs, checking
// everything that can be checked without starting anything.
func (t *Dispatcher) resolve(set *manifests.Set) ([]*desiredTrigger, error) {
	if set == nil {
		return nil, nil
	}
	functions := set.Functions
	var want []*desiredTrigger
	for _, tr := range set.CronTriggers {
		name := "CronTrigger " + tr.Name
		targets, err := selectTargets(name, tr.Spec.FunctionTarget, functions)
		if err != nil {
			return nil, err
		}
		zone := cmp.Or(tr.Spec.TimeZone, manifests.DefaultTimeZone)
		spec := "CRON_TZ=" + zone + " " + strings.TrimSpace(tr.Spec.Schedule)
		sched, err := cronParser.Parse(spec)
		if err != nil {
			return nil, fmt.Errorf("%s: schedule %q in time zone %s: %w", name, tr.Spec.Schedule, zone, err)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("%s: time zone %s: %w", name, zone, err)
		}
		data := []byte("null")
		if tr.Spec.Data != nil && len(tr.Spec.Data.Raw) > 0 {
			// The manifests decoder already writes canonical JSON; compacting
			// only guards a set built some other way.
			var buf bytes.Buffer
			if err := json.Compact(&buf, tr.Spec.Data.Raw); err != nil {
				return nil, fmt.Errorf("%s: spec.data is not JSON: %w", name, err)
			}
			data = buf.Bytes()
		}
		// A CronTrigger has no retry policy: one attempt, and the next tick
		// is the retry.
		want = append(want, &desiredTrigger{
			id: "cron/" + tr.Name, key: spec, sched: sched,
			plan: &dispatchPlan{name: name, targets: targets, data: data, zone: loc, retry: retryPolicy{attempts: 1}},
		})
	}
	if len(set.NATSTriggers) > 0 && t.cfg.NATSURL == "" {
		return nil, fmt.Errorf("NATSTrigger %s: the environment has no NATS server configured; give the environment a NATS URL (ferry run --nats URL) or remove the NATSTriggers", set.NATSTriggers[0].Name)
	}
	for _, tr := range set.NATSTriggers {
		name := "NATSTrigger " + tr.Name
		targets, err := selectTargets(name, tr.Spec.FunctionTarget, functions)
		if err != nil {
			return nil, err
		}
		if tr.Spec.Topic == "" {
			return nil, fmt.Errorf("%s: spec.topic is empty; give the NATS subject to subscribe to", name)
		}
		// The default group is per environment and trigger, so dev and prod
		// each handle every message once, and never share one.
		group := cmp.Or(tr.Spec.Group, "ferry-"+t.cfg.Environment+"-"+tr.Name)
		want = append(want, &desiredTrigger{
			id: "nats/" + tr.Name, key: tr.Spec.Topic + "\x00" + group, subj: tr.Spec.Topic, group: group,
			plan: &dispatchPlan{name: name, targets: targets, retry: retryFrom(tr.Spec.Retry)},
		})
	}
	kafka, err := t.resolveKafka(set)
	if err != nil {
		return nil, err
	}
	return append(want, kafka...), nil
}

// selectTargets returns the functions a trigger calls, sorted by name.
func selectTargets(trigger string, ft v1alpha1.FunctionTarget, functions []*v1alpha1.Function) ([]string, error) {
	var names []string
	switch {
	case ft.Function != "" && ft.FunctionSelector != nil:
		return nil, fmt.Errorf("%s: set spec.function or spec.functionSelector, not both", trigger)
	case ft.Function != "":
		names = []string{ft.Function}
	case ft.FunctionSelector != nil:
		sel, err := metav1.LabelSelectorAsSelector(ft.FunctionSelector)
		if err != nil {
			return nil, fmt.Errorf("%s: spec.functionSelector: %w", trigger, err)
		}
		if sel.Empty() {
			return nil, fmt.Errorf("%s: spec.functionSelector is empty and would call every function; give matchLabels or matchExpressions", trigger)
		}
		for _, f := range functions {
			if sel.Matches(labels.Set(f.Labels)) {
				names = append(names, f.Name)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%s: spec.functionSelector %q matches no function of the release", trigger, sel.String())
		}
	default:
		return nil, fmt.Errorf("%s: names no function; set spec.function or spec.functionSelector", trigger)
	}
	slices.Sort(names)
	for _, n := range names {
		if !slices.ContainsFunc(functions, func(f *v1alpha1.Function) bool { return f.Name == n }) {
			return nil, fmt.Errorf("%s: calls function %q, which the environment does not run", trigger, n)
		}
	}
	return names, nil
}

// retryFrom fills what the manifests left unset with their defaults, so a
// set that was not defaulted behaves as a defaulted one.
func retryFrom(p *v1alpha1.RetryPolicy) retryPolicy {
	r := retryPolicy{
		attempts:   int(manifests.DefaultRetryAttempts),
		backoff:    manifests.DefaultRetryBackoff,
		maxBackoff: manifests.DefaultRetryMaxBackoff,
	}
	if p == nil {
		return r
	}
	if p.Attempts != nil {
		r.attempts = max(1, int(*p.Attempts))
	}
	if p.Backoff != nil {
		r.backoff = p.Backoff.Duration
	}
	if p.MaxBackoff != nil {
		r.maxBackoff = p.MaxBackoff.Duration
	}
	r.maxBackoff = max(r.maxBackoff, r.backoff)
	return r
}

func (t *Dispatcher) unchanged(d *desiredTrigger) bool {
	r, ok := t.running[d.id]
	return ok && r.key == d.key
}

func (t *Dispatcher) newRunning(d *desiredTrigger) *runningTrigger {
	r := &runningTrigger{key: d.key}
	r.plan.Store(d.plan)
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// remove stops a trigger taking new work and ends its retries. A call in
// progress finishes, so a function is not cut off mid-request.
//
// A Kafka trigger's loop sees the cancellation, commits what every
// function answered and leaves the group itself, so apply does not wait
// on the brokers.
func (t *Dispatcher) remove(r *runningTrigger) {
	switch {
	case r.sub != nil:
		_ = r.sub.Unsubscribe()
	case r.kafka != nil:
	default:
		t.cron.Remove(cron.EntryID(r.entry.Load()))
	}
	r.cancel()
}

func (t *Dispatcher) anyNATS() bool {
	for _, r := range t.running {
		if r.sub != nil {
			return true
		}
	}
	return false
}

// connect opens the environment's NATS connection. It reconnects forever:
// a NATS restart must not end the triggers, and the log says when the
// connection is down.
func (t *Dispatcher) connect() error {
	env := t.cfg.Environment
	nc, err := nats.Connect(t.cfg.NATSURL,
		nats.Name("ferry-"+env),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				t.cfg.Log("environment %s: NATS disconnected: %v; reconnecting, messages published meanwhile are not seen", env, err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			t.cfg.Log("environment %s: NATS reconnected to %s", env, nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = " on " + sub.Subject
			}
			t.cfg.Log("environment %s: NATS%s: %v", env, subj, err)
		}),
	)
	if err != nil {
		return fmt.Errorf("connecting to NATS at %s: %w", t.cfg.NATSURL, err)
	}
	t.nc = nc
	return nil
}

// onTick dispatches one cron tick to every target and waits for them, so
// SkipIfStillRunning sees a tick as running until every call is over.
func (t *Dispatcher) onTick(r *runningTrigger) {
	p := r.plan.Load()
	// The entry's Prev is the tick's scheduled time: the scheduler sets it
	// before it answers Entry, which goes through its loop.
	at := t.cron.Entry(cron.EntryID(r.entry.Load())).Prev
	if at.IsZero() {
		at = time.Now().Truncate(time.Second)
	}
	ev := &environments.Event{
		ID:          rand.Text(),
		Source:      "/ferry/" + t.cfg.Environment + "/cron/" + strings.TrimPrefix(p.name, "CronTrigger "),
		Type:        CronEventType,
		Time:        at.In(p.zone),
		ContentType: "application/json",
		Data:        p.data,
	}
	if !t.begin() {
		return
	}
	defer t.calls.Done()
	p.stats.Ticks.Add(1)
	t.fanOut(r.ctx, p, ev)
}

// onMessage dispatches one NATS message. It returns once the dispatch has
// a slot, so a busy trigger slows its subscription down.
func (t *Dispatcher) onMessage(r *runningTrigger, m *nats.Msg) {
	p := r.plan.Load()
	ev := &environments.Event{
		// One id per message: every target and every retry sees the same,
		// so a function can tell a retry from a new message.
		ID:          rand.Text(),
		Source:      "/ferry/" + t.cfg.Environment + "/nats/" + m.Subject,
		Type:        NATSEventType,
		Time:        time.Now().UTC(),
		ContentType: cmp.Or(headerValue(m.Header, "Content-Type"), "application/octet-stream"),
		Data:        m.Data,
		Extensions:  map[string]string{"natssubject": m.Subject},
	}
	select {
	case r.slots <- struct{}{}:
	case <-r.ctx.Done():
		t.cfg.Log("%s: message %s on %s dropped: the trigger was removed", p.name, ev.ID, m.Subject)
		return
	}
	if !t.begin() {
		<-r.slots
		return
	}
	go func() {
		defer t.calls.Done()
		defer func() { <-r.slots }()
		t.fanOut(r.ctx, p, ev)
	}()
}

// begin counts a dispatch in flight, unless stop has begun.
func (t *Dispatcher) begin() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	t.calls.Add(1)
	return true
}

// fanOut sends ev to every target at once, each with its own retries.
// ev is shared: the invokers only read it.
func (t *Dispatcher) fanOut(ctx context.Context, p *dispatchPlan, ev *environments.Event) {
	var wg sync.WaitGroup
	for _, fn := range p.targets {
		wg.Go(func() {
			if err := t.deliver(ctx, p, fn, ev); err != nil {
				what := "tick"
				if ev.Type == NATSEventType {
					what = "message (dropped: core NATS cannot redeliver it)"
				}
				t.cfg.Log("%s: function %s: event %s, %s: %v", p.name, fn, ev.ID, what, err)
			}
		})
	}
	wg.Wait()
}

// deliver sends ev to function until it answers 2xx or p's retries are
// spent, waiting backoff, doubling up to maxBackoff, between attempts,
// and counts it in p's stats.
func (t *Dispatcher) deliver(ctx context.Context, p *dispatchPlan, function string, ev *environments.Event) error {
	rp := p.retry
	p.stats.Deliveries.Add(1)
	wait := rp.backoff
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			p.stats.Retries.Add(1)
		}
		err := call(ctx, p.invoker, function, ev)
		if err == nil {
			return nil
		}
		if attempt >= rp.attempts {
			p.stats.Failures.Add(1)
			return fmt.Errorf("failed after %d attempt(s): %w", attempt, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			p.stats.Failures.Add(1)
			return fmt.Errorf("the trigger stopped after %d attempt(s): %w", attempt, err)
		}
		wait = min(2*wait, rp.maxBackoff)
	}
}

// call makes one attempt; an answer other than 2xx is its error. ctx is
// the trigger's: removing the trigger ends the wait for a slot, not a
// call under way (Invoker).
func call(ctx context.Context, inv Invoker, function string, ev *environments.Event) error {
	code, head, err := inv.Invoke(ctx, function, ev)
	if err != nil {
		return err
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("the function answered %d %s: %s", code, http.StatusText(code), strings.TrimSpace(string(head)))
	}
	return nil
}

// Stop ends every trigger and waits for the calls in flight: no new tick
// or message is taken, calls under way finish (retries not yet begun are
// not made), and each Kafka consumer commits what every function answered
// and leaves its group. After it returns no trigger calls a function.
func (t *Dispatcher) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	t.stopped = true
	for id, r := range t.running {
		t.remove(r)
		delete(t.running, id)
	}
	if t.nc != nil {
		t.nc.Close()
		t.nc = nil
	}
	t.mu.Unlock()
	<-t.cron.Stop().Done()
	t.calls.Wait()
}

// headerValue is h's first value of key in any case: NATS headers are
// case-sensitive, and publishers write Content-Type in every case.
func headerValue(h nats.Header, key string) string {
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// cronLogger reports the scheduler's errors and, for a trigger's
// SkipIfStillRunning wrapper (skip), its skipped ticks.
type cronLogger struct {
	log  func(format string, args ...any)
	what string
	skip bool
}

func (l cronLogger) Info(msg string, _ ...any) {
	// SkipIfStillRunning's one message is a skipped tick.
	if l.skip {
		l.log("%s: a tick came while the previous one was still being dispatched; skipped it", l.what)
	}
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log("%s: cron: %s: %v %v", l.what, msg, err, kv)
}

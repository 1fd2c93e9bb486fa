package dispatch

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// triggerCall is one request a test function received.
type triggerCall struct {
	ce          map[string]string // ce-* headers, lower case
	contentType string
	body        string
}

// triggerRecorder is a real HTTP server standing in for a function: it records
// every request and answers what status says (200 when nil).
type triggerRecorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []triggerCall
	status func(n int) int // n counts calls from 1
	// handle, when set, runs first in each call (setHandle).
	handle func(*http.Request)
}

func (r *triggerRecorder) setHandle(f func(*http.Request)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handle = f
}

func newTriggerRecorder(t *testing.T) *triggerRecorder {
	r := &triggerRecorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		handle := r.handle
		r.mu.Unlock()
		if handle != nil {
			handle(req)
		}
		rec := triggerCall{ce: map[string]string{}, contentType: req.Header.Get("Content-Type"), body: string(body)}
		for k, v := range req.Header {
			if strings.HasPrefix(strings.ToLower(k), "ce-") {
				rec.ce[strings.ToLower(k)] = v[0]
			}
		}
		if req.Method != http.MethodPost || req.URL.Path != "/" {
			rec.ce["bad-request"] = req.Method + " " + req.URL.Path
		}
		r.mu.Lock()
		r.calls = append(r.calls, rec)
		n, status := len(r.calls), r.status
		r.mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *triggerRecorder) got() []triggerCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]triggerCall(nil), r.calls...)
}

// to is an Invoker of the recorders by function name: plain HTTP, as
// `ferry dispatch` calls functions.
func to(fns map[string]*triggerRecorder) Invoker {
	urls := map[string]string{}
	for name, r := range fns {
		urls[name] = r.srv.URL
	}
	return NewHTTPInvoker(urls, nil)
}

// triggerLog collects what the triggers report.
type triggerLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *triggerLog) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *triggerLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func newTestTriggers(t *testing.T, natsURL string) (*Dispatcher, *triggerLog) {
	l := &triggerLog{}
	tr := New(Config{Environment: "dev", NATSURL: natsURL, Log: l.log})
	t.Cleanup(tr.Stop)
	return tr, l
}

func testFunction(name string, lbls map[string]string) *v1alpha1.Function {
	return &v1alpha1.Function{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls}}
}

func testCronTrigger(name, function, schedule, data string) *v1alpha1.CronTrigger {
	ct := &v1alpha1.CronTrigger{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ct.Spec.Function = function
	ct.Spec.Schedule = schedule
	if data != "" {
		ct.Spec.Data = &runtime.RawExtension{Raw: []byte(data)}
	}
	return ct
}

func testNATSTrigger(name, function, subject string, retry *v1alpha1.RetryPolicy) *v1alpha1.NATSTrigger {
	nt := &v1alpha1.NATSTrigger{ObjectMeta: metav1.ObjectMeta{Name: name}}
	nt.Spec.Function = function
	nt.Spec.Topic = subject
	nt.Spec.Retry = retry
	return nt
}

func startTestNATS(t *testing.T) string {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("the NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

func TestTriggerCron(t *testing.T) {
	t.Parallel()
	report := newTriggerRecorder(t)
	tr, l := newTestTriggers(t, "")
	set := func() *manifests.Set {
		return &manifests.Set{
			Functions:    []*v1alpha1.Function{testFunction("report", nil)},
			CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("nightly", "report", "@every 1s", `{"full": true}`)},
		}
	}
	backends := to(map[string]*triggerRecorder{"report": report})
	begin := time.Now()
	if err := tr.Apply(t.Context(), set(), backends); err != nil {
		t.Fatal(err)
	}
	// @every 1s first fires on the next whole second but one, at most 2 s.
	waitFor(t, 30*time.Second, "two ticks", func() bool { return len(report.got()) >= 2 })

	calls := report.got()
	for _, c := range calls {
		for h, want := range map[string]string{
			"ce-specversion": "1.0",
			"ce-source":      "/ferry/dev/cron/nightly",
			"ce-type":        "dev.ferry.cron.tick",
		} {
			if c.ce[h] != want {
				t.Errorf("%s = %q, want %q", h, c.ce[h], want)
			}
		}
		if at, err := time.Parse(time.RFC3339, c.ce["ce-time"]); err != nil || at.Nanosecond() != 0 || at.Before(begin.Truncate(time.Second)) || at.After(time.Now()) {
			t.Errorf("ce-time %q is not the tick's scheduled time (%v)", c.ce["ce-time"], err)
		}
		if c.contentType != "application/json" || c.body != `{"full":true}` {
			t.Errorf("Content-Type %q, body %q; want application/json, {\"full\":true}", c.contentType, c.body)
		}
		if c.ce["bad-request"] != "" {
			t.Errorf("request was %s, want POST /", c.ce["bad-request"])
		}
	}
	if calls[0].ce["ce-id"] == "" || calls[0].ce["ce-id"] == calls[1].ce["ce-id"] {
		t.Errorf("ce-id %q then %q: want a new id per tick", calls[0].ce["ce-id"], calls[1].ce["ce-id"])
	}

	// The same set again: the same entry keeps going. (Its next tick is
	// not compared: a tick may fall between the two looks.)
	before := tr.running["cron/nightly"]
	id := cronEntryID(before)
	if err := tr.Apply(t.Context(), set(), backends); err != nil {
		t.Fatal(err)
	}
	after := tr.running["cron/nightly"]
	if after != before || cronEntryID(after) != id || !tr.cron.Entry(id).Valid() {
		t.Fatal("applying the same set restarted the cron trigger")
	}
	n := len(report.got())
	waitFor(t, 30*time.Second, "a tick after the re-apply", func() bool { return len(report.got()) > n })

	// Without it, the ticks stop. A call already on its way finishes, so
	// what counts is that no tick is scheduled after the removal.
	if err := tr.Apply(t.Context(), &manifests.Set{Functions: set().Functions}, backends); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	time.Sleep(1500 * time.Millisecond)
	for _, c := range report.got() {
		if at, err := time.Parse(time.RFC3339, c.ce["ce-time"]); err != nil || at.After(removed) {
			t.Errorf("a tick at %s after the trigger was removed at %s", c.ce["ce-time"], removed.Format(time.RFC3339Nano))
		}
	}
	if len(tr.cron.Entries()) != 0 {
		t.Errorf("%d cron entries left", len(tr.cron.Entries()))
	}
	if s := l.String(); s != "" {
		t.Errorf("unexpected log:\n%s", s)
	}
}

func cronEntryID(r *runningTrigger) cron.EntryID { return cron.EntryID(r.entry.Load()) }

func TestTriggerCronSelector(t *testing.T) {
	t.Parallel()
	a, b, c := newTriggerRecorder(t), newTriggerRecorder(t), newTriggerRecorder(t)
	tr, _ := newTestTriggers(t, "")
	ct := testCronTrigger("fan", "", "@every 1s", "")
	ct.Spec.FunctionSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "billing"}}
	set := &manifests.Set{
		Functions: []*v1alpha1.Function{
			testFunction("a", map[string]string{"team": "billing"}),
			testFunction("b", map[string]string{"team": "billing", "tier": "web"}),
			testFunction("c", map[string]string{"team": "search"}),
		},
		CronTriggers: []*v1alpha1.CronTrigger{ct},
	}
	if err := tr.Apply(t.Context(), set, to(map[string]*triggerRecorder{"a": a, "b": b, "c": c})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "a tick on a and b", func() bool { return len(a.got()) > 0 && len(b.got()) > 0 })
	if n := len(c.got()); n != 0 {
		t.Errorf("c, which the selector does not match, was called %d times", n)
	}
	if got := a.got()[0]; got.body != "null" || got.ce["ce-source"] != "/ferry/dev/cron/fan" {
		t.Errorf("body %q, ce-source %q; want null and /ferry/dev/cron/fan", got.body, got.ce["ce-source"])
	}
}

func TestTriggerNATSQueueGroup(t *testing.T) {
	t.Parallel()
	url := startTestNATS(t)
	set := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("orders", nil)},
		NATSTriggers: []*v1alpha1.NATSTrigger{testNATSTrigger("orders", "orders", "orders", nil)},
	}
	// Two instances of ferry running the same environment share the
	// queue group: each message is handled by one of them.
	one, two := newTriggerRecorder(t), newTriggerRecorder(t)
	for _, r := range []*triggerRecorder{one, two} {
		tr, _ := newTestTriggers(t, url)
		if err := tr.Apply(t.Context(), set, to(map[string]*triggerRecorder{"orders": r})); err != nil {
			t.Fatal(err)
		}
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i := range 20 {
		m := nats.NewMsg("orders")
		m.Data = fmt.Appendf(nil, "order %d", i)
		if i%2 == 0 {
			m.Header.Set("content-type", "text/plain")
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	total := func() int { return len(one.got()) + len(two.got()) }
	waitFor(t, 30*time.Second, "20 calls", func() bool { return total() >= 20 })
	time.Sleep(200 * time.Millisecond) // a duplicate would show up by now
	if total() != 20 {
		t.Fatalf("%d calls for 20 messages", total())
	}
	bodies, ids := map[string]bool{}, map[string]bool{}
	for _, c := range append(one.got(), two.got()...) {
		bodies[c.body], ids[c.ce["ce-id"]] = true, true
		if c.ce["ce-source"] != "/ferry/dev/nats/orders" || c.ce["ce-type"] != "dev.ferry.nats.message" ||
			c.ce["ce-natssubject"] != "orders" || c.ce["ce-specversion"] != "1.0" {
			t.Errorf("headers %v", c.ce)
		}
		if _, err := time.Parse(time.RFC3339Nano, c.ce["ce-time"]); err != nil {
			t.Errorf("ce-time: %v", err)
		}
		var i int
		fmt.Sscanf(c.body, "order %d", &i)
		if want := map[bool]string{true: "text/plain", false: "application/octet-stream"}[i%2 == 0]; c.contentType != want {
			t.Errorf("%s: Content-Type %q, want %q", c.body, c.contentType, want)
		}
	}
	if len(bodies) != 20 || len(ids) != 20 {
		t.Errorf("%d distinct messages with %d distinct ids, want 20 and 20", len(bodies), len(ids))
	}
}

func TestTriggerNATSRetry(t *testing.T) {
	t.Parallel()
	url := startTestNATS(t)
	flaky, broken := newTriggerRecorder(t), newTriggerRecorder(t)
	flaky.status = func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	broken.status = func(int) int { return http.StatusBadGateway }
	attempts := int32(3)
	retry := &v1alpha1.RetryPolicy{
		Attempts:   &attempts,
		Backoff:    &metav1.Duration{Duration: 20 * time.Millisecond},
		MaxBackoff: &metav1.Duration{Duration: 30 * time.Millisecond},
	}
	tr, l := newTestTriggers(t, url)
	set := &manifests.Set{
		Functions: []*v1alpha1.Function{testFunction("flaky", nil), testFunction("broken", nil)},
		NATSTriggers: []*v1alpha1.NATSTrigger{
			testNATSTrigger("flaky", "flaky", "jobs.flaky", retry),
			testNATSTrigger("broken", "broken", "jobs.broken", retry),
		},
	}
	if err := tr.Apply(t.Context(), set, to(map[string]*triggerRecorder{"flaky": flaky, "broken": broken})); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"jobs.flaky", "jobs.broken"} {
		if err := nc.Publish(subj, []byte(`{"id": 7}`)); err != nil {
			t.Fatal(err)
		}
	}
	// why: the two messages are retried side by side, on the same
	// backoff; broken's drop may be logged just before flaky's third try.
	waitFor(t, 30*time.Second, "the dropped message logged and flaky's third try", func() bool {
		return strings.Contains(l.String(), "dropped") && len(flaky.got()) >= 3
	})

	calls := flaky.got()
	if len(calls) != 3 {
		t.Fatalf("flaky got %d calls, want 2 failures and a success", len(calls))
	}
	for _, c := range calls[1:] {
		if c.ce["ce-id"] != calls[0].ce["ce-id"] {
			t.Errorf("ce-id %q on a retry of %q", c.ce["ce-id"], calls[0].ce["ce-id"])
		}
	}
	if n := len(broken.got()); n != 3 {
		t.Errorf("broken got %d calls, want the 3 attempts", n)
	}
	log := l.String()
	if strings.Contains(log, "function flaky") || !strings.Contains(log, "NATSTrigger broken: function broken") || !strings.Contains(log, "502") {
		t.Errorf("log should report broken's 502 only:\n%s", log)
	}
}

func TestTriggerApplyRefuses(t *testing.T) {
	t.Parallel()
	f := newTriggerRecorder(t)
	backends := to(map[string]*triggerRecorder{"f": f})
	good := &manifests.Set{
		Functions:    []*v1alpha1.Function{testFunction("f", nil)},
		CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("daily", "f", "@daily", "")},
	}
	withNATS := &manifests.Set{
		Functions:    good.Functions,
		NATSTriggers: []*v1alpha1.NATSTrigger{testNATSTrigger("orders", "f", "orders", nil)},
	}

	for _, tc := range []struct {
		name, natsURL string
		set           *manifests.Set
		want          string
	}{
		{"no NATS server", "", withNATS, "the environment has no NATS server configured"},
		{"NATS unreachable", "nats://127.0.0.1:1", withNATS, "connecting to NATS at nats://127.0.0.1:1"},
		{"unknown function", "", &manifests.Set{
			CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("daily", "nope", "@daily", "")},
		}, `calls function "nope", which the environment does not run`},
		{"bad time zone", "", &manifests.Set{
			Functions: good.Functions,
			CronTriggers: []*v1alpha1.CronTrigger{func() *v1alpha1.CronTrigger {
				c := testCronTrigger("daily", "f", "0 3 * * *", "")
				c.Spec.TimeZone = "Mars/Base"
				return c
			}()},
		}, "Mars/Base"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := newTestTriggers(t, tc.natsURL)
			if err := tr.Apply(t.Context(), good, backends); err != nil {
				t.Fatal(err)
			}
			before := tr.running["cron/daily"]
			err := tr.Apply(t.Context(), tc.set, backends)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("apply: %v; want an error with %q", err, tc.want)
			}
			// Nothing changed: the running trigger is the same one.
			if len(tr.running) != 1 || tr.running["cron/daily"] != before || len(tr.cron.Entries()) != 1 || tr.nc != nil {
				t.Errorf("a failed apply changed the running triggers: %v", tr.running)
			}
		})
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

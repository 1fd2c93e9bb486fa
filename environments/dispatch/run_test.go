package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// syncBuffer is a log the dispatcher writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writePlan writes p as JSON and reads it back as `ferry dispatch` does.
func writePlan(t *testing.T, p *Plan) *Plan {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadPlan(file)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// running is a Run in a goroutine.
type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func startRun(t *testing.T, p *Plan, log io.Writer) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	return startRunCtx(t, ctx, cancel, p, log)
}

// startRunCtx is startRun with the context whose end is the SIGTERM.
func startRunCtx(t *testing.T, ctx context.Context, cancel context.CancelFunc, p *Plan, log io.Writer) *running {
	t.Helper()
	r := &running{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	go func() {
		r.done <- Run(ctx, RunConfig{Plan: p, Listen: "127.0.0.1:0", Log: jsonLogger(log), Ready: func(addr string) { ready <- addr }})
	}()
	select {
	case r.addr = <-ready:
	case err := <-r.done:
		cancel()
		t.Fatalf("Run ended before it was ready: %v", err)
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("Run was not ready after a minute")
	}
	t.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(time.Minute):
			t.Error("Run did not end a minute after its context")
		}
	})
	return r
}

// stop ends the Run and returns its error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not drain within a minute")
		return nil
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRunPlan runs a plan as `ferry dispatch` does, against a real NATS
// server, an in-process Kafka and functions standing in as HTTP servers:
// a NATS message fans out by selector to two functions, one of which
// fails once and is retried by the trigger's policy with the same event;
// a Kafka record reaches its function and its offset is committed; the
// metrics count it; a drain ends the run.
func TestRunPlan(t *testing.T) {
	t.Parallel()
	natsURL := startTestNATS(t)
	brokers := startTestKafka(t, "orders")
	billA, billB, search, orders := newTriggerRecorder(t), newTriggerRecorder(t), newTriggerRecorder(t), newTriggerRecorder(t)
	billA.status = func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	invoices := testNATSTrigger("invoices", "", "billing.invoice", &v1alpha1.RetryPolicy{
		Attempts: ptr(int32(3)), Backoff: &metav1.Duration{Duration: 20 * time.Millisecond}, MaxBackoff: &metav1.Duration{Duration: 40 * time.Millisecond}})
	invoices.Spec.FunctionSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "billing"}}
	plan := writePlan(t, &Plan{
		Environment:   "prod",
		NATSURL:       natsURL,
		KafkaBrokers:  brokers,
		NATSTriggers:  []v1alpha1.NATSTrigger{*invoices},
		KafkaTriggers: []v1alpha1.KafkaTrigger{*testKafkaTrigger("orders", "orders", "orders", nil)},
		Functions: map[string]string{"bill-a": billA.srv.URL, "bill-b": billB.srv.URL + "/",
			"search": search.srv.URL, "orders": orders.srv.URL},
		FunctionLabels: map[string]map[string]string{"bill-a": {"team": "billing"}, "bill-b": {"team": "billing"}, "search": {"team": "search"}},
	})
	var log syncBuffer
	r := startRun(t, plan, &log)
	if code, body := get(t, "http://"+r.addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while running: %d %s", code, body)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m := nats.NewMsg("billing.invoice")
	m.Header.Set("Content-Type", "application/json")
	m.Data = []byte(`{"invoice": 7}`)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, "orders", 0, 1)

	waitFor(t, time.Minute, "bill-a's retry, bill-b's call and the order", func() bool {
		return len(billA.got()) >= 2 && len(billB.got()) >= 1 && len(orders.got()) >= 1
	})
	waitFor(t, time.Minute, "the order's offset committed", func() bool { return committed(t, brokers, "ferry-prod-orders", "orders") == 1 })

	a, b := billA.got(), billB.got()
	if len(a) != 2 || len(b) != 1 {
		t.Fatalf("bill-a got %d calls, bill-b %d; want a 500 and its retry, and one", len(a), len(b))
	}
	for i, c := range append(a, b...) {
		for h, want := range map[string]string{
			"ce-specversion": "1.0",
			"ce-source":      "/ferry/prod/nats/billing.invoice",
			"ce-type":        NATSEventType,
			"ce-natssubject": "billing.invoice",
			"ce-id":          a[0].ce["ce-id"],
		} {
			if c.ce[h] != want {
				t.Errorf("call %d: %s = %q, want %q", i, h, c.ce[h], want)
			}
		}
		if c.contentType != "application/json" || c.body != `{"invoice": 7}` || c.ce["bad-request"] != "" {
			t.Errorf("call %d: %s %q %s, want POST / of the message as application/json", i, c.ce["bad-request"], c.body, c.contentType)
		}
	}
	if n := len(search.got()); n != 0 {
		t.Errorf("search, which the selector does not match, got %d calls", n)
	}
	o := orders.got()[0]
	if o.ce["ce-id"] != "orders-0-0" || o.ce["ce-type"] != KafkaEventType || o.ce["ce-kafkakey"] != "k0" || o.body != "order 0" {
		t.Errorf("the order's call: %v %q", o.ce, o.body)
	}

	_, metrics := get(t, "http://"+r.addr+"/metrics")
	for _, want := range []string{
		`ferry_trigger_deliveries_total{env="prod",kind="nats",trigger="invoices"} 2`,
		`ferry_trigger_retries_total{env="prod",kind="nats",trigger="invoices"} 1`,
		`ferry_trigger_failures_total{env="prod",kind="nats",trigger="invoices"} 0`,
		`ferry_trigger_deliveries_total{env="prod",kind="kafka",trigger="orders"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}

	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := http.Get("http://" + r.addr + "/healthz"); err == nil {
		t.Error("/healthz still answers after the run ended")
	}
	// Every line is a JSON object naming the environment.
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["environment"] != "prod" {
			t.Errorf("log line %q is not JSON naming the environment (%v)", l, err)
		}
	}
	if s := log.String(); !strings.Contains(s, `"msg":"dispatching"`) || !strings.Contains(s, "draining") || !strings.Contains(s, `"msg":"stopped"`) {
		t.Errorf("the log does not say the start, the drain and the stop:\n%s", s)
	}
}

// TestRunDrains ends a run while a Kafka record's call is under way: the
// call finishes (the function's client stays), and its offset is committed
// before Run returns, so the next dispatcher does not call it again.
func TestRunDrains(t *testing.T) {
	t.Parallel()
	brokers := startTestKafka(t, "jobs")
	produce(t, brokers, "jobs", 0, 3)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var cut []string
	slow := newTriggerRecorder(t)
	slow.setHandle(func(req *http.Request) {
		cancel() // SIGTERM, while this call is under way
		// why a pause: it gives the drain time to cut this call off, were
		// it to; the assertions below hold whatever the pause.
		time.Sleep(200 * time.Millisecond)
		if err := req.Context().Err(); err != nil {
			mu.Lock()
			cut = append(cut, err.Error())
			mu.Unlock()
		}
	})
	plan := writePlan(t, &Plan{
		Environment:   "prod",
		KafkaBrokers:  brokers,
		KafkaTriggers: []v1alpha1.KafkaTrigger{*testKafkaTrigger("jobs", "slow", "jobs", nil)},
		Functions:     map[string]string{"slow": slow.srv.URL},
	})
	var log syncBuffer
	r := startRunCtx(t, ctx, cancel, plan, &log)
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not drain within a minute of its first call")
	}
	calls := slow.got()
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || len(cut) != 0 {
		t.Fatalf("%d calls, %v cut off; want the one under way, finished", len(calls), cut)
	}
	if n := committed(t, brokers, "ferry-prod-jobs", "jobs"); n != 1 {
		t.Errorf("committed offset %d after the drain, want 1: the record answered, and no other taken", n)
	}
}

// TestRunRefuses: a plan Run cannot start ends it with an error saying
// what to fix.
func TestRunRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		plan Plan
		want string
	}{
		{"no environment", Plan{}, "environment is empty"},
		{"bad URL", Plan{Environment: "prod", Functions: map[string]string{"f": "f.prod.svc"}}, `function f: URL "f.prod.svc"`},
		{"function not in the plan", Plan{Environment: "prod", NATSURL: "nats://127.0.0.1:1",
			NATSTriggers: []v1alpha1.NATSTrigger{*testNATSTrigger("jobs", "f", "jobs", nil)}}, `calls function "f", which the environment does not run`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(t.Context(), RunConfig{Plan: &tc.plan, Log: jsonLogger(io.Discard)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

package embedded

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrycd/ferry/environments/dispatch"
	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// hangPrinting hangs on the data "hang", as hangHandlers do, and prints
// any other data it gets, so the test sees a delivery arrive.
const hangPrinting = `import time

def handle(event, context):
    if event["data"] == "hang":
        time.sleep(600)
    print("got", event["data"], flush=True)
    return "ok"
`

// TestTriggerNATSOverdue sends NATS messages through a NATSTrigger to a real
// Python function whose handler hangs far past its timeout, more at once
// than its concurrency: every attempt ends at the function's timeout (its
// spec's, not the triggers' own), and is retried by the trigger's policy;
// the slots the trigger's calls hold, with the gateway's, never exceed
// the concurrency; the timed-out calls count as overdue and restart the
// function, with the reason in ferry's log; the trigger's counters count
// each message once; and a message sent afterwards is delivered.
func TestTriggerNATSOverdue(t *testing.T) {
	t.Parallel()
	const (
		concurrency = 2
		timeout     = 200 * time.Millisecond
		messages    = 4 // at once, twice the concurrency
		attempts    = 2
	)
	natsURL := startTestNATS(t)
	h := startHanging(t, concurrency, timeout)
	in, g, st, logFile, ferryLog := h.in, h.g, h.st, h.logFile, h.ferryLog
	var trLog triggerLog
	tr := newTriggers(triggerConfig{Environment: "dev", NATSURL: natsURL, Log: trLog.log, Gateway: g, Metrics: g.triggerStats})
	t.Cleanup(tr.stop)

	n := int32(attempts)
	retry := &v1alpha1.RetryPolicy{Attempts: &n,
		Backoff: &metav1.Duration{Duration: 10 * time.Millisecond}, MaxBackoff: &metav1.Duration{Duration: 20 * time.Millisecond}}
	set := &manifests.Set{
		Functions:    []*v1alpha1.Function{h.fn},
		NATSTriggers: []*v1alpha1.NATSTrigger{testNATSTrigger("jobs", "hang", "jobs.hang", retry)},
	}
	if err := tr.apply(t.Context(), set, map[string]backend{"hang": in}); err != nil {
		t.Fatal(err)
	}
	if st != g.functionStats("dev", "hang") {
		t.Fatal("the trigger's calls and the gateway's do not share the function's count")
	}
	stats := g.triggerStats.Counters("dev", dispatch.KindNATS, "jobs")
	// A watcher samples the slots in use while the messages are handled.
	var maxSlots atomic.Int64
	stopWatch := make(chan struct{})
	var watched sync.WaitGroup
	watched.Go(func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(2 * time.Millisecond):
			}
			in.mu.Lock()
			slots := int64(in.inFlight)
			in.mu.Unlock()
			raise(&maxSlots, max(slots, st.inFlight.Load()))
		}
	})

	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	publish := func(data string) {
		m := nats.NewMsg("jobs.hang")
		m.Header.Set("Content-Type", "application/json")
		m.Data = []byte(data)
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	for range messages {
		publish(`"hang"`)
	}
	// why: each attempt takes about the timeout; the bound only catches
	// an attempt that waits for anything longer (the triggers' old minute).
	waitFor(t, 20*time.Second, "the hanging messages did not all fail", func() bool {
		return stats.Failures.Load() == messages
	})
	close(stopWatch)
	watched.Wait()

	if got := stats.Deliveries.Load(); got != messages {
		t.Errorf("%d deliveries counted, want %d: one per message", got, messages)
	}
	if got := stats.Retries.Load(); got != messages*(attempts-1) {
		t.Errorf("%d retries counted, want %d", got, messages*(attempts-1))
	}
	if n := maxSlots.Load(); n > concurrency {
		t.Errorf("%d slots were in use at once, more than the concurrency %d", n, concurrency)
	}
	t.Logf("at most %d slots in use; %d restarts; the triggers' log:\n%s", maxSlots.Load(), st.restarts.Load(), trLog.String())
	// Every failure is a timed-out attempt at the function's own timeout,
	// or one that found every slot held by such attempts.
	said := trLog.String()
	timedOut := 0
	for _, line := range strings.Split(said, "\n") {
		switch {
		case strings.Contains(line, "504 Gateway Timeout") && strings.Contains(line, "did not answer within 200ms"):
			timedOut++
		case strings.Contains(line, "no slot freed"):
		default:
			t.Errorf("a failure that is not a timeout of the function: %s", line)
		}
	}
	// why the gateway's count, not the log: the log has each message's
	// last error, and on a busy machine every message's last attempt may
	// be one that found the slots held; its first attempts timed out.
	if st.calls[5].Load() == 0 {
		t.Errorf("no attempt was answered 504 at the function's 200ms; the triggers' log:\n%s", said)
	}
	if st.restarts.Load() == 0 {
		t.Error("the overdue calls never restarted the function")
	}
	want := fmt.Sprintf("environment dev: function hang restarted: %d calls still running past their %s timeout (concurrency %d)", concurrency, timeout, concurrency)
	if s := ferryLog.String(); !strings.Contains(s, want) {
		t.Errorf("ferry's log does not say %q; it has:\n%s", want, s)
	}

	// Afterwards a message is delivered: to the restarted process, once
	// the overdue calls' slots are free.
	// why again and again: a message that comes while the overdue calls
	// still hold the slots (a busy machine stops the old process late)
	// fails its attempts and core NATS drops it; a later one gets in.
	sent, lastSent := 0, time.Time{}
	waitFor(t, time.Minute, "no message sent after the hanging ones reached the function", func() bool {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "got after") {
			return true
		}
		if time.Since(lastSent) > time.Second {
			publish(`"after"`)
			sent, lastSent = sent+1, time.Now()
		}
		return false
	})
	if n := st.inFlight.Load(); n > concurrency {
		t.Errorf("%d slots in use after the messages, more than the concurrency %d", n, concurrency)
	}
	// Each attempt is a call of the function, in its metrics and log.
	if got := st.calls[5].Load(); got < uint64(timedOut) {
		t.Errorf("%d calls answered 5xx in the gateway's count, want at least the %d timed out", got, timedOut)
	}
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), "POST / 504 ") {
		t.Errorf("the function's log has no access line of a timed-out attempt (%v):\n%s", err, b)
	}
	// Each message is one delivery; the hanging ones failed, and of those
	// sent after at least one did not.
	waitFor(t, time.Minute, "a message sent after the hanging ones was never counted", func() bool {
		return stats.Deliveries.Load() == uint64(messages+sent)
	})
	if got := stats.Failures.Load(); got < messages || got > uint64(messages+sent-1) {
		t.Errorf("%d failures counted, want the %d hanging messages and at most %d of the %d sent after", got, messages, sent-1, sent)
	}
}

// TestTriggerCronOverdue ticks a CronTrigger whose data makes a real
// Python function hang: each tick's one attempt ends at the function's
// timeout, counts as overdue and, with a concurrency of 1, restarts the
// function with the reason logged; once the trigger's data changes, a tick
// is delivered.
func TestTriggerCronOverdue(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	h := startHanging(t, 1, timeout)
	var trLog triggerLog
	tr := newTriggers(triggerConfig{Environment: "dev", Log: trLog.log, Gateway: h.g, Metrics: h.g.triggerStats})
	t.Cleanup(tr.stop)
	set := func(data string) *manifests.Set {
		return &manifests.Set{
			Functions:    []*v1alpha1.Function{h.fn},
			CronTriggers: []*v1alpha1.CronTrigger{testCronTrigger("tick", "hang", "@every 1s", data)},
		}
	}
	backends := map[string]backend{"hang": h.in}
	if err := tr.apply(t.Context(), set(`"hang"`), backends); err != nil {
		t.Fatal(err)
	}
	stats := h.g.triggerStats.Counters("dev", dispatch.KindCron, "tick")
	waitFor(t, 30*time.Second, "two hanging ticks did not fail", func() bool { return stats.Failures.Load() >= 2 })
	if err := tr.apply(t.Context(), set(`"after"`), backends); err != nil {
		t.Fatal(err)
	}
	said := trLog.String()
	for _, line := range strings.Split(said, "\n") {
		if !strings.Contains(line, "504 Gateway Timeout") || !strings.Contains(line, "did not answer within 200ms") {
			t.Errorf("a tick failed otherwise than by the function's 200ms timeout: %s", line)
		}
	}
	if h.st.restarts.Load() == 0 {
		t.Error("the overdue ticks never restarted the function")
	}
	want := "environment dev: function hang restarted: 1 calls still running past their 200ms timeout (concurrency 1)"
	if s := h.ferryLog.String(); !strings.Contains(s, want) {
		t.Errorf("ferry's log does not say %q; it has:\n%s", want, s)
	}
	waitFor(t, time.Minute, "no tick reached the function after its data changed", func() bool {
		b, _ := os.ReadFile(h.logFile)
		return strings.Contains(string(b), "got after")
	})
	if r := stats.Retries.Load(); r != 0 {
		t.Errorf("%d retries of a CronTrigger, which makes one attempt a tick", r)
	}
	if d, tk := stats.Deliveries.Load(), stats.Ticks.Load(); d > tk || d < 3 {
		t.Errorf("%d deliveries for %d ticks of one function, want one a tick and at least 3", d, tk)
	}
}

// hanging is a real Python function (hangPrinting) behind a gateway.
type hanging struct {
	in       *instance
	fn       *v1alpha1.Function // its manifest: timeout and concurrency
	g        *gateway
	st       *routeStats // its count in g
	logFile  string      // its log
	ferryLog *triggerLog // ferry's
}

func startHanging(t *testing.T, concurrency int, timeout time.Duration) *hanging {
	t.Helper()
	root, argv, env := interpretedRoot(t, "python", "", map[string][]byte{"main.py": []byte(hangPrinting)})
	spec := testSpec(t, root, argv, env)
	spec.Name = "hang"
	spec.Timeout = timeout
	logFile := filepath.Join(t.TempDir(), "hang.log")
	spec.Log = NewFunctionLog(logFile)
	ferryLog := &triggerLog{}
	in := &instance{key: "hang", name: "hang", spec: spec, timeout: timeout, idleFor: time.Hour,
		concurrency: concurrency, env: "dev", logf: ferryLog.log}
	startInstance(t, in)

	// The gateway routes the function too, so its count is the one the
	// trigger's calls share.
	g := newGateway()
	t.Cleanup(g.pool.closeAll)
	g.setRoutes("dev", []gatewayRoute{{Path: InvokePath("hang"), Function: "hang", Timeout: timeout, MaxInFlight: concurrency, Backend: in}})
	st := g.stats["dev"]["hang"]

	fn := testFunction("hang", nil)
	fn.Spec.Timeout = &metav1.Duration{Duration: timeout}
	c := int32(concurrency)
	fn.Spec.Scale = &v1alpha1.Scale{Concurrency: &c}
	return &hanging{in: in, fn: fn, g: g, st: st, logFile: logFile, ferryLog: ferryLog}
}

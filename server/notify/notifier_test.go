package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

// hang bounds a wait only to catch a hang: every wait here is for work
// of milliseconds.
const hang = 30 * time.Second

// request is one POST a receiver got.
type request struct {
	at     time.Time
	method string
	header http.Header
	body   []byte
}

// receiver is an httptest server that records each request and answers
// as answer says (nil: 200).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []request
	arrive chan request
	answer func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{arrive: make(chan request, 100), answer: answer}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		q := request{at: time.Now(), method: r.Method, header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, q)
		rc.mu.Unlock()
		select {
		case rc.arrive <- q:
		default: // a test that does not read them: count() still has it
		}
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// next waits for the receiver's next request.
func (rc *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case q := <-rc.arrive:
		return q
	case <-time.After(hang):
		t.Fatal("the receiver got nothing")
		return request{}
	}
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.got)
}

// logs collects a notifier's log lines.
type logs struct {
	mu    sync.Mutex
	lines []string
}

func (l *logs) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func openStore(t *testing.T, path string) *store.SQLite {
	t.Helper()
	st, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newStore(t *testing.T) *store.SQLite {
	st := openStore(t, filepath.Join(t.TempDir(), "ferry.db"))
	t.Cleanup(func() { st.Close() })
	return st
}

// run starts n until the test ends.
func run(t *testing.T, n *notify.Notifier) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func newNotifier(t *testing.T, cfg notify.Config) *notify.Notifier {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 10 * time.Millisecond
	}
	n, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func webhookSink(t *testing.T, name, url, secret string, f notify.Filter) notify.Sink {
	t.Helper()
	s, err := notify.NewWebhook(notify.WebhookConfig{Name: name, URL: url, Secret: secret, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func slackSink(t *testing.T, name, url string, f notify.Filter) notify.Sink {
	t.Helper()
	s, err := notify.NewSlack(notify.SlackConfig{Name: name, URL: url, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	failedRun = notify.Event{Kind: notify.RunFailed, Source: "demo", Repository: "https://git.example/demo.git",
		Branch: "main", Commit: "0123456789abcdef0123456789abcdef01234567", Run: 7,
		RunURL: "http://ferry.example/api/runs/7", Step: "build", Reason: "go build: exit status 1"}
	deployed = notify.Event{Kind: notify.Deployed, Source: "demo", Branch: "main",
		Commit: "0123456789abcdef0123456789abcdef01234567", Run: 8, RunURL: "http://ferry.example/api/runs/8",
		Environment: "staging", URL: "http://gw.example/staging/", Release: "sha256:abcdef0123456789",
		Functions: map[string]string{"hello": "sha256:1111"}}
)

// checkWebhook checks one generic webhook request against the documented
// shape and returns its body.
func checkWebhook(t *testing.T, q request, secret string) notify.WebhookBody {
	t.Helper()
	if q.method != http.MethodPost {
		t.Errorf("method %s; want POST", q.method)
	}
	if ct := q.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q; want application/json", ct)
	}
	if got, want := q.header.Get(notify.SignatureHeader), notify.Sign(q.body, secret); got != want {
		t.Errorf("signature %q; want %q, the HMAC-SHA256 of the body with the secret", got, want)
	}
	var b notify.WebhookBody
	dec := json.NewDecoder(strings.NewReader(string(q.body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("body %s: %v", q.body, err)
	}
	if q.header.Get("X-Ferry-Event") != string(b.Event) || q.header.Get("X-Ferry-Delivery") != b.ID || len(b.ID) != 32 {
		t.Errorf("X-Ferry-Event %q, X-Ferry-Delivery %q; want the body's event %q and id %q",
			q.header.Get("X-Ferry-Event"), q.header.Get("X-Ferry-Delivery"), b.Event, b.ID)
	}
	return b
}

func TestFailedRunAndDeployReachWebhookAndSlack(t *testing.T) {
	hook, chat := newReceiver(t, nil), newReceiver(t, nil)
	n := newNotifier(t, notify.Config{Outbox: newStore(t), Sinks: []notify.Sink{
		webhookSink(t, "hook", hook.srv.URL, "s3cret", notify.Filter{}),
		slackSink(t, "chat", chat.srv.URL+"/services/T0/B0/XXXX", notify.Filter{}),
	}})
	run(t, n)
	ctx := context.Background()
	n.Publish(ctx, failedRun)
	n.Publish(ctx, deployed)

	b := checkWebhook(t, hook.next(t), "s3cret")
	if b.Event != notify.RunFailed || b.Source != "demo" || b.Repository != failedRun.Repository || b.Commit != failedRun.Commit ||
		b.Run != 7 || b.RunURL != failedRun.RunURL || b.Step != "build" || b.Reason != failedRun.Reason || b.At.IsZero() {
		t.Errorf("first notice %+v; want the failed run's fields", b)
	}
	b = checkWebhook(t, hook.next(t), "s3cret")
	if b.Event != notify.Deployed || b.Environment != "staging" || b.URL != deployed.URL || b.Release != deployed.Release ||
		b.Functions["hello"] != "sha256:1111" || b.Run != 8 {
		t.Errorf("second notice %+v; want the deployment's fields", b)
	}

	for _, wants := range [][]string{
		{"<http://ferry.example/api/runs/7|Run #7> of *demo* failed (main@0123456", "at step build: go build: exit status 1"},
		{"deployed to <http://gw.example/staging/|staging>", "(<http://ferry.example/api/runs/8|Run #8>)"},
	} {
		q := chat.next(t)
		var m map[string]any
		if err := json.Unmarshal(q.body, &m); err != nil || q.method != http.MethodPost || q.header.Get("Content-Type") != "application/json" {
			t.Fatalf("Slack got %s %s (%s): %v", q.method, q.body, q.header.Get("Content-Type"), err)
		}
		text, _ := m["text"].(string)
		for _, want := range wants {
			if len(m) != 1 || !strings.Contains(text, want) {
				t.Errorf("Slack message %s; want only a text with %q", q.body, want)
			}
		}
	}
}

func TestFiltersByEventAndEnvironment(t *testing.T) {
	hook := newReceiver(t, nil)
	n := newNotifier(t, notify.Config{Outbox: newStore(t), Sinks: []notify.Sink{
		webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{Events: []notify.Kind{notify.Deployed, notify.RunFailed}, Environments: []string{"pr-*", "prod"}}),
	}})
	ctx := context.Background()
	// Left out: a kind not named, an environment not named.
	n.Publish(ctx, notify.Event{Kind: notify.Approved, Environment: "prod"})
	n.Publish(ctx, notify.Event{Kind: notify.Deployed, Environment: "staging"})
	n.Publish(ctx, notify.Event{Kind: notify.StepEnded, Step: "build"})
	// Heard: named environments, and a run's failure, which is about no
	// environment.
	n.Publish(ctx, notify.Event{Kind: notify.Deployed, Environment: "pr-3-demo"})
	n.Publish(ctx, notify.Event{Kind: notify.RunFailed, Run: 4})
	n.Publish(ctx, notify.Event{Kind: notify.Deployed, Environment: "prod"})
	run(t, n)
	// A sink's notices go in order, so what arrives before the last one
	// is all that was queued.
	var got []string
	for range 3 {
		b := checkWebhook(t, hook.next(t), "k")
		got = append(got, string(b.Event)+"/"+b.Environment)
	}
	want := []string{"deployed/pr-3-demo", "run.failed/", "deployed/prod"}
	if !slices.Equal(got, want) {
		t.Fatalf("heard %v; want %v", got, want)
	}
}

func TestDefaultFilterLeavesStepsOut(t *testing.T) {
	var f notify.Filter
	for _, k := range notify.Kinds {
		if f.Match(notify.Event{Kind: k}) != slices.Contains(notify.DefaultKinds, k) {
			t.Errorf("default filter on %s: %v", k, f.Match(notify.Event{Kind: k}))
		}
	}
	if f.Match(notify.Event{Kind: notify.StepEnded}) {
		t.Error("the default filter lets step events through")
	}
	if err := (notify.Filter{Events: []notify.Kind{"deploy"}}).Check(); err == nil || !strings.Contains(err.Error(), "deployed") {
		t.Errorf("check of an unknown kind: %v; want an error listing the kinds", err)
	}
	if err := (notify.Filter{Environments: []string{"pr-["}}).Check(); err == nil {
		t.Error("check of a malformed glob passed")
	}
}

func TestReceiverThatFailsThenRecoversGetsTheNotice(t *testing.T) {
	hook := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		}
	})
	st := newStore(t)
	n := newNotifier(t, notify.Config{Outbox: st, Sinks: []notify.Sink{webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{})}})
	run(t, n)
	n.Publish(context.Background(), deployed)
	first, second := checkWebhook(t, hook.next(t), "k"), checkWebhook(t, hook.next(t), "k")
	if first.ID != second.ID || second.Release != deployed.Release {
		t.Fatalf("retry sent %+v after %+v; want the same delivery again", second, first)
	}
	waitPending(t, st, "hook", 0)
	if c := hook.count(); c != 2 {
		t.Fatalf("receiver got %d requests; want 2 (a 502, then the 200)", c)
	}
}

// waitPending waits until sink has want notices in st.
func waitPending(t *testing.T, st store.Outbox, sink string, want int) {
	t.Helper()
	deadline := time.Now().Add(hang)
	for {
		p, err := st.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if p[sink] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending %v; want %d for %s", p, want, sink)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	chat := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate_limited", http.StatusTooManyRequests)
		}
	})
	n := newNotifier(t, notify.Config{Outbox: newStore(t), Sinks: []notify.Sink{slackSink(t, "chat", chat.srv.URL, notify.Filter{})}})
	run(t, n)
	n.Publish(context.Background(), deployed)
	first, second := chat.next(t), chat.next(t)
	if gap := second.at.Sub(first.at); gap < time.Second {
		t.Fatalf("second attempt %s after a 429 with Retry-After: 1; want no sooner than 1s", gap)
	}
	if string(first.body) != string(second.body) {
		t.Fatalf("retry sent %s, first %s; want the same message", second.body, first.body)
	}
}

func TestHangingReceiverSlowsNeitherPublishNorAnotherSink(t *testing.T) {
	release := make(chan struct{})
	dead := newReceiver(t, func(int, http.ResponseWriter, *http.Request) { <-release })
	t.Cleanup(func() { close(release) }) // before the server closes
	live := newReceiver(t, nil)
	n := newNotifier(t, notify.Config{Outbox: newStore(t), AttemptTimeout: time.Hour, Sinks: []notify.Sink{
		webhookSink(t, "dead", dead.srv.URL, "k", notify.Filter{}),
		webhookSink(t, "live", live.srv.URL, "k", notify.Filter{}),
	}})
	run(t, n)
	n.Publish(context.Background(), failedRun)
	dead.next(t) // the dead one holds its worker from here on
	published := make(chan struct{})
	go func() {
		n.Publish(context.Background(), deployed)
		close(published)
	}()
	select {
	case <-published:
	case <-time.After(hang):
		t.Fatal("Publish waits for a receiver that hangs")
	}
	if b := checkWebhook(t, live.next(t), "k"); b.Event != notify.RunFailed {
		t.Fatalf("live sink got %s first; want run.failed", b.Event)
	}
	if b := checkWebhook(t, live.next(t), "k"); b.Event != notify.Deployed {
		t.Fatalf("live sink got %s second; want deployed", b.Event)
	}
}

func TestRestartDeliversWhatWasQueued(t *testing.T) {
	hook := newReceiver(t, nil)
	path := filepath.Join(t.TempDir(), "ferry.db")
	st := openStore(t, path)
	n := newNotifier(t, notify.Config{Outbox: st, Sinks: []notify.Sink{webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{})}})
	n.Publish(context.Background(), deployed) // queued, never run: ferry stops
	st.Close()

	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	n = newNotifier(t, notify.Config{Outbox: st, Sinks: []notify.Sink{webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{})}})
	run(t, n)
	if b := checkWebhook(t, hook.next(t), "k"); b.Event != notify.Deployed || b.Release != deployed.Release {
		t.Fatalf("after the restart the receiver got %+v; want the deployment queued before", b)
	}
	waitPending(t, st, "hook", 0)
}

func TestRefusedNoticeIsDroppedAndLogged(t *testing.T) {
	hook := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 0 {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
		}
	})
	var lg logs
	st := newStore(t)
	n := newNotifier(t, notify.Config{Outbox: st, Log: lg.logf, Sinks: []notify.Sink{webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{})}})
	run(t, n)
	n.Publish(context.Background(), failedRun)
	n.Publish(context.Background(), deployed)
	if b := checkWebhook(t, hook.next(t), "k"); b.Event != notify.RunFailed {
		t.Fatalf("first %s", b.Event)
	}
	if b := checkWebhook(t, hook.next(t), "k"); b.Event != notify.Deployed {
		t.Fatalf("after a 400 the receiver got %s; want the next notice, the refused one dropped", b.Event)
	}
	waitPending(t, st, "hook", 0)
	if c := hook.count(); c != 2 {
		t.Fatalf("receiver got %d requests; want 2: a 400 is not retried", c)
	}
	out := lg.String()
	if strings.Count(out, "dropped") != 1 || !strings.Contains(out, "400 Bad Request") || !strings.Contains(out, "invalid_payload") {
		t.Fatalf("log:\n%s\nwant one line saying the notice was dropped and the receiver's answer", out)
	}
	if strings.Contains(out, hook.srv.URL) {
		t.Fatalf("log names the webhook's URL, which may be its secret:\n%s", out)
	}
}

func TestNoticeIsGivenUpAfterTheBound(t *testing.T) {
	hook := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	})
	var lg logs
	st := newStore(t)
	n := newNotifier(t, notify.Config{Outbox: st, Log: lg.logf, GiveUpAfter: 3 * time.Second, MaxBackoff: 200 * time.Millisecond,
		Sinks: []notify.Sink{webhookSink(t, "hook", hook.srv.URL, "k", notify.Filter{})}})
	run(t, n)
	n.Publish(context.Background(), deployed)
	waitPending(t, st, "hook", 0)
	if c := hook.count(); c < 2 {
		t.Fatalf("receiver got %d requests; want retries before giving up", c)
	}
	if !strings.Contains(lg.String(), "gave up") {
		t.Fatalf("log:\n%s\nwant a line saying the notice was given up", lg.String())
	}
}

// keyed is a sink whose every notice is about one key, as a commit
// status is.
type keyed struct {
	mu  sync.Mutex
	got []string
}

func (k *keyed) Name() string { return "keyed" }
func (k *keyed) Plan(ev notify.Event) ([]notify.Delivery, error) {
	return []notify.Delivery{{Key: "status", Body: []byte(ev.Kind)}}, nil
}
func (k *keyed) Deliver(_ context.Context, body []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.got = append(k.got, string(body))
	return nil
}

func TestNewestBodyOfAKeyWins(t *testing.T) {
	st := newStore(t)
	k := &keyed{}
	n := newNotifier(t, notify.Config{Outbox: st, Sinks: []notify.Sink{k}})
	for _, kind := range []notify.Kind{notify.StepStarted, notify.StepEnded, notify.RunSucceeded} {
		n.Publish(context.Background(), notify.Event{Kind: kind})
	}
	run(t, n)
	waitPending(t, st, "keyed", 0)
	k.mu.Lock()
	defer k.mu.Unlock()
	if !slices.Equal(k.got, []string{"run.succeeded"}) {
		t.Fatalf("delivered %v; want only the newest body of the key", k.got)
	}
}

func TestNewRefusesTwoSinksOfOneName(t *testing.T) {
	a := webhookSink(t, "same", "http://127.0.0.1:1/", "", notify.Filter{})
	b := slackSink(t, "same", "http://127.0.0.1:1/", notify.Filter{})
	if _, err := notify.New(notify.Config{Outbox: newStore(t), Sinks: []notify.Sink{a, b}}); err == nil || !strings.Contains(err.Error(), "same") {
		t.Fatalf("New with two sinks named same: %v; want an error naming it", err)
	}
}

func TestSlackTextEscapes(t *testing.T) {
	got := notify.SlackText(notify.Event{Kind: notify.Rejected, Environment: "prod", Release: "sha256:abcdef0123456789",
		Actor: "ann", Reason: "<!channel> & <b>"})
	if strings.Contains(got, "<!channel>") || !strings.Contains(got, "&lt;!channel&gt; &amp; &lt;b&gt;") || !strings.Contains(got, "by ann") {
		t.Fatalf("SlackText = %q; want the reason escaped and the actor named", got)
	}
}

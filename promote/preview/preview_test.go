package preview_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/promote/preview"
	"github.com/ferrycd/ferry/store"
)

// world is what the manager's callbacks reach in these tests: ferry's own
// seams, recorded. Git's answers (heads, open) and the Pipeline's
// (previews on, ttl) are set by each test.
type world struct {
	t    *testing.T
	path string
	st   *store.SQLite

	mu     sync.Mutex
	on     bool
	ttl    time.Duration
	heads  map[int]string // request number → head in Git
	closed map[int]bool
	now    time.Time
	calls  []string
	events []preview.Event
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, path: filepath.Join(t.TempDir(), "ferry.db"), on: true, ttl: 72 * time.Hour,
		heads: map[int]string{}, closed: map[int]bool{}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	w.open()
	t.Cleanup(func() { w.st.Close() })
	return w
}

func (w *world) open() {
	st, err := store.Open(context.Background(), w.path)
	if err != nil {
		w.t.Fatal(err)
	}
	w.st = st
}

// restart closes the store and opens its file again, as a restarted
// ferry does.
func (w *world) restart() {
	if err := w.st.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.open()
}

func (w *world) record(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
}

// taken returns the calls made since the last taken, and forgets them.
func (w *world) taken() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

func (w *world) told() []preview.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.events
	w.events = nil
	return e
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

func (w *world) push(n int, commit string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.heads[n] = commit
}

func (w *world) config() preview.Config {
	return preview.Config{
		Store: w.st,
		Enabled: func(ctx context.Context, source string) (bool, time.Duration, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.on, w.ttl, nil
		},
		Fetch: func(ctx context.Context, source string, n int) (string, bool, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.heads[n], !w.closed[n], nil
		},
		Enqueue: func(ctx context.Context, source string, n int, commit string) error {
			w.record("enqueue %s #%d %s", source, n, commit)
			return nil
		},
		Make: func(ctx context.Context, env string) error {
			w.record("make %s", env)
			return nil
		},
		Remove: func(ctx context.Context, env, _ string) error {
			w.record("remove %s", env)
			return nil
		},
		Tell: func(ev preview.Event) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.events = append(w.events, ev)
		},
		URL: func(env string) string { return "http://gateway.example.com/" + env },
		Now: func() time.Time {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.now
		},
		Log: w.t.Logf,
	}
}

func (w *world) manager(change func(*preview.Config)) *preview.Manager {
	w.t.Helper()
	cfg := w.config()
	if change != nil {
		change(&cfg)
	}
	m, err := preview.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

// handle hands m a pull request event and returns its answer.
func (w *world) handle(m *preview.Manager, ev store.PullEvent) string {
	w.t.Helper()
	if ev.Source == "" {
		ev.Source = "shop"
	}
	answer, err := m.Handle(context.Background(), ev)
	if err != nil {
		w.t.Fatalf("Handle(%+v): %v", ev, err)
	}
	return answer
}

func (w *world) preview(n int) store.Preview {
	w.t.Helper()
	p, err := w.st.GetPreview(context.Background(), "shop", n)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// hook is a webhook's event of a request from the base repository.
func hook(n int, action store.PullAction) store.PullEvent {
	return store.PullEvent{Number: n, Action: action, FromWebhook: true, Author: "bob", Sender: "bob",
		Title: "Faster", WebURL: fmt.Sprintf("https://github.example.com/acme/shop/pull/%d", n), Commit: "payload-sha"}
}

// forkHook is a webhook's event of a request from a fork.
func forkHook(n int, action store.PullAction, sender string) store.PullEvent {
	ev := hook(n, action)
	ev.Fork, ev.Sender = true, sender
	if action == store.PullLabeled {
		ev.Label = preview.DefaultLabel
	}
	return ev
}

// release is a release of commit whose one function hello runs image
// digest.
func release(commit, digest string) store.Release {
	manifest := "apiVersion: ferry.dev/v1alpha1\nkind: Function\nmetadata: {name: hello}\n" +
		"spec: {runtime: python, handler: main.handle, image: \"registry.example.com/shop@" + digest + "\"}\n"
	return store.Release{ID: "sha256:rel-" + commit, Source: "shop", Commit: commit, Manifest: []byte(manifest)}
}

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q; want %q", what, got, want)
	}
}

func kinds(evs []preview.Event) []string {
	var out []string
	for _, ev := range evs {
		s := string(ev.Kind)
		if ev.Reason != "" {
			s += ": " + ev.Reason
		}
		out = append(out, s+" "+ev.Preview.Environment)
	}
	return out
}

// Opening a request makes its preview and queues its head, the commit
// Git has (not the payload's); a push queues the new head; the deploy of
// the head makes it live and tells its URL and digests; closing removes
// it.
func TestOpenPushDeployClose(t *testing.T) {
	w := newWorld(t)
	m := w.manager(nil)
	ctx := context.Background()
	w.push(1, "c1")
	answer := w.handle(m, hook(1, store.PullOpened))
	if answer != "preview pr-1-shop opened: commit c1 is building" {
		t.Errorf("answer %q", answer)
	}
	same(t, "calls on open", w.taken(), []string{"make pr-1-shop", "enqueue shop #1 c1"})
	same(t, "told on open", kinds(w.told()), []string{"building pr-1-shop"})
	p := w.preview(1)
	if p.Head != "c1" || p.State != store.PreviewBuilding || p.Fork || p.Author != "bob" || p.TTL != 72*time.Hour || !p.Created.Equal(w.now) {
		t.Errorf("recorded %+v", p)
	}

	w.advance(time.Minute)
	w.push(1, "c2")
	w.handle(m, hook(1, store.PullUpdated))
	same(t, "calls on push", w.taken(), []string{"enqueue shop #1 c2"})

	// c1's run finishes late: not the head, so not told.
	if err := m.Deployed(ctx, "pr-1-shop", release("c1", digest('1'))); err != nil {
		t.Fatal(err)
	}
	if p := w.preview(1); p.State != store.PreviewBuilding {
		t.Errorf("after the older head deployed the preview is %s; want building still", p.State)
	}
	w.told()
	if err := m.Deployed(ctx, "pr-1-shop", release("c2", digest('2'))); err != nil {
		t.Fatal(err)
	}
	evs := w.told()
	if len(evs) != 1 || evs[0].Kind != preview.EventReady || evs[0].URL != "http://gateway.example.com/pr-1-shop" ||
		evs[0].Functions["hello"] != digest('2') || evs[0].Preview.Release != "sha256:rel-c2" {
		t.Fatalf("told %+v; want ready with its URL and hello's digest", evs)
	}
	if p := w.preview(1); p.State != store.PreviewLive || p.Head != "c2" {
		t.Errorf("after deploy: %+v", p)
	}
	// The same head again (a webhook delivered twice): nothing to do.
	if answer := w.handle(m, hook(1, store.PullUpdated)); !strings.Contains(answer, "at commit c2 already") {
		t.Errorf("answer to a repeated event %q", answer)
	}
	same(t, "calls on a repeated event", w.taken(), nil)

	if err := m.Failed(ctx, "pr-1-shop", "c1", "test failed"); err != nil {
		t.Fatal(err)
	}
	if p := w.preview(1); p.State != store.PreviewLive {
		t.Errorf("an older head's failure made the preview %s", p.State)
	}

	answer = w.handle(m, hook(1, store.PullClosed))
	if answer != "pull request 1 of shop is closed; preview pr-1-shop is torn down" {
		t.Errorf("answer %q", answer)
	}
	same(t, "calls on close", w.taken(), []string{"remove pr-1-shop"})
	same(t, "told on close", kinds(w.told()), []string{"torn down: closed pr-1-shop"})
	if p := w.preview(1); p.State != store.PreviewTornDown || p.TornReason != preview.ReasonClosed || !p.TornDown.Equal(w.now) {
		t.Errorf("after close: %+v", p)
	}
	// Closed twice (the poller sees the ref gone after the webhook).
	w.handle(m, hook(1, store.PullClosed))
	same(t, "calls on a second close", w.taken(), nil)
}

// A failed run of the head is recorded and told.
func TestFailedHead(t *testing.T) {
	w := newWorld(t)
	m := w.manager(nil)
	w.push(4, "c1")
	w.handle(m, hook(4, store.PullOpened))
	w.told()
	if err := m.Failed(context.Background(), "pr-4-shop", "c1", "test failed: hello"); err != nil {
		t.Fatal(err)
	}
	same(t, "told", kinds(w.told()), []string{"failed: test failed: hello pr-4-shop"})
	if p := w.preview(4); p.State != store.PreviewFailed || p.Reason != "test failed: hello" {
		t.Errorf("recorded %+v", p)
	}
}

// A source whose Pipeline does not enable previews gets an answer that
// says how, and nothing else happens.
func TestPreviewsOff(t *testing.T) {
	w := newWorld(t)
	w.on = false
	m := w.manager(nil)
	w.push(2, "c1")
	answer := w.handle(m, hook(2, store.PullOpened))
	if want := "previews are off for source shop (enable them in the repository's Pipeline: previews: {enabled: true})"; answer != want {
		t.Errorf("answer %q; want %q", answer, want)
	}
	same(t, "calls", w.taken(), nil)
	if list, err := m.List(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("previews %+v, %v; want none", list, err)
	}
}

// A fork's request, and one polled without a webhook to tell its
// origin, is not built.
func TestForkIsNotBuilt(t *testing.T) {
	w := newWorld(t)
	m := w.manager(nil)
	w.push(3, "c1")
	answer := w.handle(m, forkHook(3, store.PullOpened, "eve"))
	if !strings.Contains(answer, "comes from a fork") || !strings.Contains(answer, `"ferry/preview"`) {
		t.Errorf("answer %q", answer)
	}
	polled := store.PullEvent{Number: 3, Action: store.PullOpened, Commit: "c1"}
	w.handle(m, polled)
	same(t, "calls", w.taken(), nil)

	// Forks allowed by the configuration: built.
	m = w.manager(func(c *preview.Config) { c.Forks = true })
	w.handle(m, forkHook(3, store.PullOpened, "eve"))
	same(t, "calls with forks allowed", w.taken(), []string{"make pr-3-shop", "enqueue shop #3 c1"})
}

// A label added by an allowed user approves a fork's head; by anyone
// else it does not; the fork's next push needs the label again.
func TestForkLabel(t *testing.T) {
	w := newWorld(t)
	m := w.manager(func(c *preview.Config) { c.Labelers = []string{"Alice"} })
	w.push(5, "c1")
	w.handle(m, forkHook(5, store.PullOpened, "eve"))
	if answer := w.handle(m, forkHook(5, store.PullLabeled, "mallory")); !strings.Contains(answer, "not one of previews.labelers") {
		t.Errorf("answer to mallory's label %q", answer)
	}
	other := forkHook(5, store.PullLabeled, "alice")
	other.Label = "bug"
	w.handle(m, other)
	same(t, "calls before alice's preview label", w.taken(), nil)

	w.handle(m, forkHook(5, store.PullLabeled, "alice"))
	same(t, "calls on alice's label", w.taken(), []string{"make pr-5-shop", "enqueue shop #5 c1"})
	if p := w.preview(5); !p.Fork || p.Approved != "alice" {
		t.Errorf("recorded %+v; want a fork approved by alice", p)
	}

	w.told()
	w.push(5, "c2")
	if answer := w.handle(m, forkHook(5, store.PullUpdated, "eve")); !strings.Contains(answer, "again after each push") {
		t.Errorf("answer to the fork's push %q", answer)
	}
	if evs := w.told(); len(evs) != 1 || evs[0].Kind != preview.EventWaiting || evs[0].Preview.Head != "c2" || !strings.Contains(evs[0].Reason, "ferry/preview") {
		t.Errorf("told on the fork's push: %+v; want that c2 waits for the label", evs)
	}
	// The poller sees the same push: still not built.
	w.handle(m, store.PullEvent{Number: 5, Action: store.PullUpdated, Commit: "c2"})
	same(t, "calls on the fork's push", w.taken(), nil)
	if p := w.preview(5); p.Head != "c1" {
		t.Errorf("the preview's head is %s; want c1, the approved one", p.Head)
	}
	w.handle(m, forkHook(5, store.PullLabeled, "alice"))
	same(t, "calls on the second label", w.taken(), []string{"enqueue shop #5 c2"})
}

// A label approves the head its giver saw: a fork that pushes between
// the label and ferry's fetch is not built by it.
func TestLabelApprovesOnlyTheHeadLabelled(t *testing.T) {
	w := newWorld(t)
	m := w.manager(nil)
	w.push(8, "c1")
	w.handle(m, forkHook(8, store.PullOpened, "eve"))
	w.push(8, "c2") // eve pushes while alice labels what she saw, c1
	label := forkHook(8, store.PullLabeled, "alice")
	label.LabeledHead = "c1"
	if answer := w.handle(m, label); !strings.Contains(answer, "label it again") {
		t.Errorf("answer to a label given at c1 while the head is c2: %q", answer)
	}
	same(t, "calls on a label of an older head", w.taken(), nil)
	label.LabeledHead = "c2"
	w.handle(m, label)
	same(t, "calls on a label of the head", w.taken(), []string{"make pr-8-shop", "enqueue shop #8 c2"})
}

// A request that a webhook said is not a fork stays trusted when the
// poller sees its next push.
func TestPolledPushOfAKnownBaseRequest(t *testing.T) {
	w := newWorld(t)
	m := w.manager(nil)
	w.push(6, "c1")
	w.handle(m, hook(6, store.PullOpened))
	w.taken()
	w.handle(m, store.PullEvent{Number: 6, Action: store.PullUpdated, Commit: "c2"})
	same(t, "calls", w.taken(), []string{"enqueue shop #6 c2"})
}

// At the cap the longest idle preview is torn down, and told why.
func TestCapEvictsTheLongestIdle(t *testing.T) {
	w := newWorld(t)
	m := w.manager(func(c *preview.Config) { c.Max = 2 })
	ctx := context.Background()
	for n := 1; n <= 2; n++ {
		w.push(n, fmt.Sprintf("c%d", n))
		w.handle(m, hook(n, store.PullOpened))
		w.advance(time.Minute)
	}
	// #1 deploys last: #2 is the longest idle now.
	if err := m.Deployed(ctx, "pr-1-shop", release("c1", digest('1'))); err != nil {
		t.Fatal(err)
	}
	w.taken()
	w.told()
	w.push(3, "c3")
	w.handle(m, hook(3, store.PullOpened))
	same(t, "calls", w.taken(), []string{"remove pr-2-shop", "make pr-3-shop", "enqueue shop #3 c3"})
	want := "torn down: evicted: the cap of 2 previews was reached; the longest idle one goes pr-2-shop"
	same(t, "told", kinds(w.told()), []string{want, "building pr-3-shop"})
	if p := w.preview(2); p.State != store.PreviewTornDown || !strings.HasPrefix(p.TornReason, "evicted") {
		t.Errorf("#2 %+v", p)
	}
	// A push to a live preview at the cap evicts nothing.
	w.push(1, "c1b")
	w.handle(m, hook(1, store.PullUpdated))
	same(t, "calls on a push at the cap", w.taken(), []string{"enqueue shop #1 c1b"})
}

// A preview idle longer than its ttl (since its last push or deploy) is
// torn down.
// With a host's API to ask, a request it says is closed is torn down (a
// GitHub source polled without webhooks keeps a closed request's ref);
// one it cannot answer for is left alone.
func TestClosedOnTheHostIsTornDown(t *testing.T) {
	w := newWorld(t)
	answers := map[int]error{2: nil, 3: errors.New("502 Bad Gateway")}
	m := w.manager(func(c *preview.Config) {
		c.Open = func(_ context.Context, _ string, n int) (bool, bool, error) {
			if err, ok := answers[n]; ok {
				return false, err == nil, err
			}
			return true, true, nil
		}
	})
	for n := 1; n <= 3; n++ {
		w.push(n, fmt.Sprintf("c%d", n))
		w.handle(m, hook(n, store.PullOpened))
	}
	w.taken()
	w.told()
	if err := m.Collect(context.Background()); err != nil {
		t.Fatal(err)
	}
	same(t, "calls", w.taken(), []string{"remove pr-2-shop"})
	if p := w.preview(2); p.State != store.PreviewTornDown || p.TornReason != preview.ReasonClosed {
		t.Errorf("#2, closed on the host: %+v", p)
	}
	if p := w.preview(3); p.State == store.PreviewTornDown {
		t.Errorf("#3, which the host could not answer for, was torn down: %+v", p)
	}
}

func TestTTL(t *testing.T) {
	w := newWorld(t)
	w.ttl = time.Hour
	m := w.manager(nil)
	ctx := context.Background()
	w.push(8, "c1")
	w.handle(m, hook(8, store.PullOpened))
	w.taken()
	w.told()
	w.advance(50 * time.Minute)
	w.push(8, "c2")
	w.handle(m, hook(8, store.PullUpdated))
	w.taken()
	w.advance(40 * time.Minute) // 90 minutes open, 40 idle
	if err := m.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	same(t, "calls 40 minutes idle", w.taken(), nil)
	w.advance(21 * time.Minute)
	if err := m.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	same(t, "calls 61 minutes idle", w.taken(), []string{"remove pr-8-shop"})
	same(t, "told", kinds(w.told()), []string{"building pr-8-shop", "torn down: ttl pr-8-shop"})

	// Reopened, it is a new preview.
	w.handle(m, hook(8, store.PullOpened))
	same(t, "calls on reopening", w.taken(), []string{"make pr-8-shop", "enqueue shop #8 c2"})
	if p := w.preview(8); p.State != store.PreviewBuilding || !p.TornDown.IsZero() || !p.Created.Equal(w.now) {
		t.Errorf("reopened %+v", p)
	}
}

// A new manager on the same store (a restart) makes the previews'
// environments again, queues their heads again, and goes on from the
// state it finds.
func TestRestartKeepsState(t *testing.T) {
	w := newWorld(t)
	m := w.manager(func(c *preview.Config) { c.Labelers = []string{"alice"} })
	ctx := context.Background()
	w.push(1, "c1")
	w.handle(m, hook(1, store.PullOpened))
	if err := m.Deployed(ctx, "pr-1-shop", release("c1", digest('1'))); err != nil {
		t.Fatal(err)
	}
	w.push(2, "d1")
	w.handle(m, hook(2, store.PullOpened))
	w.push(3, "e1")
	w.handle(m, forkHook(3, store.PullOpened, "eve"))
	w.handle(m, forkHook(3, store.PullLabeled, "alice"))
	w.taken()

	w.restart()
	m = w.manager(func(c *preview.Config) { c.Labelers = []string{"alice"} })
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < 6; {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart, %d calls; want the previews made again", n)
		}
		time.Sleep(10 * time.Millisecond)
		w.mu.Lock()
		n = len(w.calls)
		w.mu.Unlock()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	calls := w.taken()
	slices.Sort(calls)
	same(t, "calls at start", calls, []string{"enqueue shop #1 c1", "enqueue shop #2 d1", "enqueue shop #3 e1", "make pr-1-shop", "make pr-2-shop", "make pr-3-shop"})

	// #1 is live at c1 still: the same head is nothing to do.
	w.handle(m, hook(1, store.PullUpdated))
	same(t, "calls for #1's same head", w.taken(), nil)
	// #3's approval was for e1: its next push waits for the label.
	w.push(3, "e2")
	w.handle(m, forkHook(3, store.PullUpdated, "eve"))
	same(t, "calls for the fork's push", w.taken(), nil)
	w.handle(m, hook(2, store.PullClosed))
	same(t, "calls on closing #2", w.taken(), []string{"remove pr-2-shop"})
}

func TestNewNeedsItsWiring(t *testing.T) {
	_, err := preview.New(preview.Config{})
	if err == nil || !strings.Contains(err.Error(), "[Enabled Enqueue Fetch Make Remove Store]") {
		t.Errorf("New with nothing: %v", err)
	}
}

package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/testenv"
)

// preview starts an embedded target for env behind a gateway of its own,
// as the server makes one when a pull request opens. It returns the
// target and the gateway's URL.
func (f *fixture) preview(env string) (environments.Target, string) {
	f.t.Helper()
	host, err := testenv.StartEmbedded(filepath.Join(f.t.TempDir(), env), env)
	if err != nil {
		f.t.Fatal(err)
	}
	target, err := host.Target(env)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := host.Stop(ctx); err != nil {
			f.t.Error(err)
		}
	})
	return target, host.Gateway
}

// withPreviews is cfg whose Target also knows the given previews.
func (f *fixture) withPreviews(cfg pipeline.Config, previews map[string]environments.Target) pipeline.Config {
	cfg.Target = func(env string) (environments.Target, error) {
		if t, ok := previews[env]; ok {
			return t, nil
		}
		return f.targetFor(env)
	}
	return cfg
}

// A pull request's run deploys to its preview pr-N-SOURCE, never to the
// first stage, and is not handed to promotion; its events name the
// request. A commit that is also the branch's gets a run of its own.
func TestPullRequestRunDeploysToItsPreview(t *testing.T) {
	f := newFixture(t)
	base := f.newSource("demo", nil)
	head := f.commit("demo", "faster", map[string]string{"NOTE": "from the pull request"})
	env := store.PreviewName("demo", 7)
	target, gateway := f.preview(env)

	var mu sync.Mutex
	var promoted, previewed []string
	var events []pipeline.Event
	cfg := f.withPreviews(f.config(), map[string]environments.Target{env: target})
	cfg.OnDeployed = func(run store.Run, rel store.Release, env string) {
		mu.Lock()
		defer mu.Unlock()
		promoted = append(promoted, fmt.Sprintf("run %d %s", run.ID, env))
	}
	cfg.OnPreviewDeployed = func(run store.Run, rel store.Release, env string) {
		mu.Lock()
		defer mu.Unlock()
		previewed = append(previewed, fmt.Sprintf("run %d #%d %s %s", run.ID, run.PullRequest, rel.ID, env))
	}
	cfg.Events = func(ev pipeline.Event) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	}
	ex, _ := f.start(cfg)
	ctx := context.Background()

	if _, err := ex.EnqueuePull(ctx, "demo", "main", head, 7); err == nil {
		t.Error("EnqueuePull took the branch main for pull request 7; want an error naming pull/7")
	}
	queued, err := ex.EnqueuePull(ctx, "demo", store.PullBranch(store.PullPrefixGitHub, 7), head, 7)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded || run.PullRequest != 7 || run.Branch != "pull/7" {
		t.Fatalf("run %s (%s), pull request %d, branch %s; logs:\n%v", run.Status, run.Reason, run.PullRequest, run.Branch, f.logs(run.ID))
	}
	if ds := f.deployments(); len(ds) != 0 {
		t.Errorf("dev deployments %+v; want none from a pull request", ds)
	}
	ds, err := f.st.ListDeployments(ctx, env, store.Page{})
	if err != nil || len(ds) != 1 || ds[0].RunID != run.ID || ds[0].Release != run.Release || ds[0].Status != store.DeploymentSucceeded {
		t.Fatalf("deployments of %s: %+v, %v; want run %d's release %s", env, ds, err, run.ID, run.Release)
	}
	if logs := f.logs(run.ID); !contains(logs[pipeline.StepDeploy], env+" now runs "+run.Release) {
		t.Errorf("deploy log: %q", logs[pipeline.StepDeploy])
	}
	body, err := getURL(gateway + "/" + env + "/hello")
	if err != nil || !strings.Contains(body, "hello from python") {
		t.Errorf("GET the preview: %q, %v", body, err)
	}
	mu.Lock()
	if len(promoted) != 0 {
		t.Errorf("OnDeployed heard %q; a preview is never promoted", promoted)
	}
	if want := fmt.Sprintf("run %d #7 %s %s", run.ID, run.Release, env); len(previewed) != 1 || previewed[0] != want {
		t.Errorf("OnPreviewDeployed heard %q; want %q", previewed, want)
	}
	deployedEv := false
	for _, ev := range events {
		if ev.Run.PullRequest != 7 {
			t.Errorf("event %s of run %d tells pull request %d; want 7", ev.Kind, ev.Run.ID, ev.Run.PullRequest)
		}
		if ev.Kind == pipeline.EventDeployed && ev.Environment == env {
			deployedEv = true
		}
	}
	if !deployedEv {
		t.Errorf("no %s event for %s among %d", pipeline.EventDeployed, env, len(events))
	}
	mu.Unlock()

	// The branch's own commit, then the same commit as a pull request's
	// head: two runs, one per place it deploys to.
	br, err := ex.Enqueue(ctx, "demo", "main", base)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := ex.EnqueuePull(ctx, "demo", "pull/7", base, 7)
	if err != nil {
		t.Fatal(err)
	}
	if br.ID == pr.ID {
		t.Fatalf("the branch's commit and the pull request's same commit share run %d", br.ID)
	}
	if r := wait(t, ex, br.ID); r.Status != store.StatusSucceeded {
		t.Errorf("branch run %s (%s)", r.Status, r.Reason)
	}
	if r := wait(t, ex, pr.ID); r.Status != store.StatusSucceeded {
		t.Errorf("pull request run %s (%s)", r.Status, r.Reason)
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].RunID != br.ID {
		t.Errorf("dev deployments %+v; want the branch run %d's only", ds, br.ID)
	}
	if live, err := f.st.GetEnvironment(ctx, env); err != nil || live.Release != wait(t, ex, pr.ID).Release {
		t.Errorf("%s runs %+v, %v; want the pull request's newest head", env, live, err)
	}
}

// A queued pull request's run is superseded by a newer head of the same
// request, not by the source's branch head nor by another request.
func TestPullRequestRunIsSupersededByItsNewerHeadOnly(t *testing.T) {
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	slow := fmt.Sprintf(`[sh, -c, "while [ ! -e %s ]; do sleep 0.05; done"]`, gate)
	c1 := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, slow)})
	c2 := f.commit("demo", "second", nil)
	c3 := f.commit("demo", "third", nil)
	c4 := f.commit("demo", "fourth", nil)
	env7, env8 := store.PreviewName("demo", 7), store.PreviewName("demo", 8)
	t7, _ := f.preview(env7)
	t8, _ := f.preview(env8)
	ex, _ := f.start(f.withPreviews(f.hostConfig(), map[string]environments.Target{env7: t7, env8: t8}))
	ctx := context.Background()

	r1, err := ex.EnqueuePull(ctx, "demo", "pull/7", c1, 7)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "pull request 7's first run to test", func() bool { return f.stepStatus(r1.ID, "test") == store.StatusRunning })
	r2, err := ex.EnqueuePull(ctx, "demo", "pull/7", c2, 7)
	if err != nil {
		t.Fatal(err)
	}
	// The branch head and another request come in meanwhile.
	main, err := ex.Enqueue(ctx, "demo", "main", c3)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ex.EnqueuePull(ctx, "demo", "pull/8", c3, 8)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := f.st.GetRun(ctx, r2.ID); err != nil || r.Status != store.StatusQueued {
		t.Fatalf("pull request 7's second run is %s (%v) before its request moved; want queued still", r.Status, err)
	}
	r4, err := ex.EnqueuePull(ctx, "demo", "pull/7", c4, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	got2 := wait(t, ex, r2.ID)
	if got2.Status != store.StatusSuperseded || got2.Reason != "superseded by "+store.Short(c4) {
		t.Errorf("pull request 7's queued run: %s (%q); want superseded by its newer head %s", got2.Status, got2.Reason, store.Short(c4))
	}
	for name, id := range map[string]int64{"pull request 7's first run": r1.ID, "its newer head": r4.ID, "the branch head": main.ID, "pull request 8": other.ID} {
		if r := wait(t, ex, id); r.Status != store.StatusSucceeded {
			t.Errorf("%s: %s (%s); want succeeded", name, r.Status, r.Reason)
		}
	}
	for env, want := range map[string]int64{env7: r4.ID, env8: other.ID, "dev": main.ID} {
		e, err := f.st.GetEnvironment(ctx, env)
		if r := wait(t, ex, want); err != nil || e.Release != r.Release {
			t.Errorf("%s runs %+v, %v; want run %d's release %s", env, e, err, want, r.Release)
		}
	}
}

// A pull request's run that was unfinished when ferry stopped ends
// superseded at start when the request's head moved (Config.PullHead),
// whatever the branch head.
func TestResumedPullRequestRunPastItsHeadEndsSuperseded(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", nil)
	ctx := context.Background()
	if err := f.st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	// The branch's head is the run's commit: that must not keep it.
	if _, err := f.st.RecordSourceEvent(ctx, store.SourceEvent{Source: "demo", Branch: "main", Commit: c1}); err != nil {
		t.Fatal(err)
	}
	r1, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "pull/7", Commit: c1, PullRequest: 7}, pipeline.Steps)
	if err != nil {
		t.Fatal(err)
	}
	r1.Status, r1.Started, r1.Steps = store.StatusRunning, time.Now(), nil
	if err := f.st.UpdateRun(ctx, r1); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.IsAncestor = f.isAncestor
	cfg.PullHead = func(ctx context.Context, source string, n int) (string, error) {
		if source == "demo" && n == 7 {
			return c2, nil
		}
		return "", nil
	}
	ex, _ := f.start(cfg)
	run := wait(t, ex, r1.ID)
	want := fmt.Sprintf("the head of pull request 7 of demo is %s now; ferry runs it instead of this run's commit %s", store.Short(c2), store.Short(c1))
	if run.Status != store.StatusSuperseded || run.Reason != want {
		t.Fatalf("run %s: %q; want superseded: %q", run.Status, run.Reason, want)
	}
}

// getURL is fixture.get for another gateway.
func getURL(url string) (string, error) {
	f := &fixture{gateway: url}
	return f.get("")
}

// A preview made again (its request reopened, or pushed to after an
// eviction) starts empty: the same head's run, done, deploys its release
// again rather than answering that it ran already.
func TestPreviewMadeAgainGetsTheSameHeadDeployed(t *testing.T) {
	f := newFixture(t)
	head := f.newSource("demo", nil)
	env := store.PreviewName("demo", 3)
	first, _ := f.preview(env)
	var mu sync.Mutex
	current := first
	deployed := 0
	cfg := f.config()
	cfg.Target = func(name string) (environments.Target, error) {
		mu.Lock()
		defer mu.Unlock()
		if name == env {
			return current, nil
		}
		return f.targetFor(name)
	}
	cfg.OnPreviewDeployed = func(store.Run, store.Release, string) {
		mu.Lock()
		defer mu.Unlock()
		deployed++
	}
	ex, _ := f.start(cfg)
	ctx := context.Background()
	queued, err := ex.EnqueuePull(ctx, "demo", "pull/3", head, 3)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s (%s)", run.Status, run.Reason)
	}
	// The same head again while the preview runs it: nothing to do.
	if again, err := ex.EnqueuePull(ctx, "demo", "pull/3", head, 3); err != nil || again.ID != run.ID || again.Status != store.StatusSucceeded {
		t.Fatalf("EnqueuePull of the live head = %+v, %v; want run %d as it is", again, err, run.ID)
	}

	// Torn down and made again: an empty target.
	second, _ := f.preview(env)
	mu.Lock()
	current = second
	mu.Unlock()
	again, err := ex.EnqueuePull(ctx, "demo", "pull/3", head, 3)
	if err != nil || again.ID != run.ID {
		t.Fatalf("EnqueuePull = %+v, %v; want run %d queued again", again, err, run.ID)
	}
	if r := wait(t, ex, run.ID); r.Status != store.StatusSucceeded {
		t.Fatalf("run deployed again: %s (%s)", r.Status, r.Reason)
	}
	st, err := second.Status(ctx)
	if err != nil || st.Release != run.Release {
		t.Errorf("the preview made again runs %+v, %v; want %s", st, err, run.Release)
	}
	mu.Lock()
	if deployed != 2 {
		t.Errorf("OnPreviewDeployed heard %d deploys; want 2", deployed)
	}
	mu.Unlock()
}

// A pull request's head whose run failed because ferry's infrastructure
// did runs again by itself, like a branch head: the request's head
// decides, not the source's branch head.
func TestInfraFailedPullRequestHeadRunsAgainByItself(t *testing.T) {
	f := newFixture(t)
	base := f.newSource("demo", nil)
	head := f.commit("demo", "pull request", map[string]string{"NOTE": "two"})
	ctx := context.Background()
	if err := f.st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutSourceStatus(ctx, store.SourceStatus{Source: "demo", LastCommit: base}); err != nil {
		t.Fatal(err)
	}
	env := store.PreviewName("demo", 2)
	target, _ := f.preview(env)
	cfg := f.withPreviews(f.config(), map[string]environments.Target{env: target})
	cfg.PullHead = func(ctx context.Context, source string, n int) (string, error) { return head, nil }
	cfg.Tree = f.unreadableOnce()
	ex, _ := f.start(cfg)
	q, err := ex.EnqueuePull(ctx, "demo", "pull/2", head, 2)
	if err != nil {
		t.Fatal(err)
	}
	if first := wait(t, ex, q.ID); first.Status != store.StatusFailed || !first.InfraFailed {
		t.Fatalf("run against an unreadable mirror: %s %q (marked %v); want failed, marked", first.Status, first.Reason, first.InfraFailed)
	}
	f.waitRanAgain(t, q.ID)
	if st, err := target.Status(ctx); err != nil || st.Release == "" {
		t.Errorf("%s runs %+v, %v; want the pull request's release", env, st, err)
	}
}

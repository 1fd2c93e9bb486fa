package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/store"
)

// errDiskFull is what SQLite says when the disk is full.
var errDiskFull = errors.New("database or disk is full (13)")

// flakyStore is the fixture's store whose writes of runs, steps, logs,
// releases, deployments and audit entries fail while refuse says so.
type flakyStore struct {
	*store.SQLite
	mu sync.Mutex
	// refuse decides, for a write named op, whether it fails.
	refuse func(op string) bool
	// onStep, when set, hears every step write before it happens.
	onStep func(s store.Step)
}

func (s *flakyStore) fails(op string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuse != nil && s.refuse(op)
}

func (s *flakyStore) setRefuse(f func(op string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = f
}

func (s *flakyStore) UpdateRun(ctx context.Context, r store.Run) error {
	if s.fails("run") {
		return fmt.Errorf("update run %d: %w", r.ID, errDiskFull)
	}
	return s.SQLite.UpdateRun(ctx, r)
}

func (s *flakyStore) UpdateStep(ctx context.Context, st store.Step) error {
	s.mu.Lock()
	on := s.onStep
	s.mu.Unlock()
	if on != nil {
		on(st)
	}
	if s.fails("step") {
		return fmt.Errorf("update step %q of run %d: %w", st.Name, st.RunID, errDiskFull)
	}
	return s.SQLite.UpdateStep(ctx, st)
}

func (s *flakyStore) AppendLog(ctx context.Context, runID int64, step string, lines ...string) error {
	if s.fails("log") {
		return errDiskFull
	}
	return s.SQLite.AppendLog(ctx, runID, step, lines...)
}

func (s *flakyStore) AppendEvent(ctx context.Context, e store.Event) (store.Event, error) {
	if s.fails("event") {
		return store.Event{}, errDiskFull
	}
	return s.SQLite.AppendEvent(ctx, e)
}

func (s *flakyStore) PutRelease(ctx context.Context, rel store.Release) (store.Release, bool, error) {
	if s.fails("release") {
		return store.Release{}, false, errDiskFull
	}
	return s.SQLite.PutRelease(ctx, rel)
}

func (s *flakyStore) RecordDeployment(ctx context.Context, d store.Deployment) (store.Deployment, error) {
	if s.fails("deployment") {
		return store.Deployment{}, errDiskFull
	}
	return s.SQLite.RecordDeployment(ctx, d)
}

// isAncestor is Config.IsAncestor from the fixture's repositories.
func (f *fixture) isAncestor(ctx context.Context, source, ancestor, descendant string) (bool, error) {
	f.mu.Lock()
	dir := f.repos[source]
	f.mu.Unlock()
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "merge-base", "--is-ancestor", ancestor, descendant)
	cmd.Env = gitEnv()
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return false, nil
	}
	return err == nil, err
}

// Every write of a run fails once before it succeeds: the run carries on
// as if nothing happened, and its log and audit entries are all there.
func TestStoreWritesAreRetried(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	flaky := &flakyStore{SQLite: f.st}
	tries := map[string]int{}
	flaky.setRefuse(func(op string) bool {
		tries[op]++
		return tries[op]%2 == 1
	})
	cfg := f.config()
	cfg.Store = flaky
	ex, _ := f.start(cfg)
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	flaky.setRefuse(nil)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s (%s); logs:\n%v", run.Status, run.Reason, f.logs(run.ID))
	}
	// A run's audit entries are written with its run, release and
	// deployment records, in the same transactions.
	for _, op := range []string{"run", "step", "log", "release", "deployment"} {
		if tries[op] < 2 {
			t.Errorf("%s written %d times; the test wants each refused once", op, tries[op])
		}
	}
	logs := f.logs(run.ID)
	for step, want := range map[string]string{
		pipeline.StepCheckout: "commit " + commit + " of demo/main",
		pipeline.StepBuild:    "hello  python  sha256:",
		pipeline.StepTest:     "hello | OK",
		pipeline.StepDeploy:   "dev now runs " + run.Release,
	} {
		if !contains(logs[step], want) {
			t.Errorf("log of %s has no %q:\n%s", step, want, strings.Join(logs[step], "\n"))
		}
	}
	events, err := f.st.ListEvents(context.Background(), "", store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(events) - 1; i >= 0; i-- {
		actions = append(actions, events[i].Action)
	}
	if got, want := strings.Join(actions, " "), "run.start release.create deploy run.end"; got != want {
		t.Errorf("audit log %q, want %q", got, want)
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].Release != run.Release {
		t.Errorf("deployments %+v; want one of %s", ds, run.Release)
	}
}

// The store refuses every write from the test step's first log line on,
// for longer than StoreRetry: the run stops there, nothing is released or
// deployed, and it is recorded failed, with why and what to do, once the
// store takes writes again. Enqueued again, it runs on from its test step
// and deploys.
func TestUnwritableStoreFailsTheRunThenItRunsAgain(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, `[sh, -c, "echo while the disk fills"]`)})
	flaky := &flakyStore{SQLite: f.st}
	flaky.onStep = func(s store.Step) {
		if s.Name == pipeline.StepTest && s.Status == store.StatusRunning {
			// The disk fills with the test's first line: that write and
			// every one after it fail.
			full := false
			flaky.setRefuse(func(op string) bool {
				full = full || op == "log"
				return full
			})
		}
	}
	ex, queued := runUntilStoreStops(t, f, flaky, commit)
	// The space comes back.
	flaky.mu.Lock()
	flaky.refuse, flaky.onStep = nil, nil
	flaky.mu.Unlock()

	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusFailed || !run.InfraFailed {
		t.Fatalf("run %s (store failed %v): %s; want failed for the store", run.Status, run.InfraFailed, run.Reason)
	}
	for _, want := range []string{"ferry could not record ", "database or disk is full", "free space on the data folder's disk; ferry runs the branch head again, with back-off, while it is the head"} {
		if !strings.Contains(run.Reason, want) {
			t.Errorf("reason %q does not say %q", run.Reason, want)
		}
	}
	st := steps(run)
	if st["test"].Status != store.StatusFailed || st["release"].Status != store.StatusQueued || st["deploy"].Status != store.StatusQueued {
		t.Errorf("steps test %s, release %s, deploy %s; want failed, queued, queued", st["test"].Status, st["release"].Status, st["deploy"].Status)
	}
	if rels := f.releases("demo"); len(rels) != 0 {
		t.Errorf("releases %+v; want none while the store refused", rels)
	}
	if ds := f.deployments(); len(ds) != 0 {
		t.Errorf("deployments %+v; want none", ds)
	}
	if !contains(f.logs(run.ID)["test"], "hello | while the disk fills") {
		t.Errorf("the test's lines written while the store refused are lost:\n%s", strings.Join(f.logs(run.ID)["test"], "\n"))
	}

	again, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != run.ID {
		t.Fatalf("enqueued again as run %d, want run %d again", again.ID, run.ID)
	}
	done := wait(t, ex, run.ID)
	if done.Status != store.StatusSucceeded || done.InfraFailed {
		t.Fatalf("run again: %s (store failed %v): %s", done.Status, done.InfraFailed, done.Reason)
	}
	if was, now := st["build"], steps(done)["build"]; !now.Started.Equal(was.Started) {
		t.Errorf("build ran again (started %v, before %v); want it kept", now.Started, was.Started)
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].RunID != run.ID {
		t.Errorf("deployments %+v; want one by run %d", ds, run.ID)
	}
}

// A run of an older commit that reaches its deploy after a newer commit
// of the branch is live in dev is not deployed: it ends superseded,
// saying which commit dev runs.
func TestOlderCommitIsNotDeployedOverNewer(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", map[string]string{"NOTE": "two"})
	cfg := f.config()
	cfg.IsAncestor = f.isAncestor
	ex, _ := f.start(cfg)
	ctx := context.Background()
	q2, err := ex.Enqueue(ctx, "demo", "main", c2)
	if err != nil {
		t.Fatal(err)
	}
	r2 := wait(t, ex, q2.ID)
	if r2.Status != store.StatusSucceeded {
		t.Fatalf("run of c2 %s: %s", r2.Status, r2.Reason)
	}
	q1, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	r1 := wait(t, ex, q1.ID)
	want := fmt.Sprintf("dev already runs %s (newer on main); this run's commit %s is older", store.Short(c2), store.Short(c1))
	if r1.Status != store.StatusSuperseded || r1.Reason != want {
		t.Fatalf("run of c1 %s: %q; want superseded: %q", r1.Status, r1.Reason, want)
	}
	if s := steps(r1)["deploy"]; s.Status != store.StatusSkipped || s.Reason != want {
		t.Errorf("deploy step %s: %q", s.Status, s.Reason)
	}
	env, err := f.st.GetEnvironment(ctx, "dev")
	if err != nil || env.Release != r2.Release {
		t.Errorf("dev runs %q (%v); want c2's %s", env.Release, err, r2.Release)
	}
	if ds := f.deployments(); len(ds) != 1 {
		t.Errorf("deployments %+v; want c2's only", ds)
	}
}

// A run that was running when ferry stopped, whose commit the branch head
// has moved past, ends superseded at the next start instead of resuming.
func TestResumedRunPastByTheBranchEndsSuperseded(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", map[string]string{"NOTE": "two"})
	ctx := context.Background()
	if err := f.st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordSourceEvent(ctx, store.SourceEvent{Source: "demo", Branch: "main", Previous: c1, Commit: c2}); err != nil {
		t.Fatal(err)
	}
	// ferry stopped in c1's test step.
	r1, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: c1}, pipeline.Steps)
	if err != nil {
		t.Fatal(err)
	}
	r1.Status, r1.Started, r1.Steps = store.StatusRunning, time.Now(), nil
	if err := f.st.UpdateRun(ctx, r1); err != nil {
		t.Fatal(err)
	}
	if err := f.st.UpdateStep(ctx, store.Step{RunID: r1.ID, Name: pipeline.StepTest, Index: 3, Status: store.StatusRunning, Started: time.Now()}); err != nil {
		t.Fatal(err)
	}

	cfg := f.config()
	cfg.IsAncestor = f.isAncestor
	ex, _ := f.start(cfg)
	run := wait(t, ex, r1.ID)
	want := fmt.Sprintf("the head of demo/main is %s, which descends from this run's commit %s; ferry runs the head instead", store.Short(c2), store.Short(c1))
	if run.Status != store.StatusSuperseded || run.Reason != want {
		t.Fatalf("run %s: %q; want superseded: %q", run.Status, run.Reason, want)
	}
	for _, s := range run.Steps {
		if !s.Status.Done() {
			t.Errorf("step %s is %s; want every step done", s.Name, s.Status)
		}
	}
	if rels := f.releases("demo"); len(rels) != 0 {
		t.Errorf("releases %+v; want none", rels)
	}
}

// Without Git to ask, a run unfinished at start ends superseded when a
// newer run of its branch deployed already.
func TestResumedRunBehindADeployedRunEndsSuperseded(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", map[string]string{"NOTE": "two"})
	ctx := context.Background()
	r1, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: c1}, pipeline.Steps)
	if err != nil {
		t.Fatal(err)
	}
	r1.Status, r1.Started, r1.Steps = store.StatusRunning, time.Now(), nil
	if err := f.st.UpdateRun(ctx, r1); err != nil {
		t.Fatal(err)
	}
	r2, _, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: c2}, pipeline.Steps)
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := f.st.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("2", 64), Source: "demo", Commit: c2, Ref: "registry.example.com/demo@sha256:" + strings.Repeat("2", 64), Manifest: []byte("{}"), RunID: r2.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordDeployment(ctx, store.Deployment{Environment: "dev", Release: rel.ID, Actor: pipeline.Actor, RunID: r2.ID, Status: store.DeploymentSucceeded}); err != nil {
		t.Fatal(err)
	}
	r2.Status, r2.Release, r2.Ended, r2.Steps = store.StatusSucceeded, rel.ID, time.Now(), nil
	if err := f.st.UpdateRun(ctx, r2); err != nil {
		t.Fatal(err)
	}

	ex, _ := f.start(f.config())
	run := wait(t, ex, r1.ID)
	want := fmt.Sprintf("run %d deployed the newer commit %s of demo/main already; this run's commit %s is older", r2.ID, store.Short(c2), store.Short(c1))
	if run.Status != store.StatusSuperseded || run.Reason != want {
		t.Fatalf("run %s: %q; want superseded: %q", run.Status, run.Reason, want)
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].RunID != r2.ID {
		t.Errorf("deployments %+v; want run %d's only", ds, r2.ID)
	}
}

// refusingSuperseded is the fixture's store refusing the first writes of
// a run as superseded, as a full disk would.
type refusingSuperseded struct {
	*store.SQLite
	mu      sync.Mutex
	refuse  int // writes still to refuse
	refused int
}

func (s *refusingSuperseded) UpdateRun(ctx context.Context, r store.Run) error {
	s.mu.Lock()
	if r.Status == store.StatusSuperseded && s.refuse > 0 {
		s.refuse--
		s.refused++
		s.mu.Unlock()
		return fmt.Errorf("update run %d: %w", r.ID, errDiskFull)
	}
	s.mu.Unlock()
	return s.SQLite.UpdateRun(ctx, r)
}

// A queued run superseded by a newer one while the store refuses to
// record it: the write is tried again until the store takes it, so the
// superseded run does not stay queued in the store after its newer run
// ran.
func TestSupersededRunIsRecordedWhenTheStoreRefusedIt(t *testing.T) {
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	slow := fmt.Sprintf(`[sh, -c, "while [ ! -e %s ]; do sleep 0.05; done"]`, gate)
	c1 := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, slow)})
	st := &refusingSuperseded{SQLite: f.st, refuse: 3}
	cfg := f.hostConfig()
	cfg.Store = st
	ex, _ := f.start(cfg)
	ctx := context.Background()
	r1, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "run 1 to test", func() bool { return f.stepStatus(r1.ID, "test") == store.StatusRunning })
	r2, err := ex.Enqueue(ctx, "demo", "main", f.commit("demo", "second", nil))
	if err != nil {
		t.Fatal(err)
	}
	c3 := f.commit("demo", "third", nil)
	r3, err := ex.Enqueue(ctx, "demo", "main", c3)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, ex, r3.ID); got.Status != store.StatusSucceeded {
		t.Fatalf("run 3 %s: %s", got.Status, got.Reason)
	}
	got, err := f.st.GetRun(ctx, r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.StatusSuperseded || got.Reason != "superseded by "+c3[:12] {
		t.Errorf("run 2 in the store after run 3 ran: %s (%q); want superseded by %s", got.Status, got.Reason, c3[:12])
	}
	for _, s := range got.Steps {
		if s.Status != store.StatusSkipped {
			t.Errorf("step %s of the superseded run is %s", s.Name, s.Status)
		}
	}
	// Its entry was written with it, once, whatever the refusals.
	evs, err := f.st.ListEvents(ctx, fmt.Sprintf("run/%d", r2.ID), store.Page{Limit: store.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	var supersede int
	for _, ev := range evs {
		if ev.Action == "run.supersede" {
			supersede++
		}
	}
	if supersede != 1 {
		t.Errorf("run 2 has %d run.supersede entries, want 1: %+v", supersede, evs)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refused != 3 {
		t.Errorf("the store refused %d writes of the superseded run; want 3 (the test's premise)", st.refused)
	}
}

// The branch is force-pushed back from c2 to c1, whose run deployed
// before c2's: enqueueing the head c1 deploys c1's release again through
// its run's deploy step, with an audit entry; enqueueing it once more
// (as every start does) changes nothing.
func TestHeadForcePushedBackDeploysAgain(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", map[string]string{"NOTE": "two"})
	ctx := context.Background()
	if err := f.st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	head := func(c string) {
		if err := f.st.PutSourceStatus(ctx, store.SourceStatus{Source: "demo", LastCommit: c}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := f.config()
	cfg.IsAncestor = f.isAncestor
	ex, _ := f.start(cfg)
	var runs []store.Run
	for _, c := range []string{c1, c2} {
		head(c)
		q, err := ex.Enqueue(ctx, "demo", "main", c)
		if err != nil {
			t.Fatal(err)
		}
		if r := wait(t, ex, q.ID); r.Status != store.StatusSucceeded {
			t.Fatalf("run of %s: %s %s", c[:12], r.Status, r.Reason)
		}
		r, err := f.st.GetRun(ctx, q.ID)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}

	head(c1)
	q, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	if q.ID != runs[0].ID || q.Status != store.StatusQueued {
		t.Fatalf("enqueueing the head c1 again: run %d %s; want run %d queued again", q.ID, q.Status, runs[0].ID)
	}
	again := wait(t, ex, q.ID)
	if again.Status != store.StatusSucceeded || again.Release != runs[0].Release {
		t.Fatalf("c1's run deploying again: %s %q, release %s", again.Status, again.Reason, again.Release)
	}
	if env, err := f.st.GetEnvironment(ctx, "dev"); err != nil || env.Release != runs[0].Release {
		t.Errorf("dev runs %q (%v); want c1's %s", env.Release, err, runs[0].Release)
	}
	for i := range 5 {
		if !again.Steps[i].Started.Equal(runs[0].Steps[i].Started) {
			t.Errorf("step %s ran again", again.Steps[i].Name)
		}
	}
	events, err := f.st.ListEvents(ctx, fmt.Sprintf("run/%d", q.ID), store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var redeploys int
	for _, ev := range events {
		if ev.Action == "run.redeploy" && ev.Actor == pipeline.Actor && strings.Contains(ev.Detail, "is back at "+c1[:12]) {
			redeploys++
		}
	}
	if redeploys != 1 {
		t.Errorf("%d run.redeploy entries; want 1: %+v", redeploys, events)
	}

	once, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil || once.Status != store.StatusSucceeded {
		t.Errorf("enqueueing the live head again: %+v, %v; want it as it is", once, err)
	}
	if ds := f.deployments(); len(ds) != 3 {
		t.Errorf("%d deployments; want 3 (c1, c2, c1 again)", len(ds))
	}
}

// The commit's tree cannot be read at first (ferry's mirror, not the
// repository): the run fails marked as failed by ferry's infrastructure,
// and, its commit being the branch head, runs again by itself after the
// back-off, from its checkout, and succeeds. A manifest that does not
// load is the repository's fault: not marked, not run again.
func TestInfraFailedHeadRunsAgainByItself(t *testing.T) {
	f := newFixture(t)
	c1 := f.newSource("demo", nil)
	ctx := context.Background()
	if err := f.st.PutSource(ctx, store.Source{Name: "demo", URL: "https://git.example.com/demo", Branch: "main", Interval: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutSourceStatus(ctx, store.SourceStatus{Source: "demo", LastCommit: c1}); err != nil {
		t.Fatal(err)
	}
	cfg := f.config()
	cfg.Tree = f.unreadableOnce()
	ex, _ := f.start(cfg)
	q, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	first := wait(t, ex, q.ID)
	if first.Status != store.StatusFailed || !first.InfraFailed || !strings.Contains(first.Reason, "the mirror is not readable") {
		t.Fatalf("run against an unreadable mirror: %s %q (marked %v); want failed, marked", first.Status, first.Reason, first.InfraFailed)
	}
	f.waitRanAgain(t, q.ID)

	bad := f.commit("demo", "bad manifest", map[string]string{"ferry.yaml": "kind: Nonsense\n"})
	if err := f.st.PutSourceStatus(ctx, store.SourceStatus{Source: "demo", LastCommit: bad}); err != nil {
		t.Fatal(err)
	}
	qb, err := ex.Enqueue(ctx, "demo", "main", bad)
	if err != nil {
		t.Fatal(err)
	}
	if r := wait(t, ex, qb.ID); r.Status != store.StatusFailed || r.InfraFailed {
		t.Errorf("run of a bad manifest: %s %q (marked %v); want failed, not marked", r.Status, r.Reason, r.InfraFailed)
	}
}

// runUntilStoreStops starts an executor on flaky, whose refusals the
// caller has set, with a short StoreRetry, enqueues commit of demo/main
// and waits until the run stops because the store refused it for too long.
func runUntilStoreStops(t *testing.T, f *fixture, flaky *flakyStore, commit string) (pipeline.Executor, store.Run) {
	t.Helper()
	stopped := make(chan struct{})
	var once sync.Once
	cfg := f.config()
	cfg.Store = flaky
	cfg.StoreRetry = 300 * time.Millisecond
	cfg.Log = func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		t.Log("ferry: " + line)
		if strings.Contains(line, " stops: ") {
			once.Do(func() { close(stopped) })
		}
	}
	ex, _ := f.start(cfg)
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run did not stop for the store")
	}
	return ex, queued
}

package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/store"
)

// A commit goes all the way: checked out, validated, built, tested,
// released and deployed to dev, where the function answers.
func TestCommitDeploysToDev(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	var mu sync.Mutex
	var deployed []string
	cfg := f.config()
	cfg.OnDeployed = func(run store.Run, rel store.Release, env string) {
		mu.Lock()
		defer mu.Unlock()
		deployed = append(deployed, fmt.Sprintf("run %d %s %s", run.ID, rel.ID, env))
	}
	ex, _ := f.start(cfg)

	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s (%s); logs:\n%v", run.Status, run.Reason, f.logs(run.ID))
	}
	if run.Started.IsZero() || run.Ended.Before(run.Started) {
		t.Errorf("run times: started %v, ended %v", run.Started, run.Ended)
	}
	if len(run.Steps) != len(pipeline.Steps) {
		t.Fatalf("%d steps, want %d", len(run.Steps), len(pipeline.Steps))
	}
	for i, s := range run.Steps {
		if s.Name != pipeline.Steps[i] || s.Status != store.StatusSucceeded || s.Started.IsZero() || s.Ended.Before(s.Started) {
			t.Errorf("step %d: %+v; want %s succeeded with its times", i, s, pipeline.Steps[i])
		}
	}

	logs := f.logs(run.ID)
	rels := f.releases("demo")
	if len(rels) != 1 {
		t.Fatalf("%d releases, want 1", len(rels))
	}
	rel := rels[0]
	if rel.Commit != commit || rel.RunID != run.ID || run.Release != rel.ID || !strings.HasPrefix(rel.ID, "sha256:") {
		t.Errorf("release %+v of run %+v", rel, run)
	}
	for step, want := range map[string]string{
		pipeline.StepCheckout: "commit " + commit + " of demo/main",
		pipeline.StepValidate: "ferry.yaml: 1 function (hello), 1 trigger; releases go to dev first",
		pipeline.StepBuild:    "hello  python  sha256:",
		pipeline.StepTest:     "hello | OK",
		pipeline.StepRelease:  "release " + rel.ID + " at " + rel.Ref,
		pipeline.StepDeploy:   "dev now runs " + rel.ID,
	} {
		if !contains(logs[step], want) {
			t.Errorf("log of %s has no %q:\n%s", step, want, strings.Join(logs[step], "\n"))
		}
	}
	for step, want := range map[string]string{
		pipeline.StepDeploy: "hello  " + f.gateway + "/dev/hello",
	} {
		if !contains(logs[step], want) {
			t.Errorf("log of %s has no %q:\n%s", step, want, strings.Join(logs[step], "\n"))
		}
	}
	if !contains(logs[pipeline.StepTest], "hello | $ python3 -m unittest -v") || !contains(logs[pipeline.StepTest], "hello | passed in") {
		t.Errorf("test log:\n%s", strings.Join(logs[pipeline.StepTest], "\n"))
	}
	builds, err := f.st.ListBuilds(context.Background(), "demo", commit)
	if err != nil || len(builds) != 1 || !strings.Contains(builds[0].Image, "@sha256:") {
		t.Errorf("builds %+v, %v", builds, err)
	}

	ds := f.deployments()
	if len(ds) != 1 || ds[0].Release != rel.ID || ds[0].Status != "succeeded" || ds[0].RunID != run.ID || ds[0].Actor != "ferry" || ds[0].Previous != "" {
		t.Errorf("deployments %+v", ds)
	}
	env, err := f.st.GetEnvironment(context.Background(), "dev")
	if err != nil || env.Release != rel.ID {
		t.Errorf("dev %+v, %v; want it running %s", env, err, rel.ID)
	}
	body, err := f.get("/dev/hello")
	if err != nil || !strings.Contains(body, "hello from python") {
		t.Errorf("GET /dev/hello: %q, %v", body, err)
	}
	mu.Lock()
	if want := fmt.Sprintf("run %d %s dev", run.ID, rel.ID); len(deployed) != 1 || deployed[0] != want {
		t.Errorf("OnDeployed heard %q, want %q", deployed, want)
	}
	mu.Unlock()

	events, err := f.st.ListEvents(context.Background(), "", store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for i := len(events) - 1; i >= 0; i-- {
		actions = append(actions, events[i].Action+" "+events[i].Object)
	}
	want := []string{"run.start run/" + fmt.Sprint(run.ID), "release.create release/" + rel.ID, "deploy env/dev", "run.end run/" + fmt.Sprint(run.ID)}
	if strings.Join(actions, ", ") != strings.Join(want, ", ") {
		t.Errorf("audit log %q, want %q", actions, want)
	}
}

// A commit whose manifest is invalid fails at validate with the
// file:line of each problem in the log, builds nothing, makes no release,
// and dev keeps serving what it served.
func TestInvalidManifestFailsAtValidate(t *testing.T) {
	f := newFixture(t)
	good := f.newSource("demo", nil)
	ex, _ := f.start(f.config())
	first, err := ex.Enqueue(context.Background(), "demo", "main", good)
	if err != nil {
		t.Fatal(err)
	}
	if run := wait(t, ex, first.ID); run.Status != store.StatusSucceeded {
		t.Fatalf("first run %s: %s", run.Status, run.Reason)
	}
	live := f.releases("demo")[0].ID

	m := exampleManifest(t)
	bad := f.commit("demo", "python2", map[string]string{"ferry.yaml": strings.Replace(m, "runtime: python", "runtime: python2", 1)})
	line := 1 + strings.Count(m[:strings.Index(m, "runtime: python")], "\n")
	queued, err := ex.Enqueue(context.Background(), "demo", "main", bad)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusFailed || !strings.HasPrefix(run.Reason, "validate failed: ferry.yaml:") || !strings.Contains(run.Reason, "python2") {
		t.Errorf("run %s, reason %q; want failed at validate naming ferry.yaml and python2", run.Status, run.Reason)
	}
	st := steps(run)
	if st["checkout"].Status != store.StatusSucceeded || st["validate"].Status != store.StatusFailed {
		t.Errorf("steps %+v", run.Steps)
	}
	for _, name := range []string{"build", "test", "release", "deploy"} {
		if st[name].Status != store.StatusSkipped {
			t.Errorf("step %s is %s, want skipped", name, st[name].Status)
		}
	}
	logs := f.logs(run.ID)
	if want := fmt.Sprintf("ferry.yaml:%d:", line); !contains(logs["validate"], want) {
		t.Errorf("validate log has no %q:\n%s", want, strings.Join(logs["validate"], "\n"))
	}
	if len(logs["build"]) != 0 {
		t.Errorf("build logged %q", logs["build"])
	}
	if builds, err := f.st.ListBuilds(context.Background(), "demo", bad); err != nil || len(builds) != 0 {
		t.Errorf("builds of the bad commit: %+v, %v", builds, err)
	}
	if _, err := f.st.ReleaseForCommit(context.Background(), "demo", bad); err == nil {
		t.Error("the bad commit has a release")
	}
	if ds := f.deployments(); len(ds) != 1 {
		t.Errorf("%d deployments, want the first only", len(ds))
	}
	if env, err := f.st.GetEnvironment(context.Background(), "dev"); err != nil || env.Release != live {
		t.Errorf("dev %+v, %v; want it still on %s", env, err, live)
	}
	if body, err := f.get("/dev/hello"); err != nil || !strings.Contains(body, "hello from python") {
		t.Errorf("GET /dev/hello: %q, %v", body, err)
	}
}

// A failing test fails the run at test: no release, no deployment.
func TestFailingTestStopsTheRelease(t *testing.T) {
	f := newFixture(t)
	test, err := os.ReadFile("../examples/python/hello/test_main.py")
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(test), `self.assertEqual(answer["echo"], data)`, `self.assertEqual(answer["echo"], "not what it echoes")`, 1)
	if broken == string(test) {
		t.Fatal("the example's test changed: nothing to break")
	}
	commit := f.newSource("demo", map[string]string{"hello/test_main.py": broken})
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusFailed || !strings.HasPrefix(run.Reason, "test failed: function hello: test python3 -m unittest -v failed with exit status 1") {
		t.Errorf("run %s, reason %q", run.Status, run.Reason)
	}
	st := steps(run)
	if st["build"].Status != store.StatusSucceeded || st["test"].Status != store.StatusFailed || st["release"].Status != store.StatusSkipped || st["deploy"].Status != store.StatusSkipped {
		t.Errorf("steps %+v", run.Steps)
	}
	logs := f.logs(run.ID)["test"]
	if !contains(logs, "hello | FAILED (failures=") || !contains(logs, "exit status 1") {
		t.Errorf("test log:\n%s", strings.Join(logs, "\n"))
	}
	if len(f.releases("demo")) != 0 || len(f.deployments()) != 0 {
		t.Error("a failed test made a release or a deployment")
	}
}

// A test that runs past its timeout is killed with everything it started,
// and fails the run.
func TestTestTimeoutKillsTheProcessGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("looks for the killed process in /proc")
	}
	f := newFixture(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The test starts a grandchild that would outlive a kill of the
	// shell alone.
	cmd := fmt.Sprintf(`[sh, -c, "sleep 60 & echo $! > %s; echo waiting; wait"]`, pidFile)
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, cmd)})
	cfg := f.hostConfig()
	cfg.TestTimeout = 5 * time.Second // the test's start must fit well within it on a busy machine
	ex, _ := f.start(cfg)
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusFailed || !strings.Contains(run.Reason, "did not finish within 5s") {
		t.Errorf("run %s, reason %q", run.Status, run.Reason)
	}
	if !contains(f.logs(run.ID)["test"], "hello | waiting") {
		t.Errorf("test log %q", f.logs(run.ID)["test"])
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(data), &pid)
	waitFor(t, "the test's grandchild to be gone", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return os.IsNotExist(err) || zombie(pid)
	})
}

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] == 'Z'
}

// While a run holds its branch, commits that come in wait; a newer one
// supersedes those that wait, and runs.
func TestNewerCommitSupersedesQueuedOnes(t *testing.T) {
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	slow := fmt.Sprintf(`[sh, -c, "while [ ! -e %s ]; do sleep 0.05; done"]`, gate)
	c1 := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, slow)})
	ex, _ := f.start(f.hostConfig())
	ctx := context.Background()
	r1, err := ex.Enqueue(ctx, "demo", "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "run 1 to test", func() bool { return f.stepStatus(r1.ID, "test") == store.StatusRunning })

	c2 := f.commit("demo", "second", nil)
	r2, err := ex.Enqueue(ctx, "demo", "main", c2)
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

	got := map[string]store.Run{"1": wait(t, ex, r1.ID), "2": wait(t, ex, r2.ID), "3": wait(t, ex, r3.ID)}
	if got["1"].Status != store.StatusSucceeded || got["3"].Status != store.StatusSucceeded {
		t.Errorf("run 1 %s (%s), run 3 %s (%s); want both succeeded", got["1"].Status, got["1"].Reason, got["3"].Status, got["3"].Reason)
	}
	if r := got["2"]; r.Status != store.StatusSuperseded || r.Reason != "superseded by "+c3[:12] || !r.Started.IsZero() {
		t.Errorf("run 2: %s, %q, started %v; want superseded by %s, never started", r.Status, r.Reason, r.Started, c3[:12])
	}
	for _, s := range got["2"].Steps {
		if s.Status != store.StatusSkipped {
			t.Errorf("step %s of the superseded run is %s", s.Name, s.Status)
		}
	}
	if !got["3"].Started.After(got["1"].Ended) && !got["3"].Started.Equal(got["1"].Ended) {
		t.Errorf("run 3 started at %v, before run 1 ended at %v", got["3"].Started, got["1"].Ended)
	}
	if _, err := f.st.ReleaseForCommit(ctx, "demo", c2); err == nil {
		t.Error("the superseded commit has a release")
	}
	if env, err := f.st.GetEnvironment(ctx, "dev"); err != nil || env.Release != got["3"].Release {
		t.Errorf("dev runs %+v, %v; want run 3's release %s", env, err, got["3"].Release)
	}
}

// Runs of different sources do not wait for each other: each source's
// test waits until the other's has started.
func TestSourcesRunInParallel(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	meet := func(me, other string) string {
		return fmt.Sprintf(`[sh, -c, "touch %[1]s; i=0; while [ ! -e %[2]s ]; do i=$((i+1)); [ $i -gt 400 ] && exit 9; sleep 0.05; done"]`,
			filepath.Join(dir, me), filepath.Join(dir, other))
	}
	ca := f.newSource("a", map[string]string{"ferry.yaml": withTest(t, meet("a", "b"))})
	cb := f.newSource("b", map[string]string{"ferry.yaml": withTest(t, meet("b", "a"))})
	ex, _ := f.start(f.hostConfig())
	ra, err := ex.Enqueue(context.Background(), "a", "main", ca)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := ex.Enqueue(context.Background(), "b", "main", cb)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{ra.ID, rb.ID} {
		if run := wait(t, ex, id); run.Status != store.StatusSucceeded {
			t.Errorf("run %d of %s: %s (%s)", id, run.Source, run.Status, run.Reason)
		}
	}
	if len(f.releases("a")) != 1 || len(f.releases("b")) != 1 {
		t.Errorf("releases: a %d, b %d; want one each", len(f.releases("a")), len(f.releases("b")))
	}
}

// A commit is run once, however often and concurrently it is enqueued.
func TestEnqueueIsIdempotent(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	ex, err := pipeline.NewEmbedded(f.config())
	if err != nil {
		t.Fatal(err)
	}
	// Before Run: recorded and queued, not started.
	ids := make([]int64, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			run, err := ex.Enqueue(context.Background(), "demo", "main", commit)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = run.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("run ids %v; want one run", ids)
		}
	}
	runs, err := f.st.ListRuns(context.Background(), "demo", store.Page{})
	if err != nil || len(runs) != 1 || runs[0].Status != store.StatusQueued {
		t.Fatalf("runs %+v, %v; want one queued", runs, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	defer func() { cancel(); <-done }()
	run := wait(t, ex, ids[0])
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Reason)
	}
	again, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil || again.ID != run.ID || again.Status != store.StatusSucceeded {
		t.Errorf("enqueueing the commit again: %+v, %v; want run %d, succeeded", again, err, run.ID)
	}
	if err := ex.Run(ctx); err == nil {
		t.Error("a second Run was allowed")
	}
	if len(f.releases("demo")) != 1 || len(f.deployments()) != 1 {
		t.Errorf("%d releases, %d deployments; want one each", len(f.releases("demo")), len(f.deployments()))
	}
}

// ferry stopped during the test step: the next executor on the same store
// resumes the run at that step, keeps the steps done before, and makes
// one release.
func TestResumeAfterStopDuringTest(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	// The first attempt hangs, as a slow test would; the second passes.
	first := filepath.Join(dir, "first")
	cmd := fmt.Sprintf(`[sh, -c, "if [ ! -e %[1]s ]; then touch %[1]s; sleep 60; fi; echo second attempt"]`, first)
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, cmd)})
	ex, stop := f.start(f.hostConfig())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first test attempt", func() bool {
		_, err := os.Stat(first)
		return err == nil
	})
	stop()

	before, err := f.st.GetRun(context.Background(), queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if before.Status != store.StatusRunning || steps(before)["test"].Status != store.StatusRunning {
		t.Fatalf("after the stop the run is %s with test %s; want both running", before.Status, steps(before)["test"].Status)
	}

	f.restartStore()
	ex2, _ := f.start(f.hostConfig())
	run := wait(t, ex2, queued.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("resumed run %s: %s", run.Status, run.Reason)
	}
	was, now := steps(before), steps(run)
	for _, name := range []string{"checkout", "validate", "build"} {
		if !now[name].Started.Equal(was[name].Started) || now[name].Status != store.StatusSucceeded {
			t.Errorf("step %s was run again: started %v, before %v", name, now[name].Started, was[name].Started)
		}
	}
	if !now["test"].Started.After(was["test"].Started) {
		t.Errorf("the test step was not started again")
	}
	logs := f.logs(run.ID)
	if !contains(logs["test"], "resumed after ferry restarted") || !contains(logs["test"], "hello | second attempt") {
		t.Errorf("test log:\n%s", strings.Join(logs["test"], "\n"))
	}
	if n := strings.Count(strings.Join(logs["build"], "\n"), "hello  python"); n != 1 {
		t.Errorf("build logged %d builds, want 1:\n%s", n, strings.Join(logs["build"], "\n"))
	}
	if rels := f.releases("demo"); len(rels) != 1 || rels[0].ID != run.Release {
		t.Errorf("releases %+v; want one, run's %s", rels, run.Release)
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].RunID != run.ID {
		t.Errorf("deployments %+v", ds)
	}
	if body, err := f.get("/dev/hello"); err != nil || !strings.Contains(body, "hello from python") {
		t.Errorf("GET /dev/hello: %q, %v", body, err)
	}
}

// ferry stopped during the deploy, after the release: the resumed run
// pulls the release it made and deploys it, making no second one.
func TestResumeAfterStopDuringDeploy(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	started := make(chan struct{})
	f.mu.Lock()
	f.applyStarted = started
	f.mu.Unlock()
	ex, stop := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("the deploy did not start")
	}
	stop()
	before, err := f.st.GetRun(context.Background(), queued.ID)
	if err != nil {
		t.Fatal(err)
	}
	if steps(before)["release"].Status != store.StatusSucceeded || steps(before)["deploy"].Status != store.StatusRunning || before.Release == "" {
		t.Fatalf("after the stop: %+v", before)
	}

	f.mu.Lock()
	f.applyStarted = nil
	f.mu.Unlock()
	f.restartStore()
	ex2, _ := f.start(f.config())
	run := wait(t, ex2, queued.ID)
	if run.Status != store.StatusSucceeded || run.Release != before.Release {
		t.Fatalf("resumed run %s (%s), release %s; want succeeded with %s", run.Status, run.Reason, run.Release, before.Release)
	}
	if !steps(run)["release"].Started.Equal(steps(before)["release"].Started) {
		t.Error("the release step ran again")
	}
	if rels := f.releases("demo"); len(rels) != 1 {
		t.Errorf("%d releases, want 1", len(rels))
	}
	if ds := f.deployments(); len(ds) != 1 || ds[0].Release != run.Release || ds[0].Status != "succeeded" {
		t.Errorf("deployments %+v", ds)
	}
	if body, err := f.get("/dev/hello"); err != nil || !strings.Contains(body, "hello from python") {
		t.Errorf("GET /dev/hello: %q, %v", body, err)
	}
}

// A run whose release the store already holds (made by an attempt that
// stopped between pushing and marking the step) reuses it.
func TestReleaseStepReusesTheCommitsRelease(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	ex, _ := f.start(f.config())
	first, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, first.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Reason)
	}
	// The same commit on another branch is another run, of the same
	// release.
	other, err := ex.Enqueue(context.Background(), "demo", "release-1", commit)
	if err != nil {
		t.Fatal(err)
	}
	run2 := wait(t, ex, other.ID)
	if run2.Status != store.StatusSucceeded || run2.Release != run.Release || run2.ID == run.ID {
		t.Errorf("second run %+v; want succeeded with release %s", run2, run.Release)
	}
	if !contains(f.logs(run2.ID)["release"], "made before for this commit") {
		t.Errorf("release log %q", f.logs(run2.ID)["release"])
	}
	if rels := f.releases("demo"); len(rels) != 1 {
		t.Errorf("%d releases, want 1", len(rels))
	}
}

// A function without a test skips the test step.
func TestNoTestSkipsTheStep(t *testing.T) {
	f := newFixture(t)
	m := exampleManifest(t)
	m = strings.Replace(m, "  test:\n    command: [python3, -m, unittest, -v]\n", "", 1)
	if strings.Contains(m, "test:") {
		t.Fatal("the example's test was not removed")
	}
	commit := f.newSource("demo", map[string]string{"ferry.yaml": m})
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Reason)
	}
	if s := steps(run)["test"]; s.Status != store.StatusSkipped || !strings.Contains(s.Reason, "no function has a test") {
		t.Errorf("test step %+v", s)
	}
}

// NewEmbedded says what its Config lacks.
func TestNewEmbeddedNeedsItsWiring(t *testing.T) {
	_, err := pipeline.NewEmbedded(pipeline.Config{})
	if err == nil || !strings.Contains(err.Error(), "Store Tree Builder Repo Target") {
		t.Errorf("error %v", err)
	}
}

// Runs a stopped ferry left queued are taken up at start: the newest of a
// branch runs, the older ones are superseded by it.
func TestRunTakesUpQueuedRunsAtStart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c1 := f.newSource("demo", nil)
	c2 := f.commit("demo", "second", nil)
	var ids []int64
	for _, c := range []string{c1, c2} {
		run, created, err := f.st.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: c}, pipeline.Steps)
		if err != nil || !created {
			t.Fatalf("CreateRun: %v, created %v", err, created)
		}
		ids = append(ids, run.ID)
	}
	ex, _ := f.start(f.config())
	if r := wait(t, ex, ids[0]); r.Status != store.StatusSuperseded || r.Reason != "superseded by "+c2[:12] {
		t.Errorf("older run %s (%q); want superseded by %s", r.Status, r.Reason, c2[:12])
	}
	if r := wait(t, ex, ids[1]); r.Status != store.StatusSucceeded {
		t.Errorf("newer run %s (%s)", r.Status, r.Reason)
	}
}

// The test runs in a copy of the whole repository, so it can reach code
// beside its function; symlinks that lead out of the repository are left
// out of the copy, ones inside it are kept.
func TestTestRunsInACopyOfTheRepository(t *testing.T) {
	f := newFixture(t)
	cmd := `[sh, -c, "cat ../shared/VERSION && test -L ../inside && test ! -e ../escape && touch written-by-test"]`
	commit := f.newSource("demo", map[string]string{
		"ferry.yaml":     withTest(t, cmd),
		"shared/VERSION": "shared 1.0\n",
	})
	f.mu.Lock()
	repo := f.repos["demo"]
	f.mu.Unlock()
	for link, target := range map[string]string{"inside": "shared", "escape": "/etc"} {
		if err := os.Symlink(target, filepath.Join(repo, link)); err != nil {
			t.Fatal(err)
		}
	}
	commit = f.commit("demo", "links", nil)
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	logs := f.logs(run.ID)["test"]
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s (%s); test log:\n%s", run.Status, run.Reason, strings.Join(logs, "\n"))
	}
	if !contains(logs, "hello | shared 1.0") || !contains(logs, "hello | left out escape: a symlink that leads outside the repository") {
		t.Errorf("test log:\n%s", strings.Join(logs, "\n"))
	}
	if _, err := os.Stat(filepath.Join(repo, "hello", "written-by-test")); err == nil {
		t.Error("the test wrote into the repository, not a copy")
	}
}

// A test that prints without end keeps the first lines, and says how many
// more there were.
func TestTestOutputIsBounded(t *testing.T) {
	f := newFixture(t)
	cmd := `[python3, -c, "for i in range(6000): print('line', i)"]`
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, cmd)})
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s (%s)", run.Status, run.Reason)
	}
	logs := f.logs(run.ID)["test"]
	if !contains(logs, "hello | line 4999") || contains(logs, "hello | line 5000") || !contains(logs, "hello | … 1000 more lines not kept") {
		t.Errorf("test log of %d lines, ending:\n%s", len(logs), strings.Join(logs[max(0, len(logs)-4):], "\n"))
	}
}

// A test command that is not installed fails the run and says so.
func TestMissingTestCommand(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, "[no-such-test-runner, -v]")})
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusFailed || !strings.Contains(run.Reason, "install no-such-test-runner on the ferry host, or change spec.test.command") {
		t.Errorf("run %s, reason %q", run.Status, run.Reason)
	}
}

// A first stage that admits no automatic deploy (frozen, or held after a
// manual rollback) is left alone: the release is made, the deploy is
// skipped with the reason, nothing is recorded as deployed.
func TestDeploySkippedWhenTheStageRefuses(t *testing.T) {
	f := newFixture(t)
	commit := f.newSource("demo", nil)
	cfg := f.config()
	var asked []string
	cfg.Admit = func(_ context.Context, _ store.Run, _ store.Release, env string) error {
		asked = append(asked, env)
		return errors.New("frozen: release party")
	}
	ex, _ := f.start(cfg)
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	if run.Status != store.StatusSucceeded || run.Release == "" {
		t.Fatalf("run %s (%s), release %q", run.Status, run.Reason, run.Release)
	}
	if s := steps(run)["deploy"]; s.Status != store.StatusSkipped || !strings.Contains(s.Reason, "release party") {
		t.Errorf("deploy step %+v", s)
	}
	if len(asked) != 1 || asked[0] != "dev" {
		t.Errorf("Admit asked for %v", asked)
	}
	if ds, _ := f.st.ListDeployments(context.Background(), "dev", store.Page{}); len(ds) != 0 {
		t.Errorf("%d deployments recorded in a stage that refused", len(ds))
	}
}

// TestTestCommandIsSandboxed: a test command runs as the sandbox's user,
// with HOME and TMPDIR in its private /tmp, writes its own copy of the
// repository, and cannot write (nor see) the host's folders.
func TestTestCommandIsSandboxed(t *testing.T) {
	f := newFixture(t)
	host := t.TempDir()
	cmd := fmt.Sprintf(`[sh, -c, "id -u; echo home=$HOME tmp=$TMPDIR; touch %s/escaped && echo ESCAPED; touch owned && echo wrote-copy; ls %s || echo host-folder-hidden"]`, host, host)
	commit := f.newSource("demo", map[string]string{"ferry.yaml": withTest(t, cmd)})
	ex, _ := f.start(f.config())
	queued, err := ex.Enqueue(context.Background(), "demo", "main", commit)
	if err != nil {
		t.Fatal(err)
	}
	run := wait(t, ex, queued.ID)
	logs := f.logs(run.ID)["test"]
	t.Logf("test log:\n%s", strings.Join(logs, "\n"))
	if run.Status != store.StatusSucceeded {
		t.Fatalf("run %s: %s", run.Status, run.Reason)
	}
	for _, want := range []string{"hello | 65532", "hello | home=/tmp tmp=/tmp", "hello | wrote-copy", "hello | host-folder-hidden"} {
		if !contains(logs, want) {
			t.Errorf("the test's log does not say %q", want)
		}
	}
	if contains(logs, "hello | ESCAPED") {
		t.Errorf("the test wrote into a host folder")
	}
	if _, err := os.Stat(filepath.Join(host, "escaped")); err == nil {
		t.Errorf("the test's file is in the host folder %s", host)
	}
}

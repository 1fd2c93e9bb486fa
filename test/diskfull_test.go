package test

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// diskServe starts ferry serve on a new repository of the Python example,
// with its data folder on a small disk the test fills, and a short
// storeRetry. The example's test step waits until the test opens its
// gate, so that the disk fills while it runs (the configuration turns the
// sandbox off, which would hide the gate). It returns the server's
// configuration (to start it again), the running server, a clone of the
// repository to commit in, and the gate.
func diskServe(t *testing.T, disk *smallDisk) (serveConfig, *serveProc, string, *gate) {
	t.Helper()
	g := &gate{path: filepath.Join(t.TempDir(), "gate")}
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "full", func(dir string) {
		p := filepath.Join(dir, "ferry.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		wait := fmt.Sprintf(`command: [sh, -c, "while [ ! -e %s ]; do sleep 0.1; done; echo slow test done"]`, g.path)
		b = bytes.Replace(b, []byte("command: [python3, -m, unittest, -v]"), []byte(wait), 1)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: full, url: %q, branch: main, interval: 1s}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte("dataDir: data\n"), []byte(fmt.Sprintf("dataDir: %s\nstoreRetry: 3s\nsandbox: {mode: none}\n", filepath.Join(disk.Dir, "data"))), 1)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, startServe(t, cfg), work, g
}

// gate is a file whose existence lets the example's test step end.
type gate struct{ path string }

func (g *gate) open(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(g.path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitTestStep waits until run id is in its test step.
func waitTestStep(t *testing.T, p *serveProc, id int64) {
	t.Helper()
	c := p.client(t)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		run, err := c.Run(t.Context(), id)
		if err == nil && len(run.Steps) > 3 && run.Steps[3].Status == "running" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d did not reach its test step (%+v, %v):\n%s", id, run, err, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitSaid waits until ferry serve's output holds what.
func waitSaid(t *testing.T, p *serveProc, what string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(p.output.String(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("ferry serve did not say %q within %s:\n%s", what, within, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitRunDone waits until run id is done and returns it.
func waitRunDone(t *testing.T, p *serveProc, id int64) server.RunView {
	t.Helper()
	c := p.client(t)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		run, err := c.Run(t.Context(), id)
		if err == nil && (run.Status == "succeeded" || run.Status == "failed" || run.Status == "superseded") {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d did not end (%+v, %v):\n%s", id, run, err, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noRunRunning fails the test for every run queued or running.
func noRunRunning(t *testing.T, p *serveProc) []server.RunView {
	t.Helper()
	runs, err := p.client(t).Runs(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range runs.Items {
		if r.Status == "running" || r.Status == "queued" {
			t.Errorf("run %d (%s) is %s after the restart\n%s", r.ID, r.Commit, r.Status, p.runsReport(t))
		}
	}
	return runs.Items
}

// stagesRun fails the test for each of dev and staging that does not run
// a release of commit; when says after what (for the message).
func stagesRun(t *testing.T, p *serveProc, commit, when string) {
	t.Helper()
	envs, err := p.client(t).Environments(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, env := range envs {
		if env.Name != "dev" && env.Name != "staging" {
			continue
		}
		rel, err := p.client(t).Release(t.Context(), env.Release)
		if err != nil {
			t.Fatalf("%s's release %q: %v", env.Name, env.Release, err)
		}
		if rel.Commit != commit {
			t.Errorf("after %s, %s runs commit %s; want %s", when, env.Name, rel.Commit, commit)
		}
	}
}

// integrityCheck runs PRAGMA integrity_check on ferry's store, which no
// process may have open.
func integrityCheck(t *testing.T, disk *smallDisk) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(disk.Dir, "data", "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "ok" {
		t.Errorf("PRAGMA integrity_check of the store: %s", got)
	}
}

// The disk under ferry's data folder fills while run 1 (commit c1) is in
// its test step, and c2 is pushed meanwhile. Run 1 cannot record its
// test and stops; once the space is back it is recorded failed, and c2
// deploys through dev and staging. After a stop, and after a kill, ferry
// starts with no run running, dev and staging on c2 (never c1 again), and
// an intact store.
func TestDiskFullConvergesToTheHead(t *testing.T) {
	disk := newSmallDisk(t, "256m")
	cfg, p, work, g := diskServe(t, disk)
	waitTestStep(t, p, 1)
	disk.Fill(t)
	c2 := commitGreeting(t, work, "", "hello from c2")
	g.open(t)
	waitSaid(t, p, "stops: ferry could not record", 3*time.Minute)
	disk.Release(t)

	waitGreeting(t, p, "hello from c2", 3*time.Minute)
	waitGreetingAt(t, p, p.gw+"/staging/hello", "hello from c2", 3*time.Minute)
	r1 := waitRunDone(t, p, 1)
	if r1.Status != "failed" && r1.Status != "superseded" || r1.Reason == "" {
		t.Errorf("run 1 (c1) %s: %q; want failed or superseded, with the reason", r1.Status, r1.Reason)
	}
	if r1.Status == "failed" && !strings.Contains(r1.Reason, "free space on the data folder's disk") {
		t.Errorf("run 1's reason %q does not say what to do", r1.Reason)
	}

	for _, restart := range []struct {
		how  string
		stop func(*testing.T)
	}{{"SIGTERM", p.stop}, {"SIGKILL", nil}} {
		if restart.stop == nil {
			restart.stop = p.kill
		}
		restart.stop(t)
		p = startServe(t, cfg)
		runs := noRunRunning(t, p)
		waitGreeting(t, p, "hello from c2", time.Minute)
		waitGreetingAt(t, p, p.gw+"/staging/hello", "hello from c2", time.Minute)
		for _, r := range runs {
			if r.ID == 1 && (r.Status != r1.Status || r.Reason != r1.Reason) {
				t.Errorf("after a %s, run 1 is %s (%q); before it was %s (%q)", restart.how, r.Status, r.Reason, r1.Status, r1.Reason)
			}
		}
		stagesRun(t, p, c2, "a "+restart.how)
	}
	p.stop(t)
	integrityCheck(t, disk)
}

// The disk fills while the only commit's run is in its test step, and
// the space comes back with no new commit: the run is recorded failed for
// the store, and the next start runs it on from its test step, so that
// the branch head ends deployed.
func TestDiskFullHeadRunsAgainAfterRestart(t *testing.T) {
	disk := newSmallDisk(t, "256m")
	cfg, p, _, g := diskServe(t, disk)
	waitTestStep(t, p, 1)
	before, err := p.client(t).Run(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	disk.Fill(t)
	g.open(t)
	waitSaid(t, p, "stops: ferry could not record", 3*time.Minute)
	disk.Release(t)
	r1 := waitRunDone(t, p, 1)
	if r1.Status != "failed" || !strings.Contains(r1.Reason, "free space on the data folder's disk; ferry runs the branch head again, with back-off, while it is the head") {
		t.Fatalf("run 1 %s: %q; want failed for the store", r1.Status, r1.Reason)
	}

	p.stop(t)
	p = startServe(t, cfg)
	after := waitRunDone(t, p, 1)
	if after.Status != "succeeded" {
		t.Fatalf("run 1 after the restart %s: %q; want succeeded\n%s", after.Status, after.Reason, p.runsReport(t))
	}
	for i := range 3 {
		if !after.Steps[i].Started.Equal(before.Steps[i].Started) {
			t.Errorf("step %s ran again (started %s, then %s)", after.Steps[i].Name, before.Steps[i].Started, after.Steps[i].Started)
		}
	}
	waitGreeting(t, p, "hello from python", time.Minute)
	noRunRunning(t, p)
	p.stop(t)
	integrityCheck(t, disk)
}

// The case: c2 is queued behind run 1 (c1) when the disk fills in
// run 1's test step, and ferry is killed while run 1 waits for the store.
// With the space back, the next start does not resume run 1, whose commit
// the branch head has moved past: it ends superseded, saying so, c1 is
// never released nor deployed, and c2 is.
func TestDiskFullKilledRunIsSupersededAtRestart(t *testing.T) {
	disk := newSmallDisk(t, "256m")
	cfg, p, work, g := diskServe(t, disk)
	waitTestStep(t, p, 1)
	c2 := commitGreeting(t, work, "", "hello from c2")
	c := p.client(t)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if r2, err := c.Run(t.Context(), 2); err == nil && r2.Commit == c2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run 2 for c2:\n%s", p.output)
		}
	}
	r1, err := c.Run(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	c1 := r1.Commit
	disk.Fill(t)
	g.open(t)
	waitSaid(t, p, "trying again with back-off", 3*time.Minute)
	p.kill(t)
	disk.Release(t)

	p = startServe(t, cfg)
	r1 = waitRunDone(t, p, 1)
	want := fmt.Sprintf("the head of full/main is %s, which descends from this run's commit %s; ferry runs the head instead", c2[:12], c1[:12])
	if r1.Status != "superseded" || r1.Reason != want {
		t.Errorf("run 1 %s: %q; want superseded: %q\n%s", r1.Status, r1.Reason, want, p.runsReport(t))
	}
	waitGreeting(t, p, "hello from c2", 3*time.Minute)
	if r2 := waitRunDone(t, p, 2); r2.Status != "succeeded" {
		t.Errorf("run 2 (c2) %s: %q", r2.Status, r2.Reason)
	}
	rels, err := p.client(t).Releases(t.Context(), "full", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels.Items {
		if r.Commit == c1 {
			t.Errorf("c1 got release %s", r.ID)
		}
	}
	noRunRunning(t, p)
	p.stop(t)
	integrityCheck(t, disk)
}

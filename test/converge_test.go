package test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// ferry serve starts on a data folder whose disk is full, with a branch
// head recorded and no run for it (ferry crashed between the two): it
// does not exit, its API and ferry status answer, its log says once that
// the store refuses writes and what to do, and once the space is back it
// queues the head and deploys it without a restart.
func TestDiskFullAtStart(t *testing.T) {
	disk := newSmallDisk(t, "256m")
	cfg, p, work, g := diskServe(t, disk)
	g.open(t)
	waitGreeting(t, p, "hello from python", 3*time.Minute)
	if err := os.Remove(g.path); err != nil {
		t.Fatal(err)
	}
	c2 := commitGreeting(t, work, "", "hello from c2")
	waitTestStep(t, p, 2)
	p.kill(t)
	// The crash came after the watcher recorded c2, before its run was
	// queued: no run 2. And the write-ahead log is empty, so that the
	// next write needs space.
	// The test's connection stays open until the space is back, as
	// ferry's last connection did when it was killed: closing it would
	// remove the log and its index, which a start on a full disk cannot
	// make again.
	db, err := sql.Open("sqlite", filepath.Join(disk.Dir, "data", "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	defer db.Close()
	for _, q := range []string{"DELETE FROM logs WHERE run = 2", "DELETE FROM steps WHERE run = 2", "DELETE FROM runs WHERE id = 2", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	disk.Fill(t)

	p = startServe(t, cfg)
	waitSaid(t, p, "the store refuses writes", time.Minute)
	r := ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "dev") {
		t.Errorf("ferry status on the full disk: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	runs, err := p.client(t).Runs(t.Context(), "full", 0, 0)
	if err != nil || len(runs.Items) != 1 {
		t.Fatalf("the runs on the full disk: %+v, %v; want run 1 only", runs, err)
	}
	out := p.output.String()
	if n := strings.Count(out, "the store refuses writes"); n != 1 {
		t.Errorf("ferry said %d times that the store refuses writes; want once:\n%s", n, out)
	}
	if !strings.Contains(out, "free space on the data folder's disk") {
		t.Errorf("ferry serve does not say what to do:\n%s", out)
	}

	g.open(t)
	disk.Release(t)
	db.Close()
	waitSaid(t, p, "the store takes writes again: 1 of 1 branch heads queued", 3*time.Minute)
	waitGreeting(t, p, "hello from c2", 3*time.Minute)
	runs, err = p.client(t).Runs(t.Context(), "full", 0, 0)
	if err != nil || len(runs.Items) != 2 || runs.Items[0].Commit != c2 {
		t.Fatalf("the runs after the space came back: %+v, %v; want a run of c2", runs, err)
	}
	if r2 := waitRunDone(t, p, runs.Items[0].ID); r2.Status != "succeeded" {
		t.Errorf("c2's run %s: %q; want succeeded", r2.Status, r2.Reason)
	}
	noRunRunning(t, p)
	p.stop(t)
	integrityCheck(t, disk)
}

// A branch force-pushed back to an older commit (git reset --hard HEAD~1
// && git push -f) converges on it: c1 live, c2 live, then the branch is
// c1 again: dev and staging serve c1 again, through c1's run deploying
// its release once more, and after a restart they still do (no run of c2
// resumes over it).
func TestForcePushBackDeploysTheOlderHead(t *testing.T) {
	gs := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, gs, "back", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: back, url: %q, branch: main, interval: 1s}`, url))
	p := startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 3*time.Minute)
	waitGreetingAt(t, p, p.gw+"/staging/hello", "hello from python", 3*time.Minute)
	c1 := strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
	commitGreeting(t, work, "", "hello from c2")
	waitGreeting(t, p, "hello from c2", 3*time.Minute)
	waitGreetingAt(t, p, p.gw+"/staging/hello", "hello from c2", 3*time.Minute)

	gitserver.Git(t, work, "reset", "-q", "--hard", "HEAD~1")
	gitserver.Git(t, work, "push", "-q", "-f", "origin", "main")
	waitGreeting(t, p, "hello from python", 3*time.Minute)
	waitGreetingAt(t, p, p.gw+"/staging/hello", "hello from python", 3*time.Minute)
	waitSaid(t, p, "deploys its release again: the head of back/main is back at "+c1[:12], time.Minute)
	c := p.client(t)
	runs, err := c.Runs(t.Context(), "back", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 2 {
		t.Errorf("%d runs; want 2, c1's deploying again:\n%s", len(runs.Items), p.runsReport(t))
	}
	events, err := c.Events(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var redeploys []server.EventView
	for _, ev := range events.Items {
		if ev.Action == "run.redeploy" {
			redeploys = append(redeploys, ev)
		}
	}
	if len(redeploys) != 1 || redeploys[0].Actor != "ferry" || !strings.Contains(redeploys[0].Detail, "is back at "+c1[:12]) {
		t.Errorf("the audit log's run.redeploy entries: %+v; want one by ferry saying the head is back at c1", redeploys)
	}

	p.stop(t)
	p = startServe(t, cfg)
	// Whatever the start does, it is done once every run is: then dev
	// must still serve c1.
	for _, r := range runs.Items {
		waitRunDone(t, p, r.ID)
	}
	noRunRunning(t, p)
	waitGreeting(t, p, "hello from python", time.Minute)
	stagesRun(t, p, c1, "a restart")
}

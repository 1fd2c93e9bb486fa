package test

import (
	"os"
	"strings"
	"testing"
	"time"
)

// ferry serve starts on a data folder whose disk is full: it does not
// exit, its API and ferry status answer, its log says once that the
// store refuses writes and what to do, and once the space is back the
// branch head deploys without a restart. The head c2 was recorded, and
// its run was in its test step, when ferry was killed.
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
	disk.Fill(t)

	p = startServe(t, cfg)
	waitSaid(t, p, "the store refuses writes", time.Minute)
	r := ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "dev") {
		t.Errorf("ferry status on the full disk: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	runs, err := p.client(t).Runs(t.Context(), "full", 0, 0)
	if err != nil || len(runs.Items) != 2 {
		t.Fatalf("the runs on the full disk: %+v, %v", runs, err)
	}
	if n := strings.Count(p.output.String(), "the store refuses writes"); n != 1 {
		t.Errorf("ferry said %d times that the store refuses writes; want once:\n%s", n, p.output)
	}
	if !strings.Contains(p.output.String(), "free space on the data folder's disk") {
		t.Errorf("ferry serve does not say what to do:\n%s", p.output)
	}

	g.open(t)
	disk.Release(t)
	waitGreeting(t, p, "hello from c2", 3*time.Minute)
	if r2 := waitRunDone(t, p, 2); r2.Status != "succeeded" || r2.Commit != c2 {
		t.Errorf("run 2 %s %s: %q; want succeeded for c2", r2.Commit, r2.Status, r2.Reason)
	}
	noRunRunning(t, p)
	p.stop(t)
	integrityCheck(t, disk)
}

package test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// ferry is killed (SIGKILL) while run 1 of commit c1 is at each step in
// turn, and c2 is pushed while it is down. After the restart no run stays
// queued or running, dev ends on c2, and once c2 is deployed nothing takes
// dev back to c1.
func TestKilledAtEachStepConvergesToTheHead(t *testing.T) {
	steps := []string{"checkout", "validate", "build", "test", "release", "deploy"}
	for _, step := range []string{"checkout", "build", "release", "deploy"} {
		t.Run(step, func(t *testing.T) {
			srv := gitserver.Start(t, "", "")
			url, work := pythonRepo(t, srv, "kill", nil)
			cfg := writeServeConfig(t, fmt.Sprintf(`- {name: kill, url: %q, branch: main, interval: 1h}`, url))
			p := startServe(t, cfg)
			c := p.client(t)
			at := slices.Index(steps, step)
			// The kill lands in the step, or just after it when the step
			// is over before a poll sees it.
			for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
				run, err := c.Run(t.Context(), 1)
				if err == nil && (len(run.Steps) > at && run.Steps[at].Status != "queued" || run.Status == "succeeded" || run.Status == "failed") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("run 1 did not reach %s (%+v, %v):\n%s", step, run, err, p.output)
				}
			}
			p.kill(t)
			c2 := commitGreeting(t, work, "", "hello from c2")

			p = startServe(t, cfg)
			c = p.client(t)
			waitGreeting(t, p, "hello from c2", 3*time.Minute)
			runs, err := c.Runs(t.Context(), "", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs.Items {
				waitRunDone(t, p, r.ID)
			}
			noRunRunning(t, p)
			hist, err := c.History(t.Context(), "dev", 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Run 1 may finish c1 after the restart, before ferry has
			// fetched c2, as it would have without the kill; but once c2
			// is deployed nothing takes dev back.
			slices.SortFunc(hist.Items, func(a, b server.DeploymentView) int { return a.At.Compare(b.At) })
			onC2 := false
			for _, d := range hist.Items {
				if d.Status != "succeeded" {
					continue
				}
				if onC2 && d.Commit != c2 {
					t.Errorf("after c2, dev got release %s of commit %s (run %d)\n%s", d.Release, d.Commit, d.Run, p.runsReport(t))
				}
				onC2 = onC2 || d.Commit == c2
			}
			envs, err := c.Environments(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range envs {
				if e.Name != "dev" {
					continue
				}
				rel, err := c.Release(t.Context(), e.Release)
				if err != nil || rel.Commit != c2 {
					t.Errorf("dev runs %s (commit %s, %v), want c2 %s", e.Release, rel.Commit, err, c2)
				}
			}
		})
	}
}

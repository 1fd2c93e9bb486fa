package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// TestServeRefusesSyntaxError pushes a commit whose Python does not parse
// to a real Git server that ferry serve watches: its run fails at the
// build step naming the file and line, no release is made of it, and dev
// keeps serving the release it had.
func TestServeRefusesSyntaxError(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "demo", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h}`, url))
	p := startServe(t, cfg)
	c := p.client(t)
	ctx := t.Context()
	waitGreeting(t, p, "hello from python", 120*time.Second)
	// why: dev answers a moment before its deployment is recorded.
	before := liveRelease(t, c, "dev")

	// Line 3 of a new module of the function does not parse; main.py
	// still does.
	bad := filepath.Join(work, "hello", "helpers.py")
	if err := os.WriteFile(bad, []byte("def shout(s):\n    return s.upper()\ndef broken(:\n    pass\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "a helper that does not parse")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	commit := strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
	if r := ferry(t, "sources", "sync", "demo", "--server", p.api, "--token", serveToken); r.code != 0 {
		t.Fatalf("ferry sources sync: %d %s%s", r.code, r.stdout, r.stderr)
	}

	var run server.RunView
	for deadline := time.Now().Add(120 * time.Second); ; {
		runs, err := c.Runs(ctx, "demo", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs.Items) > 0 && runs.Items[0].Commit == commit && (runs.Items[0].Status == "failed" || runs.Items[0].Status == "succeeded") {
			if run, err = c.Run(ctx, runs.Items[0].ID); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run of %s did not end:\n%s", commit, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
	const want = "syntax error: helpers.py:3: "
	if run.Status != "failed" || !strings.Contains(run.Reason, want) || run.Release != "" {
		t.Errorf("the run: %s %q (release %q); want failed, naming %q", run.Status, run.Reason, run.Release, want)
	}
	var buildStep *server.StepView
	for i, s := range run.Steps {
		if s.Name == "build" {
			buildStep = &run.Steps[i]
		}
		if s.Name == "release" || s.Name == "deploy" {
			if s.Status == "succeeded" {
				t.Errorf("step %s ran after a failed build: %+v", s.Name, s)
			}
		}
	}
	if buildStep == nil || buildStep.Status != "failed" || !strings.Contains(buildStep.Reason, want) || strings.Count(buildStep.Reason, "function hello") > 1 {
		t.Errorf("the build step: %+v\nruns:\n%s", buildStep, p.runsReport(t))
	}
	rels, err := c.Releases(ctx, "demo", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rels.Items {
		if r.Commit == commit {
			t.Errorf("a release was made of the commit that does not parse: %+v", r)
		}
	}
	if len(rels.Items) != 1 {
		t.Errorf("releases: %+v, want the first commit's only", rels.Items)
	}
	envs, err := c.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after := envRelease(envs, "dev"); after != before {
		t.Errorf("dev runs %s, want %s still", after, before)
	}
	waitGreeting(t, p, "hello from python", 60*time.Second)
	r := ferry(t, "runs", "logs", fmt.Sprint(run.ID), "--server", p.api, "--token", serveToken)
	if !strings.Contains(r.stdout, "helpers.py:3") {
		t.Errorf("ferry runs logs %d does not show the file and line:\n%s%s", run.ID, r.stdout, r.stderr)
	}
}

// envRelease is the release env runs in envs.
func envRelease(envs []server.EnvironmentView, env string) string {
	for _, e := range envs {
		if e.Name == env {
			return e.Release
		}
	}
	return ""
}

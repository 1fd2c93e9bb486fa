package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// plainRepo pushes a repository with one file, which has no functions:
// enough to be fetched.
func plainRepo(t *testing.T, srv *gitserver.Server, name string) string {
	t.Helper()
	url := srv.Create(t, name)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "README"), []byte(name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "readme")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return url
}

// action is one thing a person does, named by its audit action.
type action struct {
	name string
	do   func() error
}

// cliAction runs ferry with args against p as an action.
func cliAction(t *testing.T, p *serveProc, name string, args ...string) action {
	return action{name, func() error {
		if r := ferry(t, append(args, "--server", p.api, "--token", serveToken)...); r.code != 0 {
			return errors.New(r.stderr)
		}
		return nil
	}}
}

// refusedOnFullDisk fills disk, checks that each action fails with 503,
// naming itself, the store's error and the fix, and gives the space back.
func refusedOnFullDisk(t *testing.T, disk *smallDisk, actions ...action) {
	t.Helper()
	disk.Fill(t)
	defer disk.Release(t)
	for _, a := range actions {
		err := a.do()
		if err == nil {
			t.Fatalf("%s worked on a full disk", a.name)
		}
		msg := err.Error()
		for _, want := range []string{"503", a.name + " on ", "was not done", "database or disk is full", "free space on the disk of ferry's data folder"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s on a full disk: %q does not say %q", a.name, msg, want)
			}
		}
	}
}

// TestFullDiskActionsNeedTheirAuditEntry fills the disk of ferry's data
// folder and tries what people do: each action (an approval, a rejection,
// a freeze and unfreeze, a rollback and resume, a secret, a source added,
// synced or removed, a webhook's fetch) fails with the reason and the fix, and
// leaves no trace. With the space back, each works, the approved
// promotion is deployed by ferry, and the audit log has exactly one entry
// per action.
func TestFullDiskActionsNeedTheirAuditEntry(t *testing.T) {
	disk := newSmallDisk(t, "128m")
	srv := gitserver.Start(t, "", "")
	demo, work := pythonRepo(t, srv, "demo", func(dir string) {
		b, err := os.ReadFile(filepath.Join(dir, "ferry.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, "---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {name: dev, auto: true}\n  - name: prod\n    approval: {required: 1}\n"...)
		write(t, dir, "ferry.yaml", string(b))
	})
	other := plainRepo(t, srv, "other")
	const hookSecret = "webhook-secret-e2e"
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h, webhookSecret: %s}`, demo, hookSecret))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "dataDir: data", "dataDir: "+filepath.Join(disk.Dir, "data"), 1))
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	c := p.client(t)
	ctx := t.Context()
	pending := pendingProd(t, p, c, "")

	// count is the number of entries of action on object, by people
	// (actor "webhook" when webhook is true).
	count := func(object, action string, webhook bool) int {
		t.Helper()
		evs, err := c.Events(ctx, object, 500, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Items {
			if e.Action == action && (e.Actor == "webhook") == webhook {
				n++
			}
		}
		return n
	}
	type entries struct {
		object, action string
		webhook        bool
		want           int
	}
	checkCounts := func(when string, want []entries) {
		t.Helper()
		for _, w := range want {
			if n := count(w.object, w.action, w.webhook); n != w.want {
				t.Errorf("%s: %d entries of %s on %s (webhook %v), want %d", when, n, w.action, w.object, w.webhook, w.want)
			}
		}
	}
	syncs := count("source/demo", "source.sync", false)
	approval := "promotion/" + fmt.Sprint(pending.ID)
	payload := []byte(`{"ref":"refs/heads/main","before":"","after":"","deleted":false,"repository":{"full_name":"dev/demo"}}`)

	// Round 1: an approval, a freeze, a secret, a source, a sync, a webhook.
	actions := []action{
		cliAction(t, p, "source.sync", "sources", "sync", "demo"),
		cliAction(t, p, "promotion.approve", "approve", fmt.Sprint(pending.ID), "--comment", "looks good"),
		{"source.sync", func() error {
			if code, body := githubPushReply(t, p.api, "demo", hookSecret, "delivery-full", payload); code != 202 {
				return fmt.Errorf("the webhook answered %d: %s", code, body)
			}
			return nil
		}},
		cliAction(t, p, "freeze", "freeze", "staging", "--reason", "audit test"),
		{"secret.set", func() error {
			_, err := c.SetEnvSecret(ctx, "staging", "API_KEY", "s3cret")
			return err
		}},
		{"source.add", func() error {
			_, err := c.AddSource(ctx, server.SourceRequest{Name: "other", URL: other, Branch: "main", Interval: "1h"})
			return err
		}},
	}
	refusedOnFullDisk(t, disk, actions...)

	// Nothing of the refused actions is left.
	envs, err := c.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if e.Frozen {
			t.Errorf("%s is frozen by a refused freeze", e.Name)
		}
		if e.Name == "prod" && e.Release != "" {
			t.Errorf("prod runs %s after a refused approval", e.Release)
		}
	}
	if pr, err := c.Promotion(ctx, pending.ID); err != nil || pr.Status != "pending" || len(pr.Approvals) != 0 {
		t.Errorf("promotion %d after a refused approval: %+v, %v", pending.ID, pr, err)
	}
	if secs, err := c.EnvSecrets(ctx, "staging"); err != nil || len(secs) != 0 {
		t.Errorf("staging's secrets after a refused set: %+v, %v", secs, err)
	}
	if srcs, err := c.Sources(ctx); err != nil || len(srcs) != 1 {
		t.Errorf("sources after a refused add: %+v, %v", srcs, err)
	}
	checkCounts("after the refusals", []entries{
		{"source/demo", "source.sync", false, syncs}, {"source/demo", "source.sync", true, 0},
		{approval, "promotion.approve", false, 0}, {"env/prod", "deploy", false, 0},
		{"env/staging", "freeze", false, 0}, {"env/staging", "secret.set", false, 0}, {"source/other", "source.add", false, 0},
	})

	for _, a := range actions {
		if err := a.do(); err != nil {
			t.Errorf("%s with the space back: %v", a.name, err)
		}
	}
	// The approval lets ferry deploy the release to prod, recorded once.
	if got := liveRelease(t, c, "prod"); got != pending.Release {
		t.Errorf("prod runs %s, want the approved %s", got, pending.Release)
	}
	checkCounts("with the space back", []entries{
		{"source/demo", "source.sync", false, syncs + 1}, {"source/demo", "source.sync", true, 1},
		{approval, "promotion.approve", false, 1}, {"env/prod", "deploy", false, 1},
		{"env/staging", "freeze", false, 1}, {"env/staging", "secret.set", false, 1}, {"source/other", "source.add", false, 1},
	})

	// Round 2: a second release in dev waits for prod; a rollback of dev,
	// a rejection and an unfreeze, then a resume of the held dev.
	commitGreeting(t, work, "", "hello again")
	if _, err := c.SyncSource(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	waitGreeting(t, p, "hello again", 120*time.Second)
	second := pendingProd(t, p, c, pending.Release)
	rejection := "promotion/" + fmt.Sprint(second.ID)
	round2 := []action{
		cliAction(t, p, "rollback", "rollback", "dev"),
		cliAction(t, p, "promotion.reject", "reject", fmt.Sprint(second.ID), "--comment", "not now"),
		cliAction(t, p, "unfreeze", "unfreeze", "staging"),
		cliAction(t, p, "source.remove", "sources", "rm", "other"),
	}
	refusedOnFullDisk(t, disk, round2...)
	// The source whose removal was refused is still there, and watched.
	if _, err := c.SyncSource(ctx, "other"); err != nil {
		t.Errorf("syncing the source whose removal was refused: %v", err)
	}
	if envs, err := c.Environments(ctx); err == nil {
		for _, e := range envs {
			if e.Name == "dev" && (e.Held || e.Release != second.Release) {
				t.Errorf("dev after a refused rollback: held %v, release %s, want %s", e.Held, e.Release, second.Release)
			}
			if e.Name == "staging" && !e.Frozen {
				t.Error("staging is not frozen after a refused unfreeze")
			}
		}
	}
	if pr, err := c.Promotion(ctx, second.ID); err != nil || pr.Status != "pending" {
		t.Errorf("promotion %d after a refused rejection: %+v, %v", second.ID, pr, err)
	}
	checkCounts("after the refusals of round 2", []entries{
		{"env/dev", "rollback", false, 0}, {rejection, "promotion.reject", false, 0}, {"env/staging", "unfreeze", false, 0},
		{"source/other", "source.remove", false, 0},
	})
	for _, a := range round2 {
		if err := a.do(); err != nil {
			t.Errorf("%s with the space back: %v", a.name, err)
		}
	}
	resume := cliAction(t, p, "resume", "resume", "dev")
	refusedOnFullDisk(t, disk, resume)
	if err := resume.do(); err != nil {
		t.Errorf("resume with the space back: %v", err)
	}
	checkCounts("at the end", []entries{
		{"env/dev", "rollback", false, 1}, {rejection, "promotion.reject", false, 1},
		{"env/staging", "unfreeze", false, 1}, {"env/dev", "resume", false, 1},
		{"source/other", "source.remove", false, 1},
	})
	if srcs, err := c.Sources(ctx); err != nil || len(srcs) != 1 {
		t.Errorf("sources after the removal: %+v, %v", srcs, err)
	}
}

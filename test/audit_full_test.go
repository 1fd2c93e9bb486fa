package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

// TestFullDiskActionsNeedTheirAuditEntry fills the disk of ferry's data
// folder and tries what people do: each action (an approval, a freeze, a
// secret, a source added or synced, a webhook's fetch) fails with the
// reason and the fix, and leaves no trace. With the space back, each
// works, the approved promotion is deployed by ferry, and the audit log
// has exactly one entry per action.
func TestFullDiskActionsNeedTheirAuditEntry(t *testing.T) {
	disk := newSmallDisk(t, "128m")
	srv := gitserver.Start(t, "", "")
	demo, _ := pythonRepo(t, srv, "demo", func(dir string) {
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
	count := func(object, action string) int {
		t.Helper()
		evs, err := c.Events(ctx, object, 500, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Items {
			if e.Action == action && e.Actor != "webhook" {
				n++
			}
		}
		return n
	}
	syncs := count("source/demo", "source.sync")
	hooks := func() int {
		t.Helper()
		evs, err := c.Events(ctx, "source/demo", 500, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Items {
			if e.Actor == "webhook" {
				n++
			}
		}
		return n
	}
	approve := fmt.Sprint(pending.ID)
	payload := []byte(`{"ref":"refs/heads/main","before":"","after":"","deleted":false,"repository":{"full_name":"dev/demo"}}`)

	cli := func(args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
	}
	actions := []struct {
		name string
		do   func() error
	}{
		{"source.sync", func() error {
			if r := cli("sources", "sync", "demo"); r.code != 0 {
				return errors.New(r.stderr)
			}
			return nil
		}},
		{"promotion.approve", func() error {
			if r := cli("approve", approve, "--comment", "looks good"); r.code != 0 {
				return errors.New(r.stderr)
			}
			return nil
		}},
		{"source.sync", func() error {
			if code, body := githubPushReply(t, p.api, "demo", hookSecret, "delivery-full", payload); code != 202 {
				return fmt.Errorf("the webhook answered %d: %s", code, body)
			}
			return nil
		}},
		{"freeze", func() error {
			if r := cli("freeze", "staging", "--reason", "audit test"); r.code != 0 {
				return errors.New(r.stderr)
			}
			return nil
		}},
		{"secret.set", func() error {
			_, err := c.SetEnvSecret(ctx, "staging", "API_KEY", "s3cret")
			return err
		}},
		{"source.add", func() error {
			_, err := c.AddSource(ctx, server.SourceRequest{Name: "other", URL: other, Branch: "main", Interval: "1h"})
			return err
		}},
	}

	disk.Fill(t)
	for _, a := range actions {
		err := a.do()
		if err == nil {
			disk.Release(t)
			t.Fatalf("%s worked on a full disk", a.name)
		}
		msg := err.Error()
		for _, want := range []string{a.name + " on ", "was not done", "full", "free space on the disk of ferry's data folder"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s on a full disk: %q does not say %q", a.name, msg, want)
			}
		}
		var se *server.StatusError
		if errors.As(err, &se) && se.Code != 503 || !errors.As(err, &se) && !strings.Contains(msg, "503") {
			t.Errorf("%s on a full disk: %v, want 503", a.name, err)
		}
	}
	disk.Release(t)

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
	if n := hooks(); n != 0 {
		t.Errorf("%d webhook entries after the refused delivery", n)
	}
	if secs, err := c.EnvSecrets(ctx, "staging"); err != nil || len(secs) != 0 {
		t.Errorf("staging's secrets after a refused set: %+v, %v", secs, err)
	}
	if srcs, err := c.Sources(ctx); err != nil || len(srcs) != 1 {
		t.Errorf("sources after a refused add: %+v, %v", srcs, err)
	}
	for object, action := range map[string]string{"source/demo": "source.sync", "env/staging": "freeze", "source/other": "source.add", "promotion/" + approve: "promotion.approve", "env/prod": "deploy"} {
		want := 0
		if action == "source.sync" {
			want = syncs
		}
		if n := count(object, action); n != want {
			t.Errorf("%s %s: %d entries after the refusal, want %d", action, object, n, want)
		}
	}

	for _, a := range actions {
		if err := a.do(); err != nil {
			t.Errorf("%s with the space back: %v", a.name, err)
		}
	}
	for _, w := range []struct {
		object, action string
		want           int
	}{
		{"source/demo", "source.sync", syncs + 1},
		{"env/staging", "freeze", 1},
		{"env/staging", "secret.set", 1},
		{"source/other", "source.add", 1},
		{"promotion/" + approve, "promotion.approve", 1},
	} {
		if n := count(w.object, w.action); n != w.want {
			t.Errorf("%s %s: %d entries, want %d", w.action, w.object, n, w.want)
		}
	}
	if n := hooks(); n != 1 {
		t.Errorf("%d webhook entries, want 1", n)
	}
	// The approval lets ferry deploy the release to prod, recorded once.
	if got := liveRelease(t, c, "prod"); got != pending.Release {
		t.Errorf("prod runs %s, want the approved %s", got, pending.Release)
	}
	if n := count("env/prod", "deploy"); n != 1 {
		t.Errorf("deploy env/prod: %d entries, want 1", n)
	}
}

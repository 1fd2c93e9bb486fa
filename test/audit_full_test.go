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
// folder and tries what people do: each action fails with the reason and
// the fix, and leaves no trace. With the space back, each works and the
// audit log has exactly one entry per action.
func TestFullDiskActionsNeedTheirAuditEntry(t *testing.T) {
	disk := newSmallDisk(t, "64m")
	srv := gitserver.Start(t, "", "")
	demo, other := plainRepo(t, srv, "demo"), plainRepo(t, srv, "other")
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h}`, demo))
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
	if _, err := c.SyncSource(ctx, "demo"); err != nil {
		t.Fatalf("the first sync: %v", err)
	}
	count := func(object, action string) int {
		t.Helper()
		evs, err := c.Events(ctx, object, 500, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Items {
			if e.Action == action {
				n++
			}
		}
		return n
	}
	syncs := count("source/demo", "source.sync")

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
		if errors.As(err, &se) && se.Code != 503 {
			t.Errorf("%s on a full disk: status %d, want 503", a.name, se.Code)
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
	}
	if secs, err := c.EnvSecrets(ctx, "staging"); err != nil || len(secs) != 0 {
		t.Errorf("staging's secrets after a refused set: %+v, %v", secs, err)
	}
	if srcs, err := c.Sources(ctx); err != nil || len(srcs) != 1 {
		t.Errorf("sources after a refused add: %+v, %v", srcs, err)
	}
	for object, action := range map[string]string{"source/demo": "source.sync", "env/staging": "freeze", "source/other": "source.add"} {
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
	} {
		if n := count(w.object, w.action); n != w.want {
			t.Errorf("%s %s: %d entries, want %d", w.action, w.object, n, w.want)
		}
	}
}

package server

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/server/notify"
	"github.com/ferrycd/ferry/store"
)

const noticeImage = "127.0.0.1:5000/ferry/hello@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// noticeFakes is a store of one source, one run and one release.
type noticeFakes struct{ rel store.Release }

func (f noticeFakes) GetSource(_ context.Context, name string) (store.Source, error) {
	if name != "demo" {
		return store.Source{}, store.ErrNotFound
	}
	return store.Source{Name: "demo", URL: "https://bot:hunter2@git.example/demo.git", Branch: "main"}, nil
}

func (f noticeFakes) GetRun(_ context.Context, id int64) (store.Run, error) {
	if id != 4 {
		return store.Run{}, store.ErrNotFound
	}
	return store.Run{ID: 4, Source: "demo", Branch: "main", Commit: "c0ffee"}, nil
}

func (f noticeFakes) GetRelease(_ context.Context, id string) (store.Release, error) {
	if id != f.rel.ID {
		return store.Release{}, store.ErrNotFound
	}
	return f.rel, nil
}

func releaseOfExample(t *testing.T) store.Release {
	t.Helper()
	set, err := manifests.Load(context.Background(), os.DirFS("../examples/python"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := set.Pin(map[string]string{"hello": noticeImage})
	if err != nil {
		t.Fatal(err)
	}
	data, err := manifests.Render(pinned)
	if err != nil {
		t.Fatal(err)
	}
	return store.Release{ID: "sha256:feed", Source: "demo", Commit: "c0ffee", RunID: 4, Manifest: data}
}

func TestNoticesFromTheEngine(t *testing.T) {
	var got []notify.Event
	o := &notices{store: noticeFakes{rel: releaseOfExample(t)}, publicURL: "https://ferry.example", gatewayURL: "http://gw.example",
		publish: func(_ context.Context, ev notify.Event) { got = append(got, ev) }}
	run := store.Run{ID: 4, Source: "demo", Branch: "main", Commit: "c0ffee", Status: store.StatusFailed}
	o.run(pipeline.Event{Kind: pipeline.EventRunFinished, Run: run, Step: "test", Error: "1 test failed"})
	o.run(pipeline.Event{Kind: pipeline.EventReleaseMade, Run: run, Release: "sha256:feed"}) // not notified
	run.Status = store.StatusSucceeded
	o.run(pipeline.Event{Kind: pipeline.EventDeployed, Run: run, Release: "sha256:feed", Environment: "dev"})
	o.promotion(promote.Event{Kind: promote.EventRejected, Environment: "pr-3-demo", Release: "sha256:feed", Actor: "ann", Reason: "no"})
	o.promotion(promote.Event{Kind: promote.EventFrozen, Environment: "prod"}) // not notified

	if len(got) != 3 {
		t.Fatalf("published %d events: %+v; want 3", len(got), got)
	}
	failed, deployed, rejected := got[0], got[1], got[2]
	if failed.Kind != notify.RunFailed || failed.Step != "test" || failed.Reason != "1 test failed" || failed.Run != 4 ||
		failed.RunURL != "https://ferry.example/api/v1/runs/4" || failed.Repository != "https://git.example/demo.git" || failed.Commit != "c0ffee" {
		t.Errorf("failed run: %+v", failed)
	}
	if deployed.Kind != notify.Deployed || deployed.Environment != "dev" || deployed.URL != "http://gw.example/dev/" ||
		deployed.Functions["hello"] != noticeImage[strings.Index(noticeImage, "@")+1:] || deployed.Branch != "main" {
		t.Errorf("deployed: %+v", deployed)
	}
	if rejected.Kind != notify.Rejected || rejected.Actor != "ann" || rejected.Reason != "no" || !rejected.Preview || rejected.PullRequest != 3 ||
		rejected.Source != "demo" || rejected.Branch != "main" || rejected.Run != 4 || rejected.Commit != "c0ffee" || rejected.Functions["hello"] == "" {
		t.Errorf("rejected: %+v; want the release's source, run and commit filled from the store", rejected)
	}
}

// A pull request's run is about its preview: its events carry the
// preview's name (for the environments filter), and its deploy is told
// by the preview manager alone.
func TestNoticesOfAPullRequestsRun(t *testing.T) {
	var got []notify.Event
	o := &notices{store: noticeFakes{rel: releaseOfExample(t)}, publicURL: "https://ferry.example", gatewayURL: "http://gw.example",
		publish: func(_ context.Context, ev notify.Event) { got = append(got, ev) }}
	run := store.Run{ID: 9, Source: "demo", Branch: "pull/3", Commit: "c0ffee", PullRequest: 3, Status: store.StatusFailed}
	o.run(pipeline.Event{Kind: pipeline.EventDeploying, Run: run, Release: "sha256:feed", Environment: "pr-3-demo"})
	o.run(pipeline.Event{Kind: pipeline.EventDeployed, Run: run, Release: "sha256:feed", Environment: "pr-3-demo"})
	o.run(pipeline.Event{Kind: pipeline.EventRunFinished, Run: run, Step: "test", Error: "1 test failed"})
	if len(got) != 1 {
		t.Fatalf("published %d events: %+v; want the failed run only", len(got), got)
	}
	if f := got[0]; f.Kind != notify.RunFailed || f.Environment != "pr-3-demo" || !f.Preview || f.PullRequest != 3 {
		t.Errorf("failed run of pull request 3: %+v; want it about pr-3-demo", f)
	}
}

func TestNoticesWithoutReceiversReadNothing(t *testing.T) {
	o := &notices{store: nil} // a read would panic
	o.run(pipeline.Event{Kind: pipeline.EventRunStarted})
	o.promotion(promote.Event{Kind: promote.EventDeployed, Release: "sha256:feed"})
}

func TestNotificationsConfig(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/slack-url", []byte("https://hooks.slack.example/services/T/B/X\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FERRY_TEST_HOOK_SECRET", "s3cret")
	cfg, err := ParseConfig([]byte(`
publicURL: https://ferry.example/
notifications:
- {type: webhook, url: "https://hooks.example/ferry", secret: "env:FERRY_TEST_HOOK_SECRET", events: [deployed, step.ended]}
- {type: slack, url: "file:slack-url", environments: [prod, "pr-*"]}
- {type: slack, url: "https://hooks.slack.example/services/T/B/Y"}
`), dir, "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PublicURL != "https://ferry.example" {
		t.Errorf("publicURL %q; want it without its last slash", cfg.PublicURL)
	}
	var names []string
	for _, n := range cfg.Notifications {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "webhook,slack,slack-2" {
		t.Errorf("names %v; want webhook, slack, slack-2", names)
	}
	sinks, err := cfg.notifySinks()
	if err != nil || len(sinks) != 3 {
		t.Fatalf("sinks %v, %v", sinks, err)
	}
	ds, _ := sinks[0].Plan(notify.Event{Kind: notify.StepEnded})
	if len(ds) != 1 {
		t.Error("the webhook does not hear step.ended, which it names")
	}
	ds, _ = sinks[1].Plan(notify.Event{Kind: notify.Deployed, Environment: "staging"})
	if len(ds) != 0 {
		t.Error("the first Slack webhook hears staging, which it leaves out")
	}
	if h := notifyHost(cfg, "file:slack-url"); h != "hooks.slack.example" {
		t.Errorf("host %q", h)
	}

	cfg, err = ParseConfig([]byte(`listen: 127.0.0.1:9000`), dir, "f.yaml")
	if err != nil || cfg.PublicURL != "http://127.0.0.1:9000" {
		t.Errorf("default publicURL %q, %v", cfg.PublicURL, err)
	}
}

func TestNotificationsConfigErrors(t *testing.T) {
	_, err := ParseConfig([]byte(`
publicURL: ferry.example
notifications:
- {type: email, url: "mailto:ops@example.com"}
- {type: webhook}
- {type: slack, url: "env:FERRY_TEST_UNSET_SLACK"}
- {type: slack, url: "hooks.slack.example/services/T/B/SECRETPART", secret: x}
- {type: webhook, url: "https://a.example/", events: [deploy], environments: ["pr-["]}
- {name: same, type: webhook, url: "https://a.example/"}
- {name: same, type: webhook, url: "https://b.example/"}
`), t.TempDir(), "f.yaml")
	if err == nil {
		t.Fatal("a configuration full of mistakes loaded")
	}
	for _, want := range []string{
		`publicURL: "ferry.example" is not an http(s) URL`,
		`notifications[0].type: "email": give webhook`,
		"notifications[1].url: required",
		"notifications[2].url: $FERRY_TEST_UNSET_SLACK is not set",
		"notifications[3].url: not an http(s) URL",
		"notifications[3].secret: a Slack webhook is not signed",
		`notifications[4].events: "deploy" is not an event`,
		"notifications[6].name: a second notification named same",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "SECRETPART") {
		t.Errorf("the error repeats a Slack URL, a secret:\n%v", err)
	}
}

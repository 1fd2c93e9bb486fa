package github

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/server/notify"
)

func TestStatusesPerStep(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))

	steps := []notify.Event{
		{Kind: notify.StepStarted, Step: "build"},
		{Kind: notify.StepEnded, Step: "build", StepStatus: "succeeded"},
		{Kind: notify.StepStarted, Step: "test"},
		{Kind: notify.StepEnded, Step: "test", StepStatus: "failed", Reason: strings.Repeat("boom ", 60) + "\nsecond line"},
		{Kind: notify.StepEnded, Step: "lint", StepStatus: "skipped", Reason: "no lint configured"},
	}
	for _, st := range steps {
		ev := event(st.Kind)
		ev.Step, ev.StepStatus, ev.Reason = st.Step, st.StepStatus, st.Reason
		mustDeliver(t, s, ev)
	}
	got := gs.Statuses(owner, name, sha1)
	want := []struct{ context, state, description string }{
		{"ferry/build", "pending", "build running"},
		{"ferry/build", "success", "build succeeded"},
		{"ferry/test", "pending", "test running"},
		{"ferry/test", "failure", "test failed: boom"},
		{"ferry/lint", "success", "skipped: no lint configured"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d statuses, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.GetContext() != w.context || g.GetState() != w.state || !strings.HasPrefix(g.GetDescription(), w.description) {
			t.Errorf("status %d: %s %s %q, want %s %s %q…", i, g.GetContext(), g.GetState(), g.GetDescription(), w.context, w.state, w.description)
		}
		if g.GetTargetURL() != "http://ferry.test/runs/7" {
			t.Errorf("status %d: target_url %q, want the run's", i, g.GetTargetURL())
		}
		if len(g.GetDescription()) > 140 {
			t.Errorf("status %d: description of %d characters", i, len(g.GetDescription()))
		}
	}

	// A step's start and end are one key: the newer replaces the older
	// in the outbox when both wait.
	start, _ := s.Plan(func() notify.Event { e := event(notify.StepStarted); e.Step = "build"; return e }())
	end, _ := s.Plan(func() notify.Event {
		e := event(notify.StepEnded)
		e.Step = "build"
		e.StepStatus = "succeeded"
		return e
	}())
	if len(start) != 1 || len(end) != 1 || start[0].Key != end[0].Key {
		t.Errorf("a step's start and end plan keys %v and %v, want one shared key", start, end)
	}
}

func TestNoRepositoryNoNotice(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	ev := event(notify.StepStarted)
	ev.Step, ev.Repository = "build", "https://gitlab.com/acme/shop.git"
	ds, err := s.Plan(ev)
	if err != nil || len(ds) != 0 {
		t.Errorf("a source on no GitHub repository planned %d notices (%v), want none", len(ds), err)
	}
}

func previewEvent(kind notify.Kind, commit string) notify.Event {
	ev := event(kind)
	ev.PullRequest, ev.Preview, ev.Commit = 12, true, commit
	ev.Environment = "pr-12-shop"
	ev.URL = "http://gateway.test/pr-12-shop/"
	ev.Functions = map[string]string{"hello": "sha256:" + strings.Repeat("a", 64)}
	return ev
}

// previewComments are the comments carrying the preview's marker.
func previewComments(gs *githubtest.Server) []string {
	var out []string
	for _, c := range gs.Comments(owner, name, 12) {
		if strings.HasPrefix(c.GetBody(), marker(source, 12)) {
			out = append(out, c.GetBody())
		}
	}
	return out
}

func TestPreviewCommentMadeOnceThenEdited(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))

	mustDeliver(t, s, previewEvent(notify.PreviewBuilding, sha1))
	first := previewComments(gs)
	if len(first) != 1 || !strings.Contains(first[0], ": building") {
		t.Fatalf("after building: comments %q, want one saying building", first)
	}
	mustDeliver(t, s, previewEvent(notify.PreviewReady, sha1))
	got := previewComments(gs)
	if len(got) != 1 {
		t.Fatalf("after ready: %d preview comments, want the one edited", len(got))
	}
	for _, want := range []string{": live", "http://gateway.test/pr-12-shop/", "`hello`", "sha256:aaaa", "http://ferry.test/runs/7", sha1} {
		if !strings.Contains(got[0], want) {
			t.Errorf("comment lacks %q:\n%s", want, got[0])
		}
	}
	if got[0] == first[0] {
		t.Error("the comment was not edited")
	}
	if id := gs.Comments(owner, name, 12)[0].GetID(); gs.Edits(id) != 1 {
		t.Errorf("comment %d edited %d times, want once", id, gs.Edits(id))
	}
}

// A fork's new head that waits for the label says so in the comment,
// without a URL that would serve an older commit, and makes no
// deployment.
func TestPreviewCommentSaysAForkWaits(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	mustDeliver(t, s, previewEvent(notify.PreviewReady, sha1))
	waiting := previewEvent(notify.PreviewWaiting, sha2)
	waiting.Reason = "commit " + sha2[:12] + " waits for a permitted user to add the label ferry/preview"
	mustDeliver(t, s, waiting)
	got := previewComments(gs)
	if len(got) != 1 {
		t.Fatalf("%d preview comments, want the one edited", len(got))
	}
	for _, want := range []string{": waiting for the label", sha2, "ferry/preview"} {
		if !strings.Contains(got[0], want) {
			t.Errorf("comment lacks %q:\n%s", want, got[0])
		}
	}
	if strings.Contains(got[0], "http://gateway.test/pr-12-shop/") {
		t.Errorf("a waiting head's comment links the preview of an older commit:\n%s", got[0])
	}
	for _, d := range gs.Deployments(owner, name) {
		if d.GetSHA() == sha2 {
			t.Errorf("a deployment of the waiting head %s was made", sha2)
		}
	}
}

func TestPreviewCommentFoundByMarkerAfterLostMemo(t *testing.T) {
	gs := githubtest.New(t)
	c := tokenClient(t, gs)
	// Others talk on the pull request: more than a page of comments.
	for range 130 {
		gs.AddComment(owner, name, 12, "someone", "looks good")
	}
	mustDeliver(t, newSink(t, c, openStore(t)), previewEvent(notify.PreviewBuilding, sha1))
	// A new store: the memo of the comment's id is gone.
	mustDeliver(t, newSink(t, c, openStore(t)), previewEvent(notify.PreviewReady, sha1))
	got := previewComments(gs)
	if len(got) != 1 || !strings.Contains(got[0], ": live") {
		t.Fatalf("preview comments %q, want one, edited to live", got)
	}
}

func TestPreviewCommentDeletedIsMadeAgain(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	mustDeliver(t, s, previewEvent(notify.PreviewBuilding, sha1))
	cs := gs.Comments(owner, name, 12)
	if len(cs) != 1 {
		t.Fatalf("%d comments, want 1", len(cs))
	}
	gs.DeleteComment(cs[0].GetID())
	mustDeliver(t, s, previewEvent(notify.PreviewReady, sha1))
	got := gs.Comments(owner, name, 12)
	if len(got) != 1 || got[0].GetID() == cs[0].GetID() || !strings.Contains(got[0].GetBody(), ": live") {
		t.Fatalf("after deleting it: comments %v, want one new comment saying live", got)
	}
}

func TestDeployments(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t), "staging", "prod")

	mustDeliver(t, s, previewEvent(notify.PreviewBuilding, sha1))
	mustDeliver(t, s, previewEvent(notify.PreviewReady, sha1))
	torn := previewEvent(notify.PreviewTornDown, "")
	mustDeliver(t, s, torn)

	ds := gs.Deployments(owner, name)
	if len(ds) != 1 {
		t.Fatalf("%d deployments after a preview's life, want 1", len(ds))
	}
	d := ds[0]
	req := gs.DeploymentRequest(d.GetID())
	if d.GetEnvironment() != "pr-12-shop" || d.GetRef() != sha1 || !req.GetTransientEnvironment() || req.GetProductionEnvironment() || req.GetAutoMerge() {
		t.Errorf("preview deployment %s@%s transient=%v production=%v auto_merge=%v, want pr-12-shop@%s transient only",
			d.GetEnvironment(), d.GetRef(), req.GetTransientEnvironment(), req.GetProductionEnvironment(), req.GetAutoMerge(), sha1)
	}
	var states []string
	for _, st := range gs.DeploymentStatuses(d.GetID()) {
		states = append(states, st.GetState())
		if st.GetState() == "success" && st.GetEnvironmentURL() != "http://gateway.test/pr-12-shop/" {
			t.Errorf("success status: environment_url %q, want the preview's URL", st.GetEnvironmentURL())
		}
	}
	if strings.Join(states, ",") != "in_progress,success,inactive" {
		t.Errorf("preview deployment statuses %v, want in_progress, success, inactive", states)
	}

	// Deployments to environments: prod is production; dev is not
	// listed in github.deployments, so it makes none.
	for _, env := range []string{"dev", "prod"} {
		for _, kind := range []notify.Kind{notify.Deploying, notify.Deployed} {
			ev := event(kind)
			ev.Environment, ev.Commit, ev.URL, ev.Release = env, sha2, "http://gateway.test/"+env+"/", "sha256:"+strings.Repeat("b", 64)
			mustDeliver(t, s, ev)
		}
	}
	fail := event(notify.DeployFailed)
	fail.Environment, fail.Commit, fail.Reason = "staging", sha2, "target refused"
	mustDeliver(t, s, fail)

	ds = gs.Deployments(owner, name)
	if len(ds) != 3 {
		t.Fatalf("%d deployments, want 3 (preview, prod, staging)", len(ds))
	}
	prod, staging := ds[1], ds[2]
	if prod.GetEnvironment() != "prod" || !gs.DeploymentRequest(prod.GetID()).GetProductionEnvironment() {
		t.Errorf("second deployment %s, production=%v; want prod, production", prod.GetEnvironment(), gs.DeploymentRequest(prod.GetID()).GetProductionEnvironment())
	}
	if st := gs.DeploymentStatuses(prod.GetID()); len(st) != 2 || st[0].GetState() != "in_progress" || st[1].GetState() != "success" || st[1].GetEnvironmentURL() != "http://gateway.test/prod/" {
		t.Errorf("prod's statuses %v, want in_progress, then success with its URL", st)
	}
	if st := gs.DeploymentStatuses(staging.GetID()); staging.GetEnvironment() != "staging" || len(st) != 1 || st[0].GetState() != "failure" {
		t.Errorf("staging's deployment %s statuses %v, want one failure", staging.GetEnvironment(), st)
	}
}

func TestRateLimits(t *testing.T) {
	cases := []struct {
		name     string
		limit    githubtest.Limit
		min, max time.Duration
	}{
		{"primary (X-RateLimit-Reset)", githubtest.Limit{Status: http.StatusForbidden, Wait: 40 * time.Second}, 30 * time.Second, 41 * time.Second},
		{"secondary (Retry-After)", githubtest.Limit{Status: http.StatusTooManyRequests, Wait: 7 * time.Second}, 7 * time.Second, 7 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gs := githubtest.New(t)
			s := newSink(t, tokenClient(t, gs), openStore(t))
			gs.RateLimit(tc.limit)
			ev := event(notify.StepStarted)
			ev.Step = "build"
			err := deliver(t, s, ev)
			var re *notify.RetryError
			if !errors.As(err, &re) {
				t.Fatalf("rate limited: %v (%T), want a *notify.RetryError", err, err)
			}
			if re.After < tc.min || re.After > tc.max {
				t.Errorf("wait %s, want between %s and %s", re.After, tc.min, tc.max)
			}
			if len(gs.Statuses(owner, name, sha1)) != 0 {
				t.Error("a status was recorded while rate limited")
			}
		})
	}
}

func TestOutageIsRetriedPlainly(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	ev := event(notify.StepStarted)
	ev.Step = "build"
	gs.Down(true)
	err := deliver(t, s, ev)
	var re *notify.RetryError
	if err == nil || errors.As(err, &re) || notify.IsPermanent(err) {
		t.Fatalf("502: %v (%T), want a plain error the notifier backs off on", err, err)
	}
	gs.Down(false)
	mustDeliver(t, s, ev)
	if n := len(gs.Statuses(owner, name, sha1)); n != 1 {
		t.Errorf("%d statuses after GitHub came back, want 1", n)
	}
}

func TestHiddenRepositoryIsPermanent(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	gs.Hide(owner, name)
	err := deliver(t, s, stepEvent("build"))
	if !notify.IsPermanent(err) || !strings.Contains(err.Error(), "acme/shop") {
		t.Errorf("a repository the token cannot see: %v, want a permanent error naming it", err)
	}
}

func TestUnreadableNoticeIsPermanent(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	if err := s.Deliver(context.Background(), []byte("{")); !notify.IsPermanent(err) {
		t.Errorf("an unreadable notice: %v, want a permanent error", err)
	}
}

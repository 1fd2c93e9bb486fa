package server

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/store"
)

// pullEnv is a webhook receiver with Pull and Comment set, recording what
// they are told and the audit entries written.
type pullEnv struct {
	*hookEnv
	mu       sync.Mutex
	pulls    []store.PullEvent
	comments []CommentEvent
	audit    []store.Event
	// fail, when set, is what Pull and Comment return.
	fail error
}

func (pe *pullEnv) AppendEvent(_ context.Context, e store.Event) (store.Event, error) {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	pe.audit = append(pe.audit, e)
	return e, nil
}

func newPullEnv(t *testing.T) *pullEnv {
	t.Helper()
	pe := &pullEnv{}
	pe.hookEnv = newHookEnvAdjusted(t, nil, func(cfg *WebhookConfig) {
		cfg.Audit = pe
		cfg.Pull = func(_ context.Context, ev store.PullEvent) (string, error) {
			pe.mu.Lock()
			defer pe.mu.Unlock()
			if pe.fail != nil {
				return "", pe.fail
			}
			pe.pulls = append(pe.pulls, ev)
			return "preview " + store.PreviewName(ev.Source, ev.Number) + ": " + string(ev.Action), nil
		}
		cfg.Comment = func(_ context.Context, ev CommentEvent) (string, error) {
			pe.mu.Lock()
			defer pe.mu.Unlock()
			if pe.fail != nil {
				return "", pe.fail
			}
			pe.comments = append(pe.comments, ev)
			return "comment read", nil
		}
	})
	return pe
}

// takePulls returns what Pull heard since the last take.
func (pe *pullEnv) takePulls() []store.PullEvent {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	out := pe.pulls
	pe.pulls = nil
	return out
}

func (pe *pullEnv) takeComments() []CommentEvent {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	out := pe.comments
	pe.comments = nil
	return out
}

func (pe *pullEnv) auditActions() []string {
	pe.mu.Lock()
	defer pe.mu.Unlock()
	var out []string
	for _, e := range pe.audit {
		out = append(out, e.Action+" "+e.Object)
	}
	return out
}

// payload is testdata/webhooks/name with the fields of set changed (see
// githubtest.Payload).
func payload(t *testing.T, name string, set map[string]any) []byte {
	t.Helper()
	return githubtest.Payload(t, filepath.Join("testdata", "webhooks", name), set)
}

// deleteField, as a value given to payload, removes the field.
var deleteField = githubtest.Delete

// Each pull_request action ferry acts on is one event for Pull, with what
// the payload says of the people and the page, and no commit: Pull fetches
// it from Git. Other actions are ignored; nothing syncs the branch.
func TestGitHubPullRequestActions(t *testing.T) {
	env := newPullEnv(t)
	for _, tc := range []struct {
		action string
		merged bool
		want   store.PullAction
	}{
		{"opened", false, store.PullOpened},
		{"reopened", false, store.PullOpened},
		{"synchronize", false, store.PullUpdated},
		{"closed", false, store.PullClosed},
		{"closed", true, store.PullClosed},
		{"labeled", false, store.PullLabeled},
	} {
		set := map[string]any{"action": tc.action, "pull_request.merged": tc.merged}
		if tc.action == "labeled" {
			set["label"] = map[string]any{"id": 208045946, "name": "ferry/preview", "color": "f29513", "default": false}
		}
		body := payload(t, "github_pull_request.json", set)
		delivery := "pr-" + tc.action
		if tc.merged {
			delivery += "-merged"
		}
		a := env.do(env.githubRequest("app", "pull_request", delivery, body, testSecret)).want(t, http.StatusAccepted)
		if want := "preview pr-3-app: " + string(tc.want); a.reply["answer"] != want {
			t.Errorf("%s: answer %v, want %q", delivery, a.reply["answer"], want)
		}
		if a.reply["sync"] != nil {
			t.Errorf("%s: the answer says it synced: %s", delivery, a.body)
		}
		evs := env.takePulls()
		want := store.PullEvent{
			Source: "app", Number: 3, Action: tc.want, FromWebhook: true,
			Author: "mona", Sender: "hubot", Title: "Say hello in French",
			WebURL: "https://github.com/octo-org/app/pull/3",
		}
		if tc.action == "labeled" {
			// The payload's head only bounds what the label approves.
			want.Label, want.LabeledHead = "ferry/preview", "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
		}
		if len(evs) != 1 || evs[0] != want {
			t.Errorf("%s: Pull heard %+v, want %+v", delivery, evs, want)
		}
	}
	for _, action := range []string{"edited", "assigned", "review_requested", "unlabeled", "converted_to_draft"} {
		body := payload(t, "github_pull_request.json", map[string]any{"action": action})
		a := env.do(env.githubRequest("app", "pull_request", "pr-"+action, body, testSecret)).want(t, http.StatusOK)
		if ig, _ := a.reply["ignored"].(string); !strings.Contains(ig, action) {
			t.Errorf("%s: answer %s does not say it was ignored", action, a.body)
		}
	}
	if evs := env.takePulls(); len(evs) != 0 {
		t.Errorf("ignored actions reached Pull: %+v", evs)
	}
	env.wantSyncs()
	if got := env.auditActions(); len(got) != 6 || got[0] != "source.pull source/app" {
		t.Errorf("audit entries %q, want six source.pull source/app", got)
	}
	if strings.Contains(env.logged(), headSHA) {
		t.Errorf("the payload's head commit reached the log:\n%s", env.logged())
	}
}

// A request whose head is in another repository, or in one since
// deleted, is a fork's.
func TestGitHubPullRequestFork(t *testing.T) {
	env := newPullEnv(t)
	for name, tc := range map[string]struct {
		set  map[string]any
		fork bool
	}{
		"same repository":    {map[string]any{}, false},
		"another repository": {map[string]any{"pull_request.head.repo.full_name": "mona/app", "pull_request.head.repo.fork": true}, true},
		"deleted fork":       {map[string]any{"pull_request.head.repo": nil}, true},
		"head repo missing":  {map[string]any{"pull_request.head.repo": deleteField}, true},
	} {
		body := payload(t, "github_pull_request.json", tc.set)
		env.do(env.githubRequest("app", "pull_request", "fork-"+name, body, testSecret)).want(t, http.StatusAccepted)
		evs := env.takePulls()
		if len(evs) != 1 || evs[0].Fork != tc.fork {
			t.Errorf("%s: Pull heard %+v, want Fork %v", name, evs, tc.fork)
		}
	}
}

// Forged or unsigned pull requests and comments reach nobody; a replay is
// a duplicate; Pull's failure is the sender's 503.
func TestPullAndCommentDeliveriesAreChecked(t *testing.T) {
	env := newPullEnv(t)
	pr := payload(t, "github_pull_request.json", nil)
	comment := payload(t, "github_issue_comment.json", nil)
	for name, req := range map[string]*http.Request{
		"forged pull_request":   env.githubRequest("app", "pull_request", "f1", pr, "not the secret"),
		"unsigned pull_request": env.githubRequest("app", "pull_request", "f2", pr, ""),
		"forged comment":        env.githubRequest("app", "issue_comment", "f3", comment, "not the secret"),
		"forged merge request":  env.gitlabRequest("app", "Merge Request Hook", payload(t, "gitlab_merge_request.json", nil), "not the secret"),
	} {
		env.do(req).want(t, http.StatusUnauthorized)
		if len(env.takePulls()) != 0 || len(env.takeComments()) != 0 {
			t.Fatalf("%s reached a callback", name)
		}
	}

	env.do(env.githubRequest("app", "pull_request", "once", pr, testSecret)).want(t, http.StatusAccepted)
	a := env.do(env.githubRequest("app", "pull_request", "once", pr, testSecret)).want(t, http.StatusOK)
	if a.reply["duplicate"] != true || len(env.takePulls()) != 1 {
		t.Errorf("a replayed pull_request: %s, want one event and a duplicate", a.body)
	}
	env.do(env.githubRequest("app", "issue_comment", "c-once", comment, testSecret)).want(t, http.StatusAccepted)
	a = env.do(env.githubRequest("app", "issue_comment", "c-once", comment, testSecret)).want(t, http.StatusOK)
	if a.reply["duplicate"] != true || len(env.takeComments()) != 1 {
		t.Errorf("a replayed comment: %s, want one comment and a duplicate", a.body)
	}

	env.mu.Lock()
	env.fail = errors.New("the store refused: disk full")
	env.mu.Unlock()
	a = env.do(env.githubRequest("app", "pull_request", "fails", pr, testSecret)).want(t, http.StatusServiceUnavailable)
	if !strings.Contains(a.errorMessage(), "disk full") {
		t.Errorf("Pull's failure answered %q, want its message", a.errorMessage())
	}
	a = env.do(env.githubRequest("app", "commit_comment", "fails-c", payload(t, "github_commit_comment.json", nil), testSecret)).want(t, http.StatusServiceUnavailable)
	if !strings.Contains(a.errorMessage(), "disk full") {
		t.Errorf("Comment's failure answered %q, want its message", a.errorMessage())
	}
	env.takePulls()
	env.takeComments()

	// Once the fault is mended, the sender's redelivery of a failed
	// delivery acts: it is not a duplicate.
	env.mu.Lock()
	env.fail = nil
	env.mu.Unlock()
	a = env.do(env.githubRequest("app", "pull_request", "fails", pr, testSecret)).want(t, http.StatusAccepted)
	if a.reply["duplicate"] == true || len(env.takePulls()) != 1 {
		t.Errorf("the redelivery of a failed pull_request was not acted on: %s", a.body)
	}
	a = env.do(env.githubRequest("app", "commit_comment", "fails-c", payload(t, "github_commit_comment.json", nil), testSecret)).want(t, http.StatusAccepted)
	if a.reply["duplicate"] == true || len(env.takeComments()) != 1 {
		t.Errorf("the redelivery of a failed commit_comment was not acted on: %s", a.body)
	}
}

// GitLab's merge request actions map as GitHub's do: an update is a push
// only with oldrev, and otherwise matters when it adds labels, one event
// per label added.
func TestGitLabMergeRequestActions(t *testing.T) {
	env := newPullEnv(t)
	labels := func(prev, cur []string) map[string]any {
		l := func(names []string) []any {
			out := []any{}
			for i, n := range names {
				out = append(out, map[string]any{"id": 200 + i, "title": n, "color": "#428BCA", "project_id": 15, "type": "ProjectLabel"})
			}
			return out
		}
		return map[string]any{"labels": map[string]any{"previous": l(prev), "current": l(cur)}}
	}
	base := store.PullEvent{Source: "app", Number: 7, FromWebhook: true, Sender: "root",
		Title: "Say hello in French", WebURL: "https://gitlab.example.com/octo-org/app/-/merge_requests/7"}
	with := func(a store.PullAction, label string) store.PullEvent {
		ev := base
		ev.Action, ev.Label = a, label
		if a == store.PullLabeled {
			ev.LabeledHead = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
		}
		return ev
	}
	for _, tc := range []struct {
		name string
		set  map[string]any
		want []store.PullEvent
	}{
		{"open", map[string]any{"object_attributes.action": "open"}, []store.PullEvent{with(store.PullOpened, "")}},
		{"reopen", map[string]any{"object_attributes.action": "reopen"}, []store.PullEvent{with(store.PullOpened, "")}},
		{"push", map[string]any{"object_attributes.action": "update", "object_attributes.oldrev": beforeSHA}, []store.PullEvent{with(store.PullUpdated, "")}},
		{"title edited", map[string]any{"object_attributes.action": "update", "changes": map[string]any{"title": map[string]any{"previous": "Hi", "current": "Say hello in French"}}}, nil},
		{"labels added", map[string]any{"object_attributes.action": "update", "changes": labels([]string{"bug"}, []string{"bug", "ferry/preview", "urgent"})},
			[]store.PullEvent{with(store.PullLabeled, "ferry/preview"), with(store.PullLabeled, "urgent")}},
		{"a label swapped for another", map[string]any{"object_attributes.action": "update", "changes": labels([]string{"bug"}, []string{"ferry/preview"})}, []store.PullEvent{with(store.PullLabeled, "ferry/preview")}},
		{"close", map[string]any{"object_attributes.action": "close"}, []store.PullEvent{with(store.PullClosed, "")}},
		{"merge", map[string]any{"object_attributes.action": "merge"}, []store.PullEvent{with(store.PullClosed, "")}},
		{"approved", map[string]any{"object_attributes.action": "approved"}, nil},
	} {
		body := payload(t, "gitlab_merge_request.json", tc.set)
		status := http.StatusAccepted
		if tc.want == nil {
			status = http.StatusOK
		}
		a := env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret)).want(t, status)
		got := env.takePulls()
		if len(got) != len(tc.want) {
			t.Errorf("%s: Pull heard %+v, want %+v", tc.name, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%s: Pull heard %+v, want %+v", tc.name, got[i], tc.want[i])
			}
		}
		if tc.want == nil && a.reply["ignored"] == nil {
			t.Errorf("%s: answer %s does not say it was ignored", tc.name, a.body)
		}
	}
	body := payload(t, "gitlab_merge_request.json", map[string]any{"object_attributes.source_project_id": 16})
	env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret)).want(t, http.StatusAccepted)
	if evs := env.takePulls(); len(evs) != 1 || !evs[0].Fork {
		t.Errorf("a merge request from another project: %+v, want a fork", evs)
	}
	env.wantSyncs()
}

// Without Pull, a GitLab merge request syncs the branch, whatever it is.
func TestGitLabMergeRequestWithoutPullSyncs(t *testing.T) {
	env := newHookEnv(t)
	body := payload(t, "gitlab_merge_request.json", map[string]any{"object_attributes.action": "update"})
	env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret)).want(t, http.StatusAccepted)
	env.wantSyncs("app")
}

// New comments that start with "/ferry " go to Comment: on a pull
// request, an issue or a commit; others, and edits, are ignored.
func TestGitHubComments(t *testing.T) {
	env := newPullEnv(t)
	env.do(env.githubRequest("app", "issue_comment", "c1", payload(t, "github_issue_comment.json", nil), testSecret)).want(t, http.StatusAccepted)
	env.do(env.githubRequest("app", "issue_comment", "c2", payload(t, "github_issue_comment.json", map[string]any{
		"issue.pull_request": deleteField, "issue.number": 12, "comment.body": "/ferry approve staging", "comment.id": 77,
	}), testSecret)).want(t, http.StatusAccepted)
	a := env.do(env.githubRequest("app", "commit_comment", "c3", payload(t, "github_commit_comment.json", nil), testSecret)).want(t, http.StatusAccepted)
	if a.reply["answer"] != "comment read" {
		t.Errorf("answer %s, want Comment's", a.body)
	}
	want := []CommentEvent{
		{Source: "app", Number: 3, IsPullRequest: true, CommentID: 1933524000, Body: "/ferry approve prod", Author: "octocat"},
		{Source: "app", Number: 12, CommentID: 77, Body: "/ferry approve staging", Author: "octocat"},
		{Source: "app", CommentID: 138972100, Body: "/ferry reject prod the logo is upside down", Author: "octocat", Commit: afterSHA},
	}
	got := env.takeComments()
	if len(got) != len(want) {
		t.Fatalf("Comment heard %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Comment heard %+v, want %+v", got[i], want[i])
		}
	}

	for name, set := range map[string]map[string]any{
		"no command":       {"comment.body": "LGTM"},
		"ferry in passing": {"comment.body": "ask /ferry approve prod"},
		"no space":         {"comment.body": "/ferryapprove prod"},
		"edited":           {"action": "edited"},
		"deleted":          {"action": "deleted"},
	} {
		a := env.do(env.githubRequest("app", "issue_comment", "ig-"+name, payload(t, "github_issue_comment.json", set), testSecret)).want(t, http.StatusOK)
		if a.reply["ignored"] == nil {
			t.Errorf("%s: answer %s does not say it was ignored", name, a.body)
		}
	}
	if got := env.takeComments(); len(got) != 0 {
		t.Errorf("ignored comments reached Comment: %+v", got)
	}
	if got := env.auditActions(); len(got) != 3 || got[2] != "source.comment source/app" {
		t.Errorf("audit entries %q, want three source.comment source/app", got)
	}
	env.wantSyncs()

	// Without Comment, comments are ignored.
	plain := newHookEnv(t)
	a = plain.do(plain.githubRequest("app", "issue_comment", "c1", payload(t, "github_issue_comment.json", nil), testSecret)).want(t, http.StatusOK)
	if a.reply["ignored"] == nil {
		t.Errorf("without Comment: %s, want it ignored", a.body)
	}
	plain.wantSyncs()
}

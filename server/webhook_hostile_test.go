package server

import (
	"fmt"
	"net/http"
	"testing"
)

// A merge request whose payload does not name both projects (an older
// GitLab, a system hook relayed) has an origin ferry cannot confirm: it
// is a fork's, as a polled one is, not the base project's.
func TestGitLabMergeRequestWithoutProjectsIsAFork(t *testing.T) {
	env := newPullEnv(t)
	for _, tc := range []struct {
		name string
		set  map[string]any
	}{
		{"no source project", map[string]any{"object_attributes.source_project_id": deleteField}},
		{"no target project", map[string]any{"object_attributes.target_project_id": deleteField}},
		{"neither", map[string]any{"object_attributes.source_project_id": deleteField, "object_attributes.target_project_id": deleteField}},
		{"null source", map[string]any{"object_attributes.source_project_id": nil}},
	} {
		tc.set["object_attributes.action"] = "open"
		body := payload(t, "gitlab_merge_request.json", tc.set)
		env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret)).want(t, http.StatusAccepted)
		if evs := env.takePulls(); len(evs) != 1 || !evs[0].Fork {
			t.Errorf("%s: %+v, want one event, a fork's", tc.name, evs)
		}
	}
	// Both named and the same: the base project's own.
	body := payload(t, "gitlab_merge_request.json", map[string]any{"object_attributes.action": "open"})
	env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret)).want(t, http.StatusAccepted)
	if evs := env.takePulls(); len(evs) != 1 || evs[0].Fork {
		t.Errorf("same project: %+v, want one event, not a fork's", evs)
	}
}

// A pull request's number is the payload's word, so odd ones name no
// request: 0, negative or past int64 are refused before anyone hears
// them; GitLab's iid alike.
func TestPullRequestNumbersFromThePayload(t *testing.T) {
	env := newPullEnv(t)
	for i, n := range []any{0, -1, -9223372036854775808, 1e30, "7", 1.5} {
		body := payload(t, "github_pull_request.json", map[string]any{"number": n, "pull_request.number": n})
		a := env.do(env.githubRequest("app", "pull_request", fmt.Sprintf("n-%d", i), body, testSecret))
		if a.status < 400 || a.status >= 500 {
			t.Errorf("number %v: %d %s; want it refused", n, a.status, a.body)
		}
		if evs := env.takePulls(); len(evs) != 0 {
			t.Errorf("number %v: Pull heard %+v", n, evs)
		}
		body = payload(t, "gitlab_merge_request.json", map[string]any{"object_attributes.iid": n, "object_attributes.action": "open"})
		a = env.do(env.gitlabRequest("app", "Merge Request Hook", body, testSecret))
		if a.status < 400 || a.status >= 500 {
			t.Errorf("iid %v: %d %s; want it refused", n, a.status, a.body)
		}
		if evs := env.takePulls(); len(evs) != 0 {
			t.Errorf("iid %v: Pull heard %+v", n, evs)
		}
	}
	body := payload(t, "github_pull_request.json", map[string]any{"number": 9223372036854775807, "pull_request.number": 9223372036854775807})
	env.do(env.githubRequest("app", "pull_request", "n-max", body, testSecret)).want(t, http.StatusAccepted)
	if evs := env.takePulls(); len(evs) != 1 || evs[0].Number != 9223372036854775807 {
		t.Errorf("the largest number: %+v", evs)
	}
}

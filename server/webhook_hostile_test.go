package server

import (
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

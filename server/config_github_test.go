package server

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/store"
)

func TestGitHubConfig(t *testing.T) {
	t.Setenv("GH_TOKEN", "ghp_from_the_environment")
	cfg, err := ParseConfig([]byte(`
sources:
- {name: demo, url: ./demo-repo, github: acme/shop}
tokens:
- {name: alice, token: alice-token-0123456789, roles: [approver]}
github:
  token: env:GH_TOKEN
  approvers: {octocat: alice}
`), t.TempDir(), "ferry-serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.GitHub.Deployments; !slices.Equal(got, []string{"dev", "staging", "prod"}) || cfg.GitHub.Permission != "write" {
		t.Errorf("defaults: deployments %v, permission %q; want every environment, write", got, cfg.GitHub.Permission)
	}
	cl, err := cfg.githubClient()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := cfg.githubRepos(cl).For("demo", "/srv/demo-repo"); !ok || r.String() != "acme/shop" {
		t.Errorf("source demo maps to %v %v, want acme/shop", r, ok)
	}
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := cfg.GitHubSink(cl, st); err != nil || s == nil {
		t.Errorf("GitHubSink: %v %v", s, err)
	}
}

func TestGitHubConfigErrors(t *testing.T) {
	cases := []struct{ yaml, want string }{
		{"github: {apiURL: 'https://api.github.com/'}", "github: give a token or an app"},
		{"github: {token: abc, app: {id: 1, installationID: 2, privateKey: file:key.pem}}", "not both"},
		{"github: {app: {id: 1, installationID: 2, privateKey: '-----BEGIN'}}", "github.app.privateKey: write file:PATH"},
		{"github: {app: {installationID: 2, privateKey: file:missing.pem}}", "github.app.id: give the App's id"},
		{"github: {token: env:NOT_SET_ANYWHERE_X}", "github.token: $NOT_SET_ANYWHERE_X is not set"},
		{"github: {token: abc, deployments: [qa]}", `github.deployments[0]: "qa" is not a configured environment`},
		{"github: {token: abc, permission: owner}", `github.permission: "owner" is not one of`},
		{"github: {token: abc, approvers: {octocat: nobody}}", `octocat maps to "nobody", which is not a token`},
		{"github: {token: abc, approvers: {octocat: viewer}}", "lacks the approver role"},
		{"sources: [{name: demo, url: ./demo-repo, github: 'not a repo'}]", "sources[0].github"},
	}
	for _, tc := range cases {
		_, err := ParseConfig([]byte(tc.yaml+"\ntokens:\n- {name: viewer, token: viewer-token-0123456789, roles: [viewer]}\n"), t.TempDir(), "ferry-serve.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.yaml, err, tc.want)
		}
	}
}

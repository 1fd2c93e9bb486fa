package server

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/server/github"
	"github.com/ferrycd/ferry/store"
)

// GitHubConfig is the configuration's `github:` block: how ferry reaches
// GitHub's API to post statuses, the preview comment and deployments, and
// who may approve from a comment.
type GitHubConfig struct {
	// APIURL is the REST API (default https://api.github.com/; GitHub
	// Enterprise: https://HOST/api/v3/).
	APIURL string `yaml:"apiURL"`
	// Token is a token with the scopes the README lists: "env:VAR",
	// "$VAR", "file:PATH" (relative to the configuration) or the value.
	Token string `yaml:"token"`
	// App, instead of Token: a GitHub App's installation.
	App *GitHubAppConfig `yaml:"app"`
	// Deployments are the environments whose deployments become GitHub
	// deployments (default: every configured environment). Previews
	// always do.
	Deployments []string `yaml:"deployments"`
	// Production are the environments GitHub marks as production
	// (default: those named prod or production).
	Production []string `yaml:"production"`
	// Approvers maps GitHub logins to the names of ferry tokens: a
	// "/ferry approve ENV" comment counts as that token's approval, when
	// the token has the approver role and the user at least Permission on
	// the repository.
	Approvers map[string]string `yaml:"approvers"`
	// Permission is that least permission: read, triage, write (the
	// default), maintain or admin.
	Permission string `yaml:"permission"`
}

// GitHubAppConfig is a GitHub App installation.
type GitHubAppConfig struct {
	ID             int64 `yaml:"id"`
	InstallationID int64 `yaml:"installationID"`
	// PrivateKey is the App's PEM key: "file:PATH" or "env:VAR".
	PrivateKey string `yaml:"privateKey"`
}

// checkGitHub checks the github block and the sources' github keys. It
// runs after checkEnvironments and checkTokens, whose names it uses.
func (c *Config) checkGitHub() []string {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	for i, s := range c.Sources {
		if s.GitHub == "" {
			continue
		}
		if _, err := github.ParseRepo(s.GitHub); err != nil {
			bad("sources[%d].github: %v", i, err)
		}
	}
	g := c.GitHub
	if g == nil {
		return errs
	}
	switch {
	case g.Token == "" && g.App == nil:
		bad("github: give a token or an app (see the README's GitHub section)")
	case g.Token != "" && g.App != nil:
		bad("github: give a token or an app, not both")
	case g.Token != "":
		if _, err := c.secretValue(g.Token); err != nil {
			bad("github.token: %v", err)
		}
	default:
		if g.App.ID <= 0 {
			bad("github.app.id: give the App's id (its settings page shows it)")
		}
		if g.App.InstallationID <= 0 {
			bad("github.app.installationID: give the installation's id (the number at the end of the installation's settings URL)")
		}
		if !strings.HasPrefix(g.App.PrivateKey, envRef) && !strings.HasPrefix(g.App.PrivateKey, fileRef) {
			bad("github.app.privateKey: write file:PATH (the .pem GitHub generated) or env:VAR, so the key stays out of this file")
		} else if _, err := c.secretValue(g.App.PrivateKey); err != nil {
			bad("github.app.privateKey: %v", err)
		}
	}
	if len(errs) == 0 {
		if _, err := c.githubClient(); err != nil {
			bad("github: %v", err)
		}
	}
	envs := map[string]bool{}
	for _, e := range c.Environments {
		envs[e.Name] = true
	}
	if g.Deployments == nil {
		for _, e := range c.Environments {
			g.Deployments = append(g.Deployments, e.Name)
		}
	}
	for i, e := range g.Deployments {
		if !envs[e] {
			bad("github.deployments[%d]: %q is not a configured environment", i, e)
		}
	}
	for i, e := range g.Production {
		if !envs[e] {
			bad("github.production[%d]: %q is not a configured environment", i, e)
		}
	}
	if g.Permission == "" {
		g.Permission = "write"
	}
	if slices.Index(github.Permissions, g.Permission) < 1 {
		bad("github.permission: %q is not one of read, triage, write, maintain, admin", g.Permission)
	}
	logins := make([]string, 0, len(g.Approvers))
	for l := range g.Approvers {
		logins = append(logins, l)
	}
	slices.Sort(logins)
	for _, login := range logins {
		name := g.Approvers[login]
		i := slices.IndexFunc(c.Tokens, func(t TokenConfig) bool { return t.Name == name })
		switch {
		case i < 0:
			bad("github.approvers: %s maps to %q, which is not a token; name one of tokens[].name", login, name)
		case !slices.Contains(c.Tokens[i].Roles, string(RoleApprover)) && !slices.Contains(c.Tokens[i].Roles, string(RoleAdmin)):
			bad("github.approvers: %s maps to token %s, which lacks the approver role; give the token the role or drop the mapping", login, name)
		}
	}
	return errs
}

// githubClient is the configured client; nil without a github block.
func (c *Config) githubClient() (*github.Client, error) {
	g := c.GitHub
	if g == nil {
		return nil, nil
	}
	cfg := github.Config{APIURL: g.APIURL}
	if g.App != nil {
		key, err := c.secretValue(g.App.PrivateKey)
		if err != nil {
			return nil, err
		}
		cfg.App = &github.App{ID: g.App.ID, InstallationID: g.App.InstallationID, PrivateKey: []byte(key)}
	} else {
		tok, err := c.secretValue(g.Token)
		if err != nil {
			return nil, err
		}
		cfg.Token = tok
	}
	return github.New(cfg)
}

// githubRepos is how sources map to repositories.
func (c *Config) githubRepos(cl *github.Client) github.Repos {
	named := map[string]github.Repo{}
	for _, s := range c.Sources {
		if r, err := github.ParseRepo(s.GitHub); err == nil {
			named[s.Name] = r
		}
	}
	return cl.Repos(named)
}

// GitHubSink is the notify sink for the github block over cl, Serve's one
// client; nil without one. Serve hands it to the notifier with the store's
// outbox as its memos.
func (c *Config) GitHubSink(cl *github.Client, memos github.Memos) (*github.Sink, error) {
	if cl == nil {
		return nil, nil
	}
	return github.NewSink(github.SinkConfig{Client: cl, Memos: memos, Repos: c.githubRepos(cl),
		Deployments: c.GitHub.Deployments, Production: c.GitHub.Production})
}

// GitHubApprovals handles "/ferry approve|reject" comments for the github
// block over cl, Serve's one client; nil without one. The webhook's comment
// events go to its Handle.
func (c *Config) GitHubApprovals(cl *github.Client, promoter promote.Promoter, st store.Store) (*github.Approvals, error) {
	if cl == nil {
		return nil, nil
	}
	approvers := map[string]github.Approver{}
	for login, name := range c.GitHub.Approvers {
		for _, t := range c.tokens() {
			if t.Name == name {
				id := Identity{Name: t.Name, Email: t.Email, Groups: t.Groups, Roles: t.Roles}
				approvers[login] = github.Approver{
					Identity:   promote.Identity{Name: id.Name, Email: id.Email, Groups: id.Groups},
					CanApprove: id.Has(RoleApprover),
				}
			}
		}
	}
	return github.NewApprovals(github.ApprovalsConfig{Client: cl, Repos: c.githubRepos(cl), Promoter: promoter, Store: st,
		Approvers: approvers, Permission: c.GitHub.Permission})
}

package github

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Repo is a repository on GitHub.
type Repo struct {
	Owner string
	Name  string
}

func (r Repo) String() string { return r.Owner + "/" + r.Name }

var repoPartRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// ParseRepo reads "owner/name".
func ParseRepo(s string) (Repo, error) {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || !repoPartRE.MatchString(owner) || !repoPartRE.MatchString(name) {
		return Repo{}, fmt.Errorf("%q is not a GitHub repository; write it owner/name", s)
	}
	return Repo{Owner: owner, Name: name}, nil
}

// Repos says which repository each source maps to.
type Repos struct {
	// Named are the configuration's `github: owner/name`, by source.
	Named map[string]Repo
	// Host is the web host repositories are on (github.com, or an
	// Enterprise host); URLs on another host map to none.
	Host string
}

// For is source's repository: its configured one, else the one its Git
// URL names on Host (https://HOST/o/r(.git), ssh://git@HOST/o/r.git,
// git@HOST:o/r.git). ok is false for a source on no GitHub repository.
func (rs Repos) For(source, gitURL string) (Repo, bool) {
	if r, ok := rs.Named[source]; ok {
		return r, true
	}
	host := rs.Host
	if host == "" {
		host = "github.com"
	}
	var path string
	if u, err := url.Parse(gitURL); err == nil && u.Host != "" {
		if !strings.EqualFold(u.Hostname(), host) || (u.Scheme != "https" && u.Scheme != "ssh" && u.Scheme != "http") {
			return Repo{}, false
		}
		path = u.Path
	} else if at, rest, ok := strings.Cut(gitURL, "@"); ok && !strings.Contains(at, "/") {
		h, p, ok := strings.Cut(rest, ":")
		if !ok || !strings.EqualFold(h, host) {
			return Repo{}, false
		}
		path = p
	} else {
		return Repo{}, false
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	r, err := ParseRepo(path)
	return r, err == nil
}

// Repos returns how this client maps sources, with named ones first.
func (c *Client) Repos(named map[string]Repo) Repos {
	return Repos{Named: named, Host: c.web}
}

// PullOpen asks GitHub whether pull request number of repo is open: ferry
// polling without webhooks cannot tell, since GitHub keeps a closed
// request's refs/pull/N/head.
func (c *Client) PullOpen(ctx context.Context, repo Repo, number int) (bool, error) {
	pr, _, err := c.gh.PullRequests.Get(ctx, repo.Owner, repo.Name, number)
	if err != nil {
		return false, fmt.Errorf("github: pull request %s#%d: %w", repo, number, err)
	}
	return pr.GetState() == "open", nil
}

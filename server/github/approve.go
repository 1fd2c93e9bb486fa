package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gh "github.com/google/go-github/v57/github"

	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// Comment is a webhook's issue_comment or commit_comment event, as the
// webhook handler passes it on. Only Source, Number and CommentID are
// used: which comment to read. The rest of the payload is not trusted.
type Comment struct {
	Source        string
	Number        int // the issue or pull request; 0 for a commit comment
	IsPullRequest bool
	CommentID     int64
	Body          string
	Author        string
	Commit        string
}

// Approver is the ferry identity a GitHub login acts as, and whether its
// token has the approver role.
type Approver struct {
	Identity   promote.Identity
	CanApprove bool
}

// ApprovalStore is what approvals read from the store.
type ApprovalStore interface {
	GetSource(ctx context.Context, name string) (store.Source, error)
	GetRelease(ctx context.Context, id string) (store.Release, error)
	FindPromotions(ctx context.Context, q store.PromotionQuery) ([]store.Promotion, error)
}

// ApprovalsConfig wires approvals from comments.
type ApprovalsConfig struct {
	Client   *Client
	Repos    Repos
	Promoter promote.Promoter
	Store    ApprovalStore
	// Approvers maps GitHub logins to ferry identities.
	Approvers map[string]Approver
	// Permission is the least permission on the repository a commenter
	// needs (default write).
	Permission string
}

// Approvals turns "/ferry approve ENV" and "/ferry reject ENV REASON"
// comments into decisions on pending promotions.
type Approvals struct {
	cfg ApprovalsConfig
}

// Permissions, least first, as GitHub names them.
var Permissions = []string{"none", "read", "triage", "write", "maintain", "admin"}

// NewApprovals checks cfg.
func NewApprovals(cfg ApprovalsConfig) (*Approvals, error) {
	if cfg.Client == nil || cfg.Promoter == nil || cfg.Store == nil {
		return nil, errors.New("github approvals: a client, a promoter and a store are required")
	}
	if cfg.Permission == "" {
		cfg.Permission = "write"
	}
	if slices.Index(Permissions, cfg.Permission) < 1 {
		return nil, fmt.Errorf("github approvals: permission %q is not one of read, triage, write, maintain, admin", cfg.Permission)
	}
	return &Approvals{cfg: cfg}, nil
}

// commandRE is a command on a line of its own.
var commandRE = regexp.MustCompile(`(?m)^\s*/ferry\s+(approve|reject)\b[ \t]*([^\s]*)[ \t]*(.*)$`)

// read is the comment as GitHub has it.
type read struct {
	body, login, url string
	number           int    // issue comments
	commit           string // commit comments
}

// Handle acts on one comment event and says what it did ("" when the
// comment holds no command, or its source is on no GitHub repository).
// It answers the comment on GitHub with the same words. An error is
// GitHub or the store failing, not a refusal.
func (a *Approvals) Handle(ctx context.Context, c Comment) (string, error) {
	src, err := a.cfg.Store.GetSource(ctx, c.Source)
	if err != nil {
		return "", fmt.Errorf("github approvals: source %s: %w", c.Source, err)
	}
	repo, ok := a.cfg.Repos.For(src.Name, src.URL)
	if !ok {
		return "", nil
	}
	cm, err := a.read(ctx, repo, c)
	if err != nil {
		return "", err
	}
	m := commandRE.FindStringSubmatch(outsideCode(cm.body))
	if m == nil {
		return "", nil
	}
	// why: ferry's own comments (its replies, the preview comment) are
	// never its commands, whatever its login is mapped to.
	self, err := a.cfg.Client.Self(ctx)
	if err != nil {
		return "", fmt.Errorf("github approvals: %w", err)
	}
	if strings.EqualFold(self, cm.login) {
		return "", nil
	}
	verb, env, reason := m[1], m[2], strings.TrimSpace(m[3])
	who, ok := a.approver(cm.login)
	if !ok {
		// why no reply: anyone may comment on a public repository, and a
		// reply to each would let strangers spend ferry's rate limit and
		// fill pull requests with its answers. The webhook's answer and
		// ferry's log say it.
		return fmt.Sprintf("GitHub user %s is not mapped to a ferry approver (github.approvers in ferry's configuration); nothing was changed, and ferry did not reply", cm.login), nil
	}
	msg, err := a.decide(ctx, repo, src.Name, cm, who, verb, env, reason)
	if err != nil {
		return "", err
	}
	msg = "@" + cm.login + ": " + msg
	if err := a.reply(ctx, repo, cm, msg); err != nil {
		return msg, err
	}
	return msg, nil
}

// approver is the ferry identity login maps to; GitHub logins are
// compared without case, as GitHub does.
func (a *Approvals) approver(login string) (Approver, bool) {
	if who, ok := a.cfg.Approvers[login]; ok {
		return who, true
	}
	for l, who := range a.cfg.Approvers {
		if strings.EqualFold(l, login) {
			return who, true
		}
	}
	return Approver{}, false
}

// read fetches the comment named by the event.
func (a *Approvals) read(ctx context.Context, repo Repo, c Comment) (read, error) {
	api := a.cfg.Client.gh
	if c.Number > 0 {
		ic, _, err := api.Issues.GetComment(ctx, repo.Owner, repo.Name, c.CommentID)
		if err != nil {
			return read{}, fmt.Errorf("github approvals: reading comment %d of %s: %w", c.CommentID, repo, err)
		}
		// The issue's number comes from GitHub's answer, not the payload.
		n, err := strconv.Atoi(ic.GetIssueURL()[strings.LastIndex(ic.GetIssueURL(), "/")+1:])
		if err != nil {
			return read{}, fmt.Errorf("github approvals: comment %d of %s: issue_url %q names no issue", c.CommentID, repo, ic.GetIssueURL())
		}
		return read{body: ic.GetBody(), login: ic.GetUser().GetLogin(), url: ic.GetHTMLURL(), number: n}, nil
	}
	rc, _, err := api.Repositories.GetComment(ctx, repo.Owner, repo.Name, c.CommentID)
	if err != nil {
		return read{}, fmt.Errorf("github approvals: reading commit comment %d of %s: %w", c.CommentID, repo, err)
	}
	return read{body: rc.GetBody(), login: rc.GetUser().GetLogin(), url: rc.GetHTMLURL(), commit: rc.GetCommitID()}, nil
}

// decide checks who, the approver cm's author maps to, and records the
// decision; a refusal is the message, not an error.
func (a *Approvals) decide(ctx context.Context, repo Repo, source string, cm read, who Approver, verb, env, reason string) (string, error) {
	if env == "" {
		return fmt.Sprintf("name the environment: `/ferry %s ENV`. Nothing was changed.", verb), nil
	}
	if verb == "reject" && reason == "" {
		return fmt.Sprintf("a rejection needs a reason: `/ferry reject %s REASON`. Nothing was changed.", env), nil
	}
	if !who.CanApprove {
		return fmt.Sprintf("ferry token %s, which GitHub user %s maps to, lacks the approver role. Nothing was changed.", who.Identity.Name, cm.login), nil
	}
	perm, err := a.permission(ctx, repo, cm.login)
	if err != nil {
		return "", err
	}
	if slices.Index(Permissions, perm) < slices.Index(Permissions, a.cfg.Permission) {
		return fmt.Sprintf("GitHub user %s has %s permission on %s; approving needs at least %s. Nothing was changed.", cm.login, perm, repo, a.cfg.Permission), nil
	}
	commits, opener, err := a.commits(ctx, repo, cm)
	if isStatus(err, http.StatusNotFound) {
		return fmt.Sprintf("#%d is not a pull request: approve on a pull request or on the release's commit. Nothing was changed.", cm.number), nil
	}
	if err != nil {
		return "", err
	}
	if verb == "approve" && opener != "" && strings.EqualFold(opener, cm.login) {
		// why: GitHub says who opened the request; the commits' Git
		// author is whatever its writer typed, so the promoter's own
		// check of it can be dodged. A rejection from them still counts.
		return fmt.Sprintf("you opened pull request #%d and may not approve its release; ask another approver. Nothing was changed.", cm.number), nil
	}
	p, ok, err := a.pending(ctx, source, env, commits)
	if err != nil {
		return "", err
	}
	if !ok {
		return fmt.Sprintf("no promotion of commit %s into %s is waiting for approval. Nothing was changed.", store.Short(commits[0]), env), nil
	}
	if verb == "approve" {
		_, err = a.cfg.Promoter.Approve(ctx, p.ID, who.Identity, cm.url)
	} else {
		_, err = a.cfg.Promoter.Reject(ctx, p.ID, who.Identity, reason+" ("+cm.url+")")
	}
	var refused *promote.Error
	if errors.As(err, &refused) {
		return fmt.Sprintf("ferry refused to %s promotion %d into %s: %s", verb, p.ID, env, refused.Message), nil
	}
	if err != nil {
		return "", fmt.Errorf("github approvals: promotion %d: %w", p.ID, err)
	}
	done := map[string]string{"approve": "approved", "reject": "rejected"}[verb]
	return fmt.Sprintf("%s promotion %d of release %s into %s as %s.", done, p.ID, store.Short(p.Release), env, who.Identity.Name), nil
}

// permission is login's permission on repo, by role_name (which tells
// maintain and triage apart) or else the older permission field.
func (a *Approvals) permission(ctx context.Context, repo Repo, login string) (string, error) {
	api := a.cfg.Client.gh
	req, err := api.NewRequest(http.MethodGet, fmt.Sprintf("repos/%s/%s/collaborators/%s/permission", repo.Owner, repo.Name, login), nil)
	if err != nil {
		return "", err
	}
	var v struct {
		Permission string `json:"permission"`
		RoleName   string `json:"role_name"`
	}
	_, err = api.Do(ctx, req, &v)
	if isStatus(err, http.StatusNotFound) {
		return "none", nil // not a collaborator
	}
	if err != nil {
		return "", fmt.Errorf("github approvals: %s's permission on %s: %w", login, repo, err)
	}
	if slices.Contains(Permissions, v.RoleName) {
		return v.RoleName, nil
	}
	if slices.Contains(Permissions, v.Permission) {
		return v.Permission, nil
	}
	return "none", nil
}

// commits are the commits a comment may approve: the commented commit,
// or a pull request's head and merge commits, as the API tells them, and
// the login that opened the pull request.
func (a *Approvals) commits(ctx context.Context, repo Repo, cm read) ([]string, string, error) {
	if cm.commit != "" {
		return []string{cm.commit}, "", nil
	}
	pr, _, err := a.cfg.Client.gh.PullRequests.Get(ctx, repo.Owner, repo.Name, cm.number)
	if err != nil {
		return nil, "", fmt.Errorf("github approvals: pull request %s#%d: %w", repo, cm.number, err)
	}
	out := []string{pr.GetHead().GetSHA()}
	if m := pr.GetMergeCommitSHA(); m != "" {
		out = append(out, m)
	}
	return out, pr.GetUser().GetLogin(), nil
}

// fenceRE opens or closes a fenced code block: ``` or ~~~, indented at
// most three spaces, as GitHub's markdown has it.
var fenceRE = regexp.MustCompile("^ {0,3}(```+|~~~+)")

// outsideCode is body without its fenced code blocks: a command quoted
// in one is an example, not a decision.
func outsideCode(body string) string {
	var b strings.Builder
	fence := ""
	for _, line := range strings.Split(body, "\n") {
		m := fenceRE.FindStringSubmatch(line)
		switch {
		case fence == "" && m != nil:
			fence = m[1]
		case fence != "" && m != nil && m[1][0] == fence[0] && len(m[1]) >= len(fence) &&
			strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), m[1][:1])) == "":
			fence = ""
		case fence == "":
			b.WriteString(line)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// pending is the newest promotion waiting in env whose release is one of
// commits, from source.
func (a *Approvals) pending(ctx context.Context, source, env string, commits []string) (store.Promotion, bool, error) {
	ps, err := a.cfg.Store.FindPromotions(ctx, store.PromotionQuery{Environment: env, Statuses: []string{promote.StatusPending}})
	if err != nil {
		return store.Promotion{}, false, fmt.Errorf("github approvals: promotions in %s: %w", env, err)
	}
	for i := len(ps) - 1; i >= 0; i-- {
		rel, err := a.cfg.Store.GetRelease(ctx, ps[i].Release)
		if err != nil {
			return store.Promotion{}, false, fmt.Errorf("github approvals: release %s: %w", store.Short(ps[i].Release), err)
		}
		if rel.Source == source && slices.Contains(commits, rel.Commit) {
			return ps[i], true, nil
		}
	}
	return store.Promotion{}, false, nil
}

// reply answers the comment where it was made. The answer never starts a
// line with a command, so ferry does not read its own replies as one.
func (a *Approvals) reply(ctx context.Context, repo Repo, cm read, msg string) error {
	api := a.cfg.Client.gh
	var err error
	if cm.commit != "" {
		_, _, err = api.Repositories.CreateComment(ctx, repo.Owner, repo.Name, cm.commit, &gh.RepositoryComment{Body: gh.String(msg)})
	} else {
		_, _, err = api.Issues.CreateComment(ctx, repo.Owner, repo.Name, cm.number, &gh.IssueComment{Body: gh.String(msg)})
	}
	if err != nil {
		return fmt.Errorf("github approvals: answering on %s: %w", repo, err)
	}
	return nil
}

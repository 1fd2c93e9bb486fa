package github

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/manifests"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// approvalsWorld is a store with the source, a release of sha1 and a
// promotion of it pending in prod; GitHub knows pull request 12 (head
// sha1) and four users: alice (mapped, write), bob (mapped, read), carol
// (unmapped, admin) and dave (mapped to a token without the approver
// role, admin).
type approvalsWorld struct {
	gs *githubtest.Server
	st *store.SQLite
	a  *Approvals
	p  store.Promotion
}

// releaseManifest is examples/python rendered as a release, its image
// pinned to a digest nothing serves: the promoter reads the Pipeline
// (the default: prod needs one approval) and never deploys here.
func releaseManifest(t *testing.T) []byte {
	t.Helper()
	set, err := manifests.Load(context.Background(), os.DirFS("../../examples/python"))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := set.Pin(map[string]string{"hello": "127.0.0.1:5000/demo/hello@sha256:" + strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := manifests.Render(pinned)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decisions are the approvals and rejections the store holds for p, and
// p's status now.
func (w *approvalsWorld) decisions(t *testing.T) ([]store.Approval, string) {
	t.Helper()
	as, err := w.st.ListApprovals(context.Background(), w.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.st.GetPromotion(context.Background(), w.p.ID)
	if err != nil {
		t.Fatal(err)
	}
	return as, p.Status
}

func newApprovalsWorld(t *testing.T) *approvalsWorld {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	if err := st.AddSource(ctx, store.Source{Name: source, URL: "https://github.com/acme/shop.git", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	manifest := releaseManifest(t)
	other, _, err := st.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("9", 64), Source: source, Commit: sha2, Ref: "reg.test/r@sha256:" + strings.Repeat("9", 64), Manifest: manifest})
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := st.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("1", 64), Source: source, Commit: sha1, Ref: "reg.test/r@sha256:" + strings.Repeat("1", 64), Manifest: manifest})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreatePromotion(ctx, store.Promotion{Release: other.ID, Environment: "prod", Status: promote.StatusPending, Requester: "ferry"}); err != nil {
		t.Fatal(err)
	}
	p, err := st.CreatePromotion(ctx, store.Promotion{Release: rel.ID, Environment: "prod", Status: promote.StatusPending, Requester: "ferry"})
	if err != nil {
		t.Fatal(err)
	}
	gs := githubtest.New(t)
	gs.SetPull(owner, name, 12, sha1, strings.Repeat("3", 40))
	gs.SetPermission(owner, name, "alice", "write")
	gs.SetPermission(owner, name, "bob", "read")
	gs.SetPermission(owner, name, "carol", "admin")
	gs.SetPermission(owner, name, "dave", "admin")
	promoter, err := promote.New(promote.Config{
		Store: st,
		Target: func(env string) (environments.Target, error) {
			return nil, errors.New("no target: this test never deploys")
		},
		Environments: []promote.Environment{{Name: "dev"}, {Name: "staging"}, {Name: "prod"}},
		CommitAuthor: func(context.Context, string, string) (string, string, error) { return "erin", "erin@acme.test", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewApprovals(ApprovalsConfig{
		Client: tokenClient(t, gs), Repos: Repos{Host: "github.com"}, Promoter: promoter, Store: st,
		Approvers: map[string]Approver{
			"alice": {Identity: promote.Identity{Name: "alice-token", Email: "alice@acme.test"}, CanApprove: true},
			"bob":   {Identity: promote.Identity{Name: "bob-token"}, CanApprove: true},
			"dave":  {Identity: promote.Identity{Name: "dave-token"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &approvalsWorld{gs: gs, st: st, a: a, p: p}
}

// comment has login write body on pull request 12 and hands ferry the
// event, whose payload claims what the test says.
func (w *approvalsWorld) comment(t *testing.T, login, body string, claims func(*Comment)) string {
	t.Helper()
	c := w.gs.AddComment(owner, name, 12, login, body)
	ev := Comment{Source: source, Number: 12, IsPullRequest: true, CommentID: c.GetID(), Body: body, Author: login}
	if claims != nil {
		claims(&ev)
	}
	msg, err := w.a.Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return msg
}

// lastReply is ferry's last answer on pull request 12.
func (w *approvalsWorld) lastReply() string {
	cs := w.gs.Comments(owner, name, 12)
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].GetUser().GetLogin() == "ferry-bot" {
			return cs[i].GetBody()
		}
	}
	return ""
}

func TestApproveFromPullRequestComment(t *testing.T) {
	w := newApprovalsWorld(t)
	msg := w.comment(t, "alice", "LGTM\n/ferry approve prod\n", nil)
	as, status := w.decisions(t)
	if len(as) != 1 || !as[0].Approve || as[0].Actor != "alice-token" || !strings.Contains(as[0].Comment, "issuecomment-") || status != promote.StatusApproved {
		t.Fatalf("approvals %+v, promotion %s; want alice-token's approval with the comment's URL, approved", as, status)
	}
	if !strings.Contains(msg, "approved promotion") || w.lastReply() != msg {
		t.Errorf("answer %q, reply %q: want the approval said on the pull request", msg, w.lastReply())
	}
	if strings.Contains(w.lastReply(), "\n/ferry") || strings.HasPrefix(w.lastReply(), "/ferry") {
		t.Error("ferry's reply holds a command line it would read as one")
	}
	// Once more: the promoter refuses (nothing pending), and says so.
	msg = w.comment(t, "alice", "/ferry approve prod", nil)
	if !strings.Contains(msg, "no promotion of commit") {
		t.Errorf("a second approval: %q, want that none is waiting", msg)
	}
}

func TestRejectFromCommitComment(t *testing.T) {
	w := newApprovalsWorld(t)
	c := w.gs.AddCommitComment(owner, name, sha1, "alice", "/ferry reject prod breaks checkout")
	msg, err := w.a.Handle(context.Background(), Comment{Source: source, CommentID: c.GetID()})
	if err != nil {
		t.Fatal(err)
	}
	as, status := w.decisions(t)
	if len(as) != 1 || as[0].Approve || !strings.HasPrefix(as[0].Comment, "breaks checkout (") || status != promote.StatusRejected {
		t.Fatalf("approvals %+v, promotion %s; want one rejection with the reason, rejected", as, status)
	}
	cs := w.gs.CommitComments(owner, name, sha1)
	if len(cs) != 2 || cs[1].GetBody() != msg || !strings.Contains(msg, "rejected") {
		t.Errorf("commit comments %v, want ferry's answer %q after the command", cs, msg)
	}
}

func TestSelfApprovalRefusedByThePromoter(t *testing.T) {
	w := newApprovalsWorld(t)
	w.a.cfg.Approvers["erin"] = Approver{Identity: promote.Identity{Name: "erin", Email: "erin@acme.test"}, CanApprove: true}
	w.gs.SetPermission(owner, name, "erin", "admin")
	msg := w.comment(t, "erin", "/ferry approve prod", nil)
	if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending {
		t.Errorf("approvals %+v, promotion %s; want none, pending", as, status)
	}
	if !strings.Contains(msg, "ferry refused to approve") || !strings.Contains(msg, "wrote commit") {
		t.Errorf("answer %q, want the promoter's refusal", msg)
	}
}

func TestApprovalRefusedChangesNothing(t *testing.T) {
	cases := []struct {
		name, login, body string
		claims            func(*Comment)
		say               string
	}{
		{"unmapped user", "carol", "/ferry approve prod", nil, "not mapped"},
		{"read permission", "bob", "/ferry approve prod", nil, "read permission"},
		{"token without the approver role", "dave", "/ferry approve prod", nil, "lacks the approver role"},
		{"no pending promotion there", "alice", "/ferry approve staging", nil, "no promotion of commit"},
		{"rejection without a reason", "alice", "/ferry reject prod", nil, "needs a reason"},
		{"payload lies about the author", "carol", "/ferry approve prod", func(c *Comment) { c.Author = "alice" }, "not mapped"},
		{"payload lies about the body", "alice", "nice work", func(c *Comment) { c.Body = "/ferry approve prod" }, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newApprovalsWorld(t)
			msg := w.comment(t, tc.login, tc.body, tc.claims)
			if tc.say == "" && msg != "" {
				t.Errorf("answer %q to a comment without a command", msg)
			}
			if !strings.Contains(msg, tc.say) {
				t.Errorf("answer %q, want it to say %q", msg, tc.say)
			}
			if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending {
				t.Errorf("approvals %+v, promotion %s; want none, still pending", as, status)
			}
			// A stranger gets no reply (no one may make ferry spend its
			// rate limit on answers); a mapped approver is told why.
			replies := len(w.gs.Comments(owner, name, 12)) - 1
			switch {
			case tc.login == "carol" && replies != 0:
				t.Errorf("ferry replied %d times to %s, who is no approver", replies, tc.login)
			case tc.login != "carol" && tc.say != "" && replies != 1:
				t.Errorf("ferry replied %d times to %s; want once, saying why", replies, tc.login)
			}
		})
	}
}

// A login is compared without case, as GitHub does.
func TestApproverLoginAnyCase(t *testing.T) {
	w := newApprovalsWorld(t)
	w.comment(t, "ALICE", "/ferry approve prod", nil)
	if as, status := w.decisions(t); len(as) != 1 || status != promote.StatusApproved {
		t.Errorf("ALICE's approval: %+v, %s; want alice's approval", as, status)
	}
}

func TestApprovalOnAnIssueChangesNothing(t *testing.T) {
	w := newApprovalsWorld(t)
	c := w.gs.AddComment(owner, name, 5, "alice", "/ferry approve prod")
	msg, err := w.a.Handle(context.Background(), Comment{Source: source, Number: 5, CommentID: c.GetID()})
	if err != nil || !strings.Contains(msg, "not a pull request") {
		t.Errorf("a command on issue 5: %q %v, want that it is not a pull request", msg, err)
	}
	if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending {
		t.Errorf("approvals %+v, promotion %s; want none, pending", as, status)
	}
}

func TestApprovalCommitComesFromThePullRequest(t *testing.T) {
	w := newApprovalsWorld(t)
	// The payload names sha2's promotion; the pull request's head is sha1.
	w.comment(t, "alice", "/ferry approve prod", func(c *Comment) { c.Commit = sha2 })
	if as, status := w.decisions(t); len(as) != 1 || status != promote.StatusApproved {
		t.Errorf("sha1's promotion: approvals %+v, %s; want approved", as, status)
	}
}

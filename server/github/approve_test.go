package github

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/store"
)

// recorder records the decisions it is asked for. Only Approve and
// Reject are called by approvals; the rest of promote.Promoter is nil.
type recorder struct {
	promote.Promoter
	mu        sync.Mutex
	decisions []decision
}

type decision struct {
	verb    string
	id      int64
	actor   promote.Identity
	comment string
}

func (r *recorder) Approve(_ context.Context, id int64, actor promote.Identity, comment string) (store.Promotion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, decision{"approve", id, actor, comment})
	return store.Promotion{ID: id}, nil
}

func (r *recorder) Reject(_ context.Context, id int64, actor promote.Identity, comment string) (store.Promotion, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.decisions = append(r.decisions, decision{"reject", id, actor, comment})
	return store.Promotion{ID: id}, nil
}

func (r *recorder) taken() []decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]decision(nil), r.decisions...)
}

// approvalsWorld is a store with the source, a release of sha1 and a
// promotion of it pending in prod; GitHub knows pull request 12 (head
// sha1) and four users: alice (mapped, write), bob (mapped, read), carol
// (unmapped, admin) and dave (mapped to a token without the approver
// role, admin).
type approvalsWorld struct {
	gs  *githubtest.Server
	rec *recorder
	a   *Approvals
	p   store.Promotion
}

func newApprovalsWorld(t *testing.T) *approvalsWorld {
	t.Helper()
	ctx := context.Background()
	st := openStore(t)
	if err := st.AddSource(ctx, store.Source{Name: source, URL: "https://github.com/acme/shop.git", Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	other, _, err := st.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("9", 64), Source: source, Commit: sha2, Ref: "reg.test/r@sha256:" + strings.Repeat("9", 64)})
	if err != nil {
		t.Fatal(err)
	}
	rel, _, err := st.PutRelease(ctx, store.Release{ID: "sha256:" + strings.Repeat("1", 64), Source: source, Commit: sha1, Ref: "reg.test/r@sha256:" + strings.Repeat("1", 64)})
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
	rec := &recorder{}
	a, err := NewApprovals(ApprovalsConfig{
		Client: tokenClient(t, gs), Repos: Repos{Host: "github.com"}, Promoter: rec, Store: st,
		Approvers: map[string]Approver{
			"alice": {Identity: promote.Identity{Name: "alice-token", Email: "alice@acme.test"}, CanApprove: true},
			"bob":   {Identity: promote.Identity{Name: "bob-token"}, CanApprove: true},
			"dave":  {Identity: promote.Identity{Name: "dave-token"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &approvalsWorld{gs: gs, rec: rec, a: a, p: p}
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
	got := w.rec.taken()
	if len(got) != 1 {
		t.Fatalf("decisions %v, want one approval", got)
	}
	d := got[0]
	if d.verb != "approve" || d.id != w.p.ID || d.actor.Name != "alice-token" || d.actor.Email != "alice@acme.test" || !strings.Contains(d.comment, "issuecomment-") {
		t.Errorf("decision %+v, want alice-token approving promotion %d with the comment's URL", d, w.p.ID)
	}
	if !strings.Contains(msg, "approved promotion") || w.lastReply() != msg {
		t.Errorf("answer %q, reply %q: want the approval said on the pull request", msg, w.lastReply())
	}
	if strings.Contains(w.lastReply(), "\n/ferry") || strings.HasPrefix(w.lastReply(), "/ferry") {
		t.Error("ferry's reply holds a command line it would read as one")
	}
}

func TestRejectFromCommitComment(t *testing.T) {
	w := newApprovalsWorld(t)
	c := w.gs.AddCommitComment(owner, name, sha1, "alice", "/ferry reject prod breaks checkout")
	msg, err := w.a.Handle(context.Background(), Comment{Source: source, CommentID: c.GetID()})
	if err != nil {
		t.Fatal(err)
	}
	got := w.rec.taken()
	if len(got) != 1 || got[0].verb != "reject" || got[0].id != w.p.ID || !strings.HasPrefix(got[0].comment, "breaks checkout (") {
		t.Fatalf("decisions %+v, want one rejection of %d with the reason", got, w.p.ID)
	}
	cs := w.gs.CommitComments(owner, name, sha1)
	if len(cs) != 2 || cs[1].GetBody() != msg || !strings.Contains(msg, "rejected") {
		t.Errorf("commit comments %v, want ferry's answer %q after the command", cs, msg)
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
		{"payload lies about the author", "carol", "/ferry approve prod", func(c *Comment) { c.Author = "alice" }, "not mapped"},
		{"payload lies about the body", "alice", "nice work", func(c *Comment) { c.Body = "/ferry approve prod" }, ""},
		{"payload lies about the commit", "alice", "/ferry approve prod", func(c *Comment) { c.Commit = sha2; c.Number = 12 }, "approved"},
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
			got := w.rec.taken()
			if tc.say == "approved" {
				// The commit comes from the pull request, not the payload.
				if len(got) != 1 || got[0].id != w.p.ID {
					t.Errorf("decisions %+v, want the approval of %d (sha1's)", got, w.p.ID)
				}
				return
			}
			if len(got) != 0 {
				t.Errorf("decisions %+v, want none", got)
			}
		})
	}
}

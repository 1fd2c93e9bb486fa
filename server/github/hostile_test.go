package github

import (
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/promote"
	"github.com/ferrycd/ferry/server/notify"
)

// Anyone may write ferry's hidden marker in a comment. When ferry's memo
// of its comment is lost, it must not take someone else's comment for
// its own: it would overwrite their words, and they could later edit what
// reads as ferry's (the preview's URL). It edits only its own comment.
func TestPreviewCommentNeverEditsAnotherUsersMarker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(t *testing.T, gs *githubtest.Server) *Client
		self   string
	}{
		{"token", tokenClient, githubtest.TokenLogin},
		{"app", func(t *testing.T, gs *githubtest.Server) *Client { return appClient(t, gs, time.Hour) }, "ferry[bot]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := githubtest.New(t)
			c := tc.client(t, gs)
			planted := gs.AddComment(owner, name, 12, "mallory", marker(source, 12)+"\nPreview: http://evil.example/")
			// No memo: ferry looks for its comment by the marker.
			mustDeliver(t, newSink(t, c, openStore(t)), previewEvent(notify.PreviewBuilding, sha1))
			if n := gs.Edits(planted.GetID()); n != 0 {
				t.Fatalf("ferry edited mallory's comment %d times", n)
			}
			var mine []string
			for _, cm := range gs.Comments(owner, name, 12) {
				if cm.GetID() == planted.GetID() {
					if !strings.Contains(cm.GetBody(), "evil.example") {
						t.Errorf("mallory's comment was changed: %q", cm.GetBody())
					}
					continue
				}
				if cm.GetUser().GetLogin() != tc.self {
					t.Errorf("a comment by %s, want ferry's (%s)", cm.GetUser().GetLogin(), tc.self)
				}
				mine = append(mine, cm.GetBody())
			}
			if len(mine) != 1 || !strings.Contains(mine[0], ": building") {
				t.Fatalf("ferry's comments %q, want one saying building", mine)
			}
			// Its own comment is still found by the marker with the memo lost.
			mustDeliver(t, newSink(t, c, openStore(t)), previewEvent(notify.PreviewReady, sha1))
			if got := previewComments(gs); len(got) != 2 {
				t.Fatalf("%d marked comments, want mallory's and ferry's one", len(got))
			}
			for _, cm := range gs.Comments(owner, name, 12) {
				if cm.GetID() != planted.GetID() && !strings.Contains(cm.GetBody(), ": live") {
					t.Errorf("ferry's comment was not edited to live: %q", cm.GetBody())
				}
			}
		})
	}
}

// A failure's reason carries what the pull request's code made its run
// say (a manifest's error quoting it, a step's output). In ferry's comment
// it must stay text: not a link that reads as ferry's, not HTML, not a
// mention that pings a team.
func TestPreviewCommentReasonIsText(t *testing.T) {
	gs := githubtest.New(t)
	s := newSink(t, tokenClient(t, gs), openStore(t))
	ev := previewEvent(notify.PreviewFailed, sha1)
	ev.Reason = "build failed: [Sign in again](http://evil.example/) <img src=x onerror=alert(1)> @acme/everyone `x` ``y``\nsecond line"
	mustDeliver(t, s, ev)
	got := previewComments(gs)
	if len(got) != 1 {
		t.Fatalf("%d preview comments, want 1", len(got))
	}
	var why string
	for _, l := range strings.Split(got[0], "\n") {
		if strings.HasPrefix(l, "**Why:**") {
			why = strings.TrimSpace(strings.TrimPrefix(l, "**Why:**"))
		}
	}
	if !strings.Contains(why, "Sign in again") || strings.Contains(got[0], "second line") {
		t.Fatalf("the reason's first line is not said: %q", got[0])
	}
	// One code span holds it: GitHub renders nothing inside.
	if !strings.HasPrefix(why, "`") || !strings.HasSuffix(why, "`") || strings.Count(why, "`") != 2 {
		t.Fatalf("the reason is not one code span: %s", why)
	}
}

// The pull request's author approving the release of their own request
// is self-approval, whatever the commit's Git author says: Git's author
// is whatever its writer typed (erin here), GitHub's is who opened it.
// A rejection from them still counts.
func TestPullRequestAuthorMayNotApproveIt(t *testing.T) {
	w := newApprovalsWorld(t)
	w.gs.SetPullAuthor(owner, name, 12, "alice")
	msg := w.comment(t, "alice", "/ferry approve prod", nil)
	if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending {
		t.Fatalf("approvals %+v, promotion %s; want none, pending (answer %q)", as, status, msg)
	}
	if !strings.Contains(msg, "opened pull request") {
		t.Errorf("answer %q does not say why", msg)
	}
	msg = w.comment(t, "alice", "/ferry reject prod it breaks checkout", nil)
	if _, status := w.decisions(t); status != promote.StatusRejected {
		t.Errorf("the author's rejection: %q, promotion %s, want rejected", msg, status)
	}
}

// ferry's own comments (its replies, its preview comment) are never read
// as commands, even if its login were mapped to an approver.
func TestFerrysOwnCommentIsNoCommand(t *testing.T) {
	w := newApprovalsWorld(t)
	w.a.cfg.Approvers[githubtest.TokenLogin] = Approver{Identity: promote.Identity{Name: "bot"}, CanApprove: true}
	w.gs.SetPermission(owner, name, githubtest.TokenLogin, "admin")
	msg := w.comment(t, githubtest.TokenLogin, "/ferry approve prod", nil)
	if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending || msg != "" {
		t.Fatalf("approvals %+v, promotion %s, answer %q; want ferry's own comment ignored", as, status, msg)
	}
}

// A command inside a fenced code block is an example someone quotes, not
// a decision.
func TestCommandInCodeBlockIsNoCommand(t *testing.T) {
	w := newApprovalsWorld(t)
	msg := w.comment(t, "alice", "To ship it, an approver comments:\n```\n/ferry approve prod\n```\n", nil)
	if as, status := w.decisions(t); len(as) != 0 || status != promote.StatusPending || msg != "" {
		t.Fatalf("approvals %+v, promotion %s, answer %q; want nothing", as, status, msg)
	}
	msg = w.comment(t, "alice", "~~~text\n/ferry approve prod\n~~~\nand now for real:\n/ferry approve prod", nil)
	if _, status := w.decisions(t); status != promote.StatusApproved {
		t.Fatalf("the command after the block: %q, promotion %s, want approved", msg, status)
	}
}

package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gh "github.com/google/go-github/v57/github"

	"github.com/ferrycd/ferry/internal/githubtest"
	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// The repository on GitHub that the source reports to, as the payloads
// under server/testdata/webhooks name it.
const (
	ghOwner, ghRepo = "octo-org", "app"
	ghToken         = "ghp_e2e0123456789abcdefghijklmnopqrstu"
	previewSecret   = "preview-webhook-secret-e2e"
)

// previewsRig is ferry serve watching one repository of the Python
// example, whose Pipeline turns previews on, and telling a GitHub
// stand-in what it does.
type previewsRig struct {
	p    *serveProc
	c    *server.Client
	gh   *githubtest.Server
	work string // a clone of the repository, on main
	// main is the first commit, built and deployed to dev at start.
	main string
}

// startPreviewsRig starts the rig and waits for main's first commit to
// answer in dev. The source polls hourly: webhooks bring every change.
func startPreviewsRig(t *testing.T) *previewsRig {
	t.Helper()
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "app", func(dir string) {
		p := filepath.Join(dir, "ferry.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, "---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:\n  - {name: dev, auto: true}\n  - name: prod\n    approval: {required: 1}\n  previews: {enabled: true}\n"...)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	stand := githubtest.New(t)
	stand.AddToken(ghToken)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: app, url: %q, branch: main, interval: 1h, webhookSecret: %s, github: %s/%s}`,
		url, previewSecret, ghOwner, ghRepo))
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// why the tokens first: writeServeConfig's file ends in its tokens
	// list, which these lines continue.
	_, err = fmt.Fprintf(f, `- {name: octo-approver, token: e2e-octo-approver-0123456789, roles: [approver]}
- {name: read-approver, token: e2e-read-approver-0123456789, roles: [approver]}
github:
  apiURL: %s
  token: env:FERRY_E2E_GITHUB_TOKEN
  approvers: {octocat: octo-approver, reader: read-approver}
previews: {labelers: [octocat]}
`, stand.URL)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg, "FERRY_E2E_GITHUB_TOKEN="+ghToken)
	waitGreeting(t, p, "hello from python", 120*time.Second)
	return &previewsRig{p: p, c: p.client(t), gh: stand, work: work,
		main: strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))}
}

// hookAnswer is what ferry answered a webhook.
type hookAnswer struct {
	Answer  string `json:"answer"`
	Ignored string `json:"ignored"`
	raw     string
}

// deliver sends a GitHub webhook of event for the source, signed as
// GitHub signs, and returns ferry's status and answer.
func (r *previewsRig) deliver(t *testing.T, event, delivery string, body []byte) (int, hookAnswer) {
	t.Helper()
	code, b := githubHook(t, r.p.api, "app", previewSecret, event, delivery, body)
	var a hookAnswer
	json.Unmarshal(b, &a)
	a.raw = string(b)
	return code, a
}

// ghPayload is a documented-shape payload from server/testdata/webhooks
// with the fields named by dotted paths in set replaced.
func ghPayload(t *testing.T, file string, set map[string]any) []byte {
	t.Helper()
	return githubtest.Payload(t, filepath.Join(root, "server", "testdata", "webhooks", file), set)
}

// pushPull changes the greeting on work's checked-out branch, commits and
// pushes the commit as refs/pull/N/head, as GitHub keeps a pull request's
// head; it returns the commit.
func pushPull(t *testing.T, work string, n int, greeting string) string {
	t.Helper()
	setGreeting(t, work, "", greeting)
	gitserver.Git(t, work, "push", "-q", "-f", "origin", fmt.Sprintf("HEAD:refs/pull/%d/head", n))
	return strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
}

// eventually polls cond until it holds; within only catches a hang.
func eventually(t *testing.T, p *serveProc, what string, within time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so within %s; last: %s\nferry serve said:\n%s\nruns:\n%s", what, within, last, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stepStatuses holds when GitHub has, for each step the run ended, the
// commit status ferry/<step> in the state the step ended in.
func (r *previewsRig) stepStatuses(run server.RunView) func() (bool, string) {
	return func() (bool, string) {
		latest := map[string]string{}
		for _, s := range r.gh.Statuses(ghOwner, ghRepo, run.Commit) {
			latest[s.GetContext()] = s.GetState() // oldest first: the last one stands
		}
		n := 0
		for _, s := range run.Steps {
			want := map[string]string{"succeeded": "success", "skipped": "success", "failed": "failure"}[s.Status]
			if want == "" {
				continue // never ran: no status to expect
			}
			n++
			if latest["ferry/"+s.Name] != want {
				return false, fmt.Sprintf("ferry/%s is %q, want %q; statuses: %v", s.Name, latest["ferry/"+s.Name], want, latest)
			}
		}
		return n > 0, fmt.Sprintf("run %d has no ended step: %+v", run.ID, run.Steps)
	}
}

// deploymentsTo are the stand-in's deployments to env, oldest first.
func (r *previewsRig) deploymentsTo(env string) []*gh.Deployment {
	var out []*gh.Deployment
	for _, d := range r.gh.Deployments(ghOwner, ghRepo) {
		if d.GetEnvironment() == env {
			out = append(out, d)
		}
	}
	return out
}

// deployedBy holds when env has a deployment of commit whose latest
// status is state, with an environment_url under urlPrefix (when given).
func (r *previewsRig) deployedBy(env, commit, state, urlPrefix string) func() (bool, string) {
	return func() (bool, string) {
		var got []string
		for _, d := range r.deploymentsTo(env) {
			sts := r.gh.DeploymentStatuses(d.GetID())
			last := ""
			if len(sts) > 0 {
				st := sts[len(sts)-1]
				last = st.GetState()
				if d.GetSHA() == commit && last == state && strings.HasPrefix(st.GetEnvironmentURL(), urlPrefix) {
					return true, ""
				}
				last += " " + st.GetEnvironmentURL()
			}
			got = append(got, fmt.Sprintf("%d %s %s", d.GetID(), d.GetSHA(), last))
		}
		return false, fmt.Sprintf("deployments to %s: %v", env, got)
	}
}

// previews is what `ferry previews -o json` lists.
func (r *previewsRig) previews(t *testing.T) []server.PreviewInfo {
	t.Helper()
	res := ferry(t, "previews", "-o", "json", "--server", r.p.api, "--token", serveToken)
	var list []server.PreviewInfo
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil {
		t.Fatalf("ferry previews -o json: %d %s%s", res.code, res.stdout, res.stderr)
	}
	return list
}

// onlyComment is the pull request's one comment; more than one fails
// the test at once.
func (r *previewsRig) onlyComment(t *testing.T, n int) *gh.IssueComment {
	t.Helper()
	cs := r.gh.Comments(ghOwner, ghRepo, n)
	if len(cs) > 1 {
		var bodies []string
		for _, c := range cs {
			bodies = append(bodies, c.GetBody())
		}
		t.Fatalf("%d comments on #%d, want the one edited in place:\n%s", len(cs), n, strings.Join(bodies, "\n----\n"))
	}
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

// TestPreviewPullRequests is issue 14's pull-request flow with the built
// binary, a real Git server carrying refs/pull/N/head, signed webhooks
// shaped like GitHub's examples and the GitHub stand-in: open, push,
// close, and a fork's pull request that waits for its label.
func TestPreviewPullRequests(t *testing.T) {
	t.Parallel()
	r := startPreviewsRig(t)
	preview := r.p.gw + "/pr-3-app/"

	// 1. Open: the PR's code answers at its preview's URL, and GitHub
	// shows it.
	gitserver.Git(t, r.work, "checkout", "-q", "-b", "bonjour")
	head := pushPull(t, r.work, 3, "bonjour from PR 3")
	r.gh.SetPull(ghOwner, ghRepo, 3, head, "")
	// The payload's head is the real one, as GitHub's is; ferry takes the
	// commit from Git all the same.
	code, a := r.deliver(t, "pull_request", "pr-3-opened", ghPayload(t, "github_pull_request.json", map[string]any{
		"pull_request.head.sha": head}))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "preview pr-3-app opened: commit "+head[:7]) {
		t.Fatalf("pull_request opened answered %d %s; want 202 and the preview opened for commit %s", code, a.raw, head)
	}
	waitGreetingAt(t, r.p, preview+"hello", "bonjour from PR 3", 120*time.Second)
	// The preview is its own environment: dev still runs main.
	waitGreeting(t, r.p, "hello from python", 10*time.Second)

	var comment *gh.IssueComment
	eventually(t, r.p, "the preview comment on #3, live, with the URL and the commit", 60*time.Second, func() (bool, string) {
		comment = r.onlyComment(t, 3)
		b := comment.GetBody()
		return strings.Contains(b, "`pr-3-app`: live") && strings.Contains(b, preview) && strings.Contains(b, head) &&
			strings.Contains(b, "| `hello` | `sha256:"), b
	})
	eventually(t, r.p, "a deployment of the PR head to pr-3-app, success, with its URL", 60*time.Second,
		r.deployedBy("pr-3-app", head, "success", preview))
	for _, d := range r.deploymentsTo("pr-3-app") {
		if req := r.gh.DeploymentRequest(d.GetID()); !req.GetTransientEnvironment() || req.GetProductionEnvironment() {
			t.Errorf("deployment %d to pr-3-app: transient %v, production %v; a preview is transient, not production",
				d.GetID(), req.GetTransientEnvironment(), req.GetProductionEnvironment())
		}
	}
	eventually(t, r.p, "commit statuses ferry/<step> of the PR's run", 60*time.Second, r.stepStatuses(runOf(t, r.p, r.c, head)))
	res := ferry(t, "previews", "--server", r.p.api, "--token", serveToken)
	if res.code != 0 || !strings.Contains(res.stdout, "pr-3-app") || !strings.Contains(res.stdout, "live") || !strings.Contains(res.stdout, preview) {
		t.Errorf("ferry previews does not list pr-3-app live at %s: %d\n%s%s", preview, res.code, res.stdout, res.stderr)
	}

	// 2. A push to the PR: the preview runs the new code; the one comment
	// is edited to name the new commit.
	head2 := pushPull(t, r.work, 3, "bonjour again from PR 3")
	r.gh.SetPull(ghOwner, ghRepo, 3, head2, "")
	code, a = r.deliver(t, "pull_request", "pr-3-synchronize", ghPayload(t, "github_pull_request.json", map[string]any{
		"action": "synchronize", "before": head, "after": head2, "pull_request.head.sha": head2}))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "preview pr-3-app updated: commit "+head2[:7]) {
		t.Fatalf("pull_request synchronize answered %d %s; want 202 and the preview updated to %s", code, a.raw, head2)
	}
	waitGreetingAt(t, r.p, preview+"hello", "bonjour again from PR 3", 120*time.Second)
	eventually(t, r.p, "the same comment on #3, edited to name the new commit, live", 60*time.Second, func() (bool, string) {
		c := r.onlyComment(t, 3)
		b := c.GetBody()
		return c.GetID() == comment.GetID() && strings.Contains(b, head2) && !strings.Contains(b, head) && strings.Contains(b, "`pr-3-app`: live"), b
	})
	if n := r.gh.Edits(comment.GetID()); n < 1 {
		t.Errorf("the comment was edited %d times, want at least once", n)
	}
	eventually(t, r.p, "a deployment of the new head to pr-3-app, success", 60*time.Second,
		r.deployedBy("pr-3-app", head2, "success", preview))

	// 3. Close: the preview is gone, its deployment inactive, the comment
	// says it is torn down.
	r.gh.ClosePull(ghOwner, ghRepo, 3)
	code, a = r.deliver(t, "pull_request", "pr-3-closed", ghPayload(t, "github_pull_request.json", map[string]any{
		"action": "closed", "pull_request.state": "closed", "pull_request.closed_at": "2026-03-01T12:30:00Z",
		"pull_request.head.sha": head2}))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "preview pr-3-app is torn down") {
		t.Fatalf("pull_request closed answered %d %s; want 202 and the preview torn down", code, a.raw)
	}
	gitserver.Git(t, r.work, "push", "-q", "origin", ":refs/pull/3/head")
	eventually(t, r.p, "GATEWAY/pr-3-app/hello answers 404", 60*time.Second, func() (bool, string) {
		s, _ := getBody(preview + "hello")
		return s == http.StatusNotFound, fmt.Sprint(s)
	})
	eventually(t, r.p, "the latest deployment to pr-3-app is inactive", 60*time.Second, func() (bool, string) {
		ds := r.deploymentsTo("pr-3-app")
		if len(ds) == 0 {
			return false, "no deployments"
		}
		sts := r.gh.DeploymentStatuses(ds[len(ds)-1].GetID())
		if len(sts) == 0 {
			return false, "no statuses"
		}
		return sts[len(sts)-1].GetState() == "inactive", sts[len(sts)-1].GetState()
	})
	eventually(t, r.p, "the comment on #3 says the preview is torn down", 60*time.Second, func() (bool, string) {
		c := r.onlyComment(t, 3)
		return c.GetID() == comment.GetID() && strings.Contains(c.GetBody(), "`pr-3-app`: torn down"), c.GetBody()
	})
	for _, pv := range r.previews(t) {
		if pv.Environment == "pr-3-app" && pv.State != "torn down" {
			t.Errorf("ferry previews lists pr-3-app %s after the close", pv.State)
		}
	}

	// 4. A fork's pull request is not built until a permitted user labels
	// it.
	gitserver.Git(t, r.work, "checkout", "-q", "-b", "fork", "main")
	fork := pushPull(t, r.work, 4, "hello from a fork")
	r.gh.SetPull(ghOwner, ghRepo, 4, fork, "")
	forkHook := func(action, sender, sha string) []byte {
		set := map[string]any{
			"pull_request.head.sha": sha,
			"action":                action, "number": 4, "pull_request.number": 4,
			"pull_request.html_url": "https://github.com/octo-org/app/pull/4", "pull_request.user.login": "mallory",
			"pull_request.head.label": "mallory:bonjour", "pull_request.head.user.login": "mallory",
			"pull_request.head.repo.full_name": "mallory/app", "pull_request.head.repo.fork": true,
			"sender.login": sender,
		}
		if action == "labeled" {
			set["label"] = map[string]any{"id": 208045946, "name": "ferry/preview", "color": "f29513", "default": false}
		}
		return ghPayload(t, "github_pull_request.json", set)
	}
	notBuilt := func(when string) {
		t.Helper()
		runs, err := r.c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range runs.Items {
			if run.Commit == fork {
				t.Fatalf("%s: the fork's commit was built (run %d)", when, run.ID)
			}
		}
		for _, pv := range r.previews(t) {
			if pv.Number == 4 {
				t.Fatalf("%s: ferry previews lists %+v", when, pv)
			}
		}
		if s, _ := getBody(r.p.gw + "/pr-4-app/hello"); s != http.StatusNotFound {
			t.Fatalf("%s: GATEWAY/pr-4-app/hello answered %d, want 404", when, s)
		}
	}
	code, a = r.deliver(t, "pull_request", "pr-4-opened", forkHook("opened", "mallory", fork))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "comes from a fork") || !strings.Contains(a.Answer, `"ferry/preview"`) {
		t.Fatalf("a fork's pull_request opened answered %d %s; want 202 and why it is not built", code, a.raw)
	}
	notBuilt("opened from a fork")
	code, a = r.deliver(t, "pull_request", "pr-4-labeled-by-mallory", forkHook("labeled", "mallory", fork))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "not one of previews.labelers") {
		t.Fatalf("a label by the fork's author answered %d %s; want 202 and that she may not label", code, a.raw)
	}
	notBuilt("labelled by its author")
	code, a = r.deliver(t, "pull_request", "pr-4-labeled", forkHook("labeled", "octocat", fork))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "preview pr-4-app opened: commit "+fork[:7]) {
		t.Fatalf("a label by octocat answered %d %s; want 202 and the preview opened", code, a.raw)
	}
	waitGreetingAt(t, r.p, r.p.gw+"/pr-4-app/hello", "hello from a fork", 120*time.Second)
	eventually(t, r.p, "the preview comment on #4, live", 60*time.Second, func() (bool, string) {
		c := r.onlyComment(t, 4)
		return strings.Contains(c.GetBody(), "`pr-4-app`: live") && strings.Contains(c.GetBody(), fork), c.GetBody()
	})

	// The label approved that head only: the fork's next push waits for
	// it again, and the preview keeps the reviewed code.
	second := pushPull(t, r.work, 4, "hello from the fork's second push")
	r.gh.SetPull(ghOwner, ghRepo, 4, second, "")
	code, a = r.deliver(t, "pull_request", "pr-4-synchronize", forkHook("synchronize", "mallory", second))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "comes from a fork") {
		t.Fatalf("a fork's push answered %d %s; want 202 and why it is not built", code, a.raw)
	}
	runs, err := r.c.Runs(t.Context(), "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs.Items {
		if run.Commit == second {
			t.Errorf("the fork's unlabelled push was built (run %d)", run.ID)
		}
	}
	waitGreetingAt(t, r.p, r.p.gw+"/pr-4-app/hello", "hello from a fork", 10*time.Second)
	eventually(t, r.p, "the comment on #4 says the fork's new head waits for the label", 60*time.Second, func() (bool, string) {
		c := r.onlyComment(t, 4)
		return strings.Contains(c.GetBody(), "waiting for the label") && strings.Contains(c.GetBody(), second), c.GetBody()
	})
	// A label given while the head was the older commit does not approve
	// the newer one; labelling the new head does.
	code, a = r.deliver(t, "pull_request", "pr-4-labeled-stale", forkHook("labeled", "octocat", fork))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "label it again") {
		t.Fatalf("a label at the older head answered %d %s; want 202 and that it needs labelling again", code, a.raw)
	}
	code, a = r.deliver(t, "pull_request", "pr-4-labeled-again", forkHook("labeled", "octocat", second))
	if code != http.StatusAccepted || !strings.Contains(a.Answer, "preview pr-4-app updated: commit "+second[:7]) {
		t.Fatalf("a label at the new head answered %d %s; want 202 and the preview updated", code, a.raw)
	}
	waitGreetingAt(t, r.p, r.p.gw+"/pr-4-app/hello", "hello from the fork's second push", 120*time.Second)
}

// TestGitHubOutageLosesNoStatus: GitHub answers 502 for a minute while a
// commit runs and deploys. The deploy does not wait for GitHub (the new
// code answers in dev while GitHub is still down), and once GitHub is
// back every step's status and the deployment arrive.
func TestGitHubOutageLosesNoStatus(t *testing.T) {
	t.Parallel()
	r := startPreviewsRig(t)
	// The first commit's statuses are in: the queue is empty.
	eventually(t, r.p, "the first commit's statuses", 60*time.Second, r.stepStatuses(runOf(t, r.p, r.c, r.main)))

	r.gh.Down(true)
	down := time.Now()
	commit := commitGreeting(t, r.work, "", "hello while GitHub is down")
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","before":"%s","after":"%s","deleted":false,"repository":{"full_name":"octo-org/app"}}`, r.main, commit))
	if code, b := githubPushReply(t, r.p.api, "app", previewSecret, "push-while-down", body); code != http.StatusAccepted {
		t.Fatalf("the push webhook answered %d %s", code, b)
	}
	// why no time limit of its own: GitHub stays down until this answers,
	// so a deploy held by GitHub would never answer.
	waitGreeting(t, r.p, "hello while GitHub is down", 120*time.Second)
	run := runOf(t, r.p, r.c, commit)
	if run.Status != "succeeded" {
		t.Fatalf("the run while GitHub is down: %s %s", run.Status, run.Reason)
	}
	if got := r.gh.Statuses(ghOwner, ghRepo, commit); len(got) != 0 {
		t.Fatalf("%d statuses arrived while the stand-in answered 502: is it down?", len(got))
	}
	time.Sleep(time.Until(down.Add(time.Minute)))
	r.gh.Down(false)

	// The notifier backs off to about a minute by now; the bound is ten
	// times that.
	eventually(t, r.p, "every step's status after the outage", 10*time.Minute, r.stepStatuses(run))
	eventually(t, r.p, "the deployment to dev after the outage", 10*time.Minute,
		r.deployedBy("dev", commit, "success", r.p.gw+"/dev/"))
	if out := r.p.output.String(); !strings.Contains(out, "failed attempts") || strings.Contains(out, "gave up") || strings.Contains(out, "dropped notice") {
		t.Errorf("ferry serve's log does not show notices delivered late and none lost:\n%s", out)
	}
}

// TestGitHubApproveComment: "/ferry approve prod" on a pull request by a
// user GitHub says may only read changes nothing and is answered why; the
// same by a user with write permission approves the promotion.
func TestGitHubApproveComment(t *testing.T) {
	t.Parallel()
	r := startPreviewsRig(t)
	run := runOf(t, r.p, r.c, r.main)
	pending := promotionOf(t, r.p, r.c, run.Release, "prod", "pending")
	r.gh.SetPermission(ghOwner, ghRepo, "reader", "read")
	r.gh.SetPermission(ghOwner, ghRepo, "octocat", "write")
	// Pull request 5 merged main's commit: approving on it approves that.
	r.gh.SetPull(ghOwner, ghRepo, 5, r.main, "")

	approveAs := func(login, delivery string) hookAnswer {
		t.Helper()
		c := r.gh.AddComment(ghOwner, ghRepo, 5, login, "/ferry approve prod")
		code, a := r.deliver(t, "issue_comment", delivery, ghPayload(t, "github_issue_comment.json", map[string]any{
			"issue.number": 5, "issue.url": "https://api.github.com/repos/octo-org/app/issues/5",
			"comment.id": c.GetID(), "comment.html_url": c.GetHTMLURL(), "comment.issue_url": c.GetIssueURL(),
			"comment.user.login": login, "sender.login": login,
		}))
		if code != http.StatusAccepted {
			t.Fatalf("issue_comment by %s answered %d %s", login, code, a.raw)
		}
		return a
	}

	a := approveAs("reader", "comment-by-reader")
	if !strings.Contains(a.Answer, "reader has read permission") || !strings.Contains(a.Answer, "Nothing was changed") {
		t.Errorf("the reader's approval answered %s; want why nothing changed", a.raw)
	}
	eventually(t, r.p, "a reply on #5 telling the reader why", 60*time.Second, func() (bool, string) {
		var got []string
		for _, c := range r.gh.Comments(ghOwner, ghRepo, 5) {
			if c.GetUser().GetLogin() == "ferry-bot" && strings.Contains(c.GetBody(), "@reader:") && strings.Contains(c.GetBody(), "needs at least write") {
				return true, ""
			}
			got = append(got, c.GetUser().GetLogin()+": "+c.GetBody())
		}
		return false, strings.Join(got, "\n")
	})
	if pr, err := r.c.Promotion(t.Context(), pending.ID); err != nil || pr.Status != "pending" {
		t.Fatalf("promotion %d after the reader's approval: %+v %v; want it still pending", pending.ID, pr, err)
	}
	res := ferry(t, "promotions", fmt.Sprint(pending.ID), "--server", r.p.api, "--token", serveToken)
	if res.code != 0 || !strings.Contains(res.stdout, "pending") {
		t.Errorf("ferry promotions %d: %d\n%s%s", pending.ID, res.code, res.stdout, res.stderr)
	}
	if s, _ := getBody(r.p.gw + "/prod/hello"); s == http.StatusOK {
		t.Errorf("prod answers before anyone allowed approved")
	}

	a = approveAs("octocat", "comment-by-octocat")
	if !strings.Contains(a.Answer, "approved promotion") || !strings.Contains(a.Answer, "as octo-approver") {
		t.Fatalf("octocat's approval answered %s; want the promotion approved", a.raw)
	}
	waitIn(t, r.p, "prod", "hello from python", 120*time.Second)
	promotionOf(t, r.p, r.c, run.Release, "prod", "succeeded")
	eventually(t, r.p, "a production deployment to prod", 60*time.Second, r.deployedBy("prod", r.main, "success", r.p.gw+"/prod/"))
	for _, d := range r.deploymentsTo("prod") {
		if !r.gh.DeploymentRequest(d.GetID()).GetProductionEnvironment() {
			t.Errorf("deployment %d to prod is not marked production", d.GetID())
		}
	}
}

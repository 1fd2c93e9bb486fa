package test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
)

// gatesConfig is the operator's floor for prod: two approvals, from
// approvers only, after staging. The repository cannot change it.
const gatesConfig = `environments:
- {name: dev}
- {name: staging}
- name: prod
  approval: {required: 2}
  from: [staging]
tokens:
- {name: e2e, token: %s, roles: [admin]}
- {name: alice, token: %s, roles: [deployer, approver], email: alice@example.com}
- {name: bob, token: %s, roles: [approver]}
`

// hostilePipelines are commits that try to take prod's gate away, each
// with the words the refusal must say.
var hostilePipelines = []struct {
	name, pipeline string
	words          []string
}{
	{"prod auto", `
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, auto: true}`,
		[]string{"environments[prod].approval.required is 2; the release's Pipeline makes prod an auto stage", "never loosen it"}},
	// why: an expiry makes it the repository's own Pipeline; one that
	// says only ferry's defaults gets the floor as its policy instead.
	{"one approval", `
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, approval: {required: 1, expireAfter: 1h}}`,
		[]string{"environments[prod].approval.required is 2; the release's Pipeline asks for 1: a repository may tighten a gate, never loosen it"}},
	{"self-approval", `
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, approval: {required: 2, selfApproval: true}}`,
		[]string{"environments[prod].approval.selfApproval is false; the release's Pipeline sets selfApproval: true"}},
	{"staging skipped", `
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, from: [dev], approval: {required: 2}}`,
		[]string{"environments[prod].from is [staging]; the release's Pipeline brings releases into prod without staging before it"}},
}

// writePipeline replaces the repository's Pipeline with stages, commits
// as alice and pushes; it returns the commit.
func writePipeline(t *testing.T, work, stages string) string {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(root, "examples", "python", "ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(base) + "---\napiVersion: ferry.dev/v1alpha1\nkind: Pipeline\nspec:\n  stages:" + stages + "\n"
	if err := os.WriteFile(filepath.Join(work, "ferry.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	gitserver.Git(t, work, "commit", "-q", "-a", "-m", "pipeline", "--author", "alice <alice@example.com>")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
}

// runOf waits for the run of commit to end and returns it.
func runOf(t *testing.T, p *serveProc, c *server.Client, commit string) server.RunView {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		runs, err := c.Runs(t.Context(), "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs.Items {
			if r.Commit == commit && r.Ended.After(r.Created) {
				full, err := c.Run(t.Context(), r.ID)
				if err != nil {
					t.Fatal(err)
				}
				return full
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run of %s ended:\n%s\n%s", commit, p.output, p.runsReport(t))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// promotionOf waits for a promotion of release into env with one of
// statuses.
func promotionOf(t *testing.T, p *serveProc, c *server.Client, release, env string, statuses ...string) server.PromotionView {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		list, err := c.Promotions(t.Context(), env, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range list.Items {
			if pr.Release == release && strings.Contains(" "+strings.Join(statuses, " ")+" ", " "+pr.Status+" ") {
				return pr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no promotion of %s into %s %v: %+v\n%s", release, env, statuses, list.Items, p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestServeGatesBelongToTheServer: commits that set prod auto, lower its
// approvals below the configured floor, allow self-approval, skip the
// stage the configuration puts before prod, or make prod the first stage
// never reach prod: each promotion ends refused naming the configuration
// key, `ferry promotions` shows it, nobody can approve or promote it in,
// and a commit that tightens the gate waits for its approvals as before.
func TestServeGatesBelongToTheServer(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "gates", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: gates, url: %q, branch: main, interval: 1s}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "environments:")
	if err := os.WriteFile(cfg.path, []byte(head+fmt.Sprintf(gatesConfig, serveToken, aliceToken, bobToken)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	ctx := t.Context()
	admin := p.client(t)
	alice, err := server.NewClient(p.api, aliceToken)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := server.NewClient(p.api, bobToken)
	if err != nil {
		t.Fatal(err)
	}
	// The first commit declares no Pipeline: prod's policy is then the
	// configured floor, two approvals, not a refusal.
	first := runOf(t, p, admin, strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD")))
	waiting := promotionOf(t, p, admin, first.Release, "prod", "refused", "pending")
	if waiting.Status != "pending" || !strings.Contains(waiting.Reason, "2 approvals") {
		t.Fatalf("the promotion into prod of a release without a Pipeline: %+v, want pending for the floor's 2 approvals", waiting)
	}

	var refusedIDs []int64
	for _, h := range hostilePipelines {
		run := runOf(t, p, admin, writePipeline(t, work, h.pipeline))
		if run.Status != "succeeded" || run.Release == "" {
			t.Fatalf("%s: run %s (%s)\n%s", h.name, run.Status, run.Reason, p.runsReport(t))
		}
		pr := promotionOf(t, p, admin, run.Release, "prod", "refused", "pending", "approved", "deploying", "verifying", "succeeded")
		if pr.Status != "refused" {
			t.Fatalf("%s: the promotion into prod is %s (%s), want refused", h.name, pr.Status, pr.Reason)
		}
		for _, w := range h.words {
			if !strings.Contains(pr.Reason, w) {
				t.Errorf("%s: the refusal %q does not say %q", h.name, pr.Reason, w)
			}
		}
		refusedIDs = append(refusedIDs, pr.ID)

		// Neither approvals nor asking again let it in.
		var se *server.StatusError
		if _, err := bob.Approve(ctx, pr.ID, "let it in"); !errors.As(err, &se) || se.Code != 409 {
			t.Errorf("%s: approving the refused promotion: %v, want 409", h.name, err)
		}
		_, err := alice.Promote(ctx, run.Release, "prod")
		if !errors.As(err, &se) || se.Code != 403 || !strings.Contains(err.Error(), h.words[0]) {
			t.Errorf("%s: ferry promote into prod: %v, want 403 saying %q", h.name, err, h.words[0])
		}
	}

	// prod as the first stage: the pipeline does not deploy it, and the
	// refusal is recorded.
	run := runOf(t, p, admin, writePipeline(t, work, `
  - {name: prod, auto: true}`))
	var deploy server.StepView
	for _, s := range run.Steps {
		if s.Name == "deploy" {
			deploy = s
		}
	}
	if deploy.Status != "skipped" || !strings.Contains(deploy.Reason, "environments[prod].approval.required is 2; the release's Pipeline makes prod its first stage") {
		t.Errorf("the deploy step of a pipeline starting at prod: %+v", deploy)
	}
	first2 := promotionOf(t, p, admin, run.Release, "prod", "refused")
	refusedIDs = append(refusedIDs, first2.ID)

	envs, err := admin.Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		if e.Name == "prod" && e.Release != "" {
			t.Fatalf("prod runs %s; no release had its two approvals", e.Release)
		}
	}
	history, err := admin.History(ctx, "prod", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(history.Items) != 0 {
		t.Errorf("prod's history: %+v", history.Items)
	}

	// ferry promotions says why, for each (whole with -o wide).
	r := ferry(t, "promotions", "--env", "prod", "-o", "wide", "--server", p.api, "--token", serveToken)
	if r.code != 0 {
		t.Fatalf("ferry promotions: %d %s%s", r.code, r.stdout, r.stderr)
	}
	for _, h := range hostilePipelines {
		if !strings.Contains(r.stdout, h.words[0]) {
			t.Errorf("ferry promotions does not say %q:\n%s", h.words[0], r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "refused"); n < len(refusedIDs) {
		t.Errorf("ferry promotions shows %d refusals, want %d:\n%s", n, len(refusedIDs), r.stdout)
	}

	// A commit that tightens the gate waits for its three approvals.
	run = runOf(t, p, admin, writePipeline(t, work, `
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, approval: {required: 3, approvers: [bob, alice, e2e]}}`))
	tight := promotionOf(t, p, admin, run.Release, "prod", "pending", "refused")
	if tight.Status != "pending" || !strings.Contains(tight.Reason, "3 approvals") {
		t.Fatalf("a tighter pipeline's promotion into prod: %+v", tight)
	}
}

// TestServeResumeDeploysTheNewest: a manual rollback holds dev; the next
// commit's release is made but not deployed, and waits; `ferry resume
// dev` deploys it.
func TestServeResumeDeploysTheNewest(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "held", nil)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: held, url: %q, branch: main, interval: 1s}`, url))
	p := startServe(t, cfg)
	c := p.client(t)
	cli := func(args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", serveToken)...)
	}

	waitGreeting(t, p, "hello from python", 120*time.Second)
	commitGreeting(t, work, "", "second")
	waitGreeting(t, p, "second", 120*time.Second)
	if r := cli("rollback", "dev"); r.code != 0 {
		t.Fatalf("ferry rollback dev: %d %s%s", r.code, r.stdout, r.stderr)
	}
	waitGreeting(t, p, "hello from python", 60*time.Second)

	third := runOf(t, p, c, commitGreeting(t, work, "", "third"))
	var deploy server.StepView
	for _, s := range third.Steps {
		if s.Name == "deploy" {
			deploy = s
		}
	}
	if third.Status != "succeeded" || deploy.Status != "skipped" || !strings.Contains(deploy.Reason, "dev is held") {
		t.Fatalf("the run after the rollback: %s, deploy %+v\n%s", third.Status, deploy, p.runsReport(t))
	}
	// The run ended without deploying: dev still answers the rollback's
	// release, and a promotion of the new release waits.
	waitGreeting(t, p, "hello from python", 60*time.Second)
	waiting := promotionOf(t, p, c, third.Release, "dev", "pending")
	if !strings.Contains(waiting.Reason, "waiting: dev is held") {
		t.Errorf("the waiting promotion: %+v", waiting)
	}
	r := cli("promotions", "--env", "dev")
	if !strings.Contains(r.stdout, "waiting: dev is held") {
		t.Errorf("ferry promotions --env dev: %s%s", r.stdout, r.stderr)
	}

	if r := cli("resume", "dev"); r.code != 0 {
		t.Fatalf("ferry resume dev: %d %s%s", r.code, r.stdout, r.stderr)
	}
	waitGreeting(t, p, "third", 60*time.Second)
	promotionOf(t, p, c, third.Release, "dev", "succeeded")
	if got := liveRelease(t, c, "dev"); got != third.Release {
		t.Errorf("dev runs %s after resume, want the newest release %s", got, third.Release)
	}
}

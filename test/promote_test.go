package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

// The tokens of the promotion test: alice commits and deploys, bob and
// carol approve.
const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789ab"
	carolToken = "carol-token-0123456789"
)

// promotePipeline: dev and staging by themselves (staging checks that
// /hello greets), prod after two approvals by others.
const promotePipeline = `---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    auto: true
    verify:
    - {name: greets, http: {path: /hello, expectStatus: 200, bodyContains: hello}}
  - name: prod
    approval: {required: 2}
`

// TestServePromotes is the whole story with ferry serve and the
// example app: a commit reaches dev and staging by itself and waits for
// approval before prod; the commit's author cannot approve it; two
// approvals by others let it in; a release failing staging's check is
// rolled back there on its own and goes no further; and `ferry rollback
// prod` restores the previous digest.
func TestServePromotes(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "shop", func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(promotePipeline)
		f.Close()
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: shop, url: %q, branch: main, interval: 1s}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, fmt.Sprintf(`- {name: alice, token: %s, roles: [deployer, approver], email: alice@example.com}
- {name: bob, token: %s, roles: [approver]}
- {name: carol, token: %s, roles: [approver]}
`, aliceToken, bobToken, carolToken)...)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	ctx := t.Context()
	as := func(token string) *server.Client {
		c, err := server.NewClient(p.api, token)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice, bob, carol := as(aliceToken), as(bobToken), as(carolToken)

	// The first commit was made by "dev"; the second by alice.
	waitIn(t, p, "staging", "hello from python", 120*time.Second)
	first := pendingProd(t, p, alice, "")
	approve(t, bob, first.ID)
	approve(t, carol, first.ID)
	waitIn(t, p, "prod", "hello from python", 60*time.Second)
	prodV1 := liveRelease(t, alice, "prod")

	commitGreeting(t, work, "alice <alice@example.com>", "hello from alice")
	waitIn(t, p, "staging", "hello from alice", 60*time.Second)
	second := pendingProd(t, p, alice, prodV1)
	// Neither the commit's author nor anyone without approvals to give
	// can let it in; nothing runs in prod meanwhile.
	_, err = alice.Approve(ctx, second.ID, "my own change")
	var se *server.StatusError
	if !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("alice approving her own commit: %v, want 403", err)
	}
	approve(t, bob, second.ID)
	if got, _ := alice.Promotion(ctx, second.ID); got.Status != "pending" {
		t.Fatalf("after one approval of two the promotion is %s", got.Status)
	}
	approve(t, carol, second.ID)
	waitIn(t, p, "prod", "hello from alice", 60*time.Second)
	prodV2 := liveRelease(t, alice, "prod")

	// A release that fails staging's check is rolled back there by
	// itself, and prod is never asked for it.
	commitGreeting(t, work, "alice <alice@example.com>", "bye from alice")
	deadline := time.Now().Add(90 * time.Second)
	var failed server.PromotionView
	for failed.ID == 0 {
		list, err := alice.Promotions(ctx, "staging", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range list.Items {
			if pr.Status == "failed" || pr.Status == "rolled-back" {
				failed = pr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed promotion in staging:\n%s", p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(failed.Reason, "greets") {
		t.Errorf("the failed promotion's reason %q does not name the check", failed.Reason)
	}
	waitIn(t, p, "staging", "hello from alice", 60*time.Second)
	if list, _ := alice.Promotions(ctx, "prod", 0, 0); list.Items[0].Release != prodV2 && list.Items[0].Status == "pending" {
		t.Errorf("prod was asked for the release that failed staging: %+v", list.Items[0])
	}

	// ferry rollback prod: back to the previous digest, by the CLI.
	begin := time.Now()
	r := ferry(t, "rollback", "prod", "--server", p.api, "--token", aliceToken)
	took := time.Since(begin)
	if r.code != 0 || !strings.Contains(r.stdout, "prod now runs "+store.Short(prodV1)) {
		t.Fatalf("ferry rollback prod: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitIn(t, p, "prod", "hello from python", 60*time.Second)
	t.Logf("ferry rollback prod took %s (the CLI's start included)", took)
	if got := liveRelease(t, alice, "prod"); got != prodV1 {
		t.Errorf("prod runs %s after the rollback, want %s", got, prodV1)
	}
	r = ferry(t, "history", "prod", "--server", p.api, "--token", aliceToken)
	if r.code != 0 || strings.Count(r.stdout, "\n") < 4 || !strings.Contains(r.stdout, "rollback") {
		t.Errorf("ferry history prod: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A frozen environment refuses a promotion, saying why; roles are
	// checked (an approver may not freeze); a rejection needs a comment.
	cli := func(token string, args ...string) result {
		return ferry(t, append(args, "--server", p.api, "--token", token)...)
	}
	if r := cli(bobToken, "freeze", "prod", "--reason", "audit week"); r.code == 0 || !strings.Contains(r.stderr, "lacks the deployer role") {
		t.Errorf("an approver froze prod: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "freeze", "prod", "--reason", "audit week"); r.code != 0 || !strings.Contains(r.stdout, "frozen: audit week") {
		t.Fatalf("ferry freeze: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "promote", prodV2, "--to", "prod"); r.code == 0 || !strings.Contains(r.stderr, "audit week") {
		t.Errorf("a promotion into frozen prod: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(aliceToken, "unfreeze", "prod"); r.code != 0 {
		t.Fatalf("ferry unfreeze: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = cli(aliceToken, "promote", prodV2, "--to", "prod", "-o", "json")
	var asked server.PromotionView
	if err := json.Unmarshal([]byte(r.stdout), &asked); r.code != 0 || err != nil || asked.Status != "pending" {
		t.Fatalf("ferry promote after the unfreeze: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(bobToken, "reject", fmt.Sprint(asked.ID)); r.code == 0 {
		t.Errorf("a rejection without a comment was taken")
	}
	if r := cli(bobToken, "reject", fmt.Sprint(asked.ID), "--comment", "not during the audit"); r.code != 0 || !strings.Contains(r.stdout, "rejected") {
		t.Errorf("ferry reject: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := cli(carolToken, "approve", fmt.Sprint(asked.ID)); r.code == 0 {
		t.Errorf("a rejected promotion took an approval: %s", r.stdout)
	}
	if got := liveRelease(t, alice, "prod"); got != prodV1 {
		t.Errorf("prod runs %s after a rejected promotion, want %s", got, prodV1)
	}
	events, err := alice.Events(ctx, "", 200, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range events.Items {
		seen[e.Action] = true
	}
	for _, want := range []string{"promotion.approve", "promotion.reject", "rollback", "freeze", "unfreeze"} {
		if !seen[want] {
			t.Errorf("no %s in the audit log", want)
		}
	}
}

// waitIn polls GATEWAY/env/hello until its message is want.
func waitIn(t *testing.T, p *serveProc, env, want string, within time.Duration) {
	t.Helper()
	waitGreetingAt(t, p, p.gw+"/"+env+"/hello", want, within)
}

// pendingProd waits for a pending promotion into prod of a release other
// than not.
func pendingProd(t *testing.T, p *serveProc, c *server.Client, not string) server.PromotionView {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := c.Promotions(t.Context(), "prod", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range list.Items {
			if pr.Status == "pending" && pr.Release != not {
				return pr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending promotion into prod: %+v\n%s", list.Items, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func approve(t *testing.T, c *server.Client, id int64) {
	t.Helper()
	if _, err := c.Approve(t.Context(), id, "looks good"); err != nil {
		t.Fatal(err)
	}
}

// liveRelease is the release env runs, once the store's record and the
// target agree (the record follows the switch by a moment).
func liveRelease(t *testing.T, c *server.Client, env string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		envs, err := c.Environments(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envs {
			if e.Name == env && e.Release != "" && e.Error == "" {
				return e.Release
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("environment %s: no settled release: %+v", env, envs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServePromotionSurvivesKill kills ferry serve with SIGKILL while a
// promotion into staging is verifying (its soak is long enough to land
// in), starts it again, and checks the promotion ends succeeded or rolled
// back, never stuck. The configuration also exports every deployment to
// a Git repository, which must hold each environment's release.
func TestServePromotionSurvivesKill(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "soak", func(dir string) {
		f, err := os.OpenFile(filepath.Join(dir, "ferry.yaml"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`---
apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - name: staging
    auto: true
    soak: 6s
    verify:
    - {name: greets, http: {path: /hello, bodyContains: hello}}
  - name: prod
    approval: {required: 1}
`)
		f.Close()
	})
	gitops := srv.Create(t, "gitops")
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: soak, url: %q, branch: main, interval: 1h}`, url))
	b, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, fmt.Sprintf("export: {url: %q, branch: main}\n", gitops)...)
	if err := os.WriteFile(cfg.path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	c := p.client(t)
	ctx := t.Context()

	verifying := func() (server.PromotionView, bool) {
		list, err := c.Promotions(ctx, "staging", 0, 0)
		if err != nil {
			return server.PromotionView{}, false
		}
		for _, pr := range list.Items {
			if pr.Status == "verifying" {
				return pr, true
			}
		}
		return server.PromotionView{}, false
	}
	var caught server.PromotionView
	for deadline := time.Now().Add(120 * time.Second); ; {
		if pr, ok := verifying(); ok {
			caught = pr
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no promotion into staging reached verifying:\n%s", p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.kill(t)
	before := p.output.String()

	p = startServe(t, cfg)
	c = p.client(t)
	var end server.PromotionView
	for deadline := time.Now().Add(60 * time.Second); ; {
		pr, err := c.Promotion(ctx, caught.ID)
		if err == nil && pr.Status != "verifying" && pr.Status != "deploying" && pr.Status != "approved" {
			end = pr
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("promotion %d is still %s after the restart:\n%s", caught.ID, pr.Status, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if end.Status != "succeeded" && end.Status != "rolled-back" {
		t.Fatalf("promotion %d ended %s (%s), want succeeded or rolled-back", end.ID, end.Status, end.Reason)
	}
	if end.Status == "succeeded" {
		waitIn(t, p, "staging", "hello from python", 60*time.Second)
		pendingProd(t, p, c, "")
	}

	// The export holds what dev and staging run.
	clone := t.TempDir()
	for deadline := time.Now().Add(60 * time.Second); ; {
		gitserver.Git(t, "", "clone", "-q", gitops, clone+"/x")
		_, errDev := os.Stat(filepath.Join(clone, "x", "environments", "dev", "ferry.yaml"))
		_, errStaging := os.Stat(filepath.Join(clone, "x", "environments", "staging", "ferry.yaml"))
		if errDev == nil && (errStaging == nil || end.Status != "succeeded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the GitOps repository lacks the environments' releases:\nbefore the kill:\n%s\nafter:\n%s", before, p.output)
		}
		os.RemoveAll(clone + "/x")
		time.Sleep(500 * time.Millisecond)
	}
	msg := gitserver.Git(t, filepath.Join(clone, "x"), "log", "--format=%s")
	if !strings.Contains(msg, "deploy dev: release sha256:") {
		t.Errorf("the export's commits: %s", msg)
	}
}

package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// pullHook sends a pull_request webhook as GitHub does, signed with
// secret, for request n whose head is in headRepo (the base is
// acme/demo; "" makes head.repo null, as for a deleted fork). It returns
// the status and the answer's "answer" field.
func pullHook(t *testing.T, api, source, secret, delivery, action string, n int, headRepo string) (int, string) {
	t.Helper()
	head := map[string]any{"sha": strings.Repeat("e", 40), "ref": "feature", "repo": nil}
	if headRepo != "" {
		head["repo"] = map[string]any{"full_name": headRepo}
	}
	body, _ := json.Marshal(map[string]any{
		"action": action, "number": n,
		"pull_request": map[string]any{
			"number": n, "title": "<b>hi</b> [x](http://evil.example)", "html_url": fmt.Sprintf("https://github.com/acme/demo/pull/%d", n),
			"user": map[string]any{"login": "mona"}, "head": head,
			"base": map[string]any{"ref": "main", "repo": map[string]any{"full_name": "acme/demo"}},
		},
		"repository": map[string]any{"full_name": "acme/demo", "default_branch": "main"},
		"sender":     map[string]any{"login": "mona"},
	})
	return githubHookAnswer(t, api, source, secret, "pull_request", delivery, body)
}

// pushPullFiles commits the files (path → content) on a branch off main in
// work and pushes it as refs/pull/n/head, as GitHub keeps a request's
// head; it returns the commit.
func pushPullFiles(t *testing.T, work string, n int, files map[string]string) string {
	t.Helper()
	gitserver.Git(t, work, "checkout", "-q", "-B", fmt.Sprintf("pr%d", n), "main")
	for p, content := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755)
		if err := os.WriteFile(filepath.Join(work, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", fmt.Sprintf("pull request %d", n))
	gitserver.Git(t, work, "push", "-q", "-f", "origin", fmt.Sprintf("HEAD:refs/pull/%d/head", n))
	commit := strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
	gitserver.Git(t, work, "checkout", "-q", "main")
	return commit
}

// greeter is a main.py answering msg and, to show what a preview's code
// can reach, the values of every variable of its process.
func greeter(msg string) string {
	return fmt.Sprintf(`import os


def handle(event, context):
    return {"message": %q, "echo": sorted(os.environ.values())}
`, msg)
}

// prober is a main.py answering msg, and in "reach" what came of
// reaching each of urls from the function: a preview's code must reach
// none of ferry's own listeners.
func prober(msg string, urls []string) string {
	list, _ := json.Marshal(urls)
	return fmt.Sprintf(`import os
import urllib.request


def handle(event, context):
    reach = []
    for url in %s:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                reach.append(url + " answered " + str(r.status))
        except Exception as e:
            reach.append(url + " refused: " + type(e).__name__)
    return {"message": %q, "echo": sorted(os.environ.values()), "reach": reach}
`, list, msg)
}

// greeterTest is a test_main.py that greeter passes.
const greeterTest = `import unittest

import main


class HandleTest(unittest.TestCase):
    def test_greets(self):
        self.assertTrue(main.handle({}, {})["message"])


if __name__ == "__main__":
    unittest.main()
`

// getBody is GET url's status and body (0 and the error on a network
// error).
func getBody(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A pull request is untrusted code. Its own Pipeline cannot turn previews
// on, cannot deploy anywhere but its preview (a first stage named prod,
// auto, is only a name in it), and its function reaches none of the
// stages' secrets nor ferry's; a request whose origin is not confirmed
// (head.repo null) is not built.
func TestPreviewHostilePullRequest(t *testing.T) {
	const secret = "pr-hook-secret"
	const devSecret = "dev-secret-value-4711"
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "demo", func(dir string) {
		os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(greeter("main v1")), 0o644)
		os.WriteFile(filepath.Join(dir, "hello", "test_main.py"), []byte(greeterTest), 0o644)
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1s, webhookSecret: %s}`, url, secret))
	p := startServe(t, cfg, "FERRY_E2E_GITHUB_TOKEN=ghp_ferrys_own_token_0815")
	waitGreeting(t, p, "main v1", 2*time.Minute)
	c := p.client(t)
	if _, err := c.SetEnvSecret(t.Context(), "dev", "API_KEY", devSecret); err != nil {
		t.Fatal(err)
	}

	// The request's Pipeline turns previews on; main's (the default) has
	// them off, and main's is the one read.
	hostilePipeline := `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata: {name: default}
spec:
  previews: {enabled: true}
  stages:
  - {name: prod, auto: true}
`
	pushPullFiles(t, work, 1, map[string]string{".ferry/pipeline.yaml": hostilePipeline, "hello/main.py": greeter("PR 1")})
	code, answer := pullHook(t, p.api, "demo", secret, "d-1", "opened", 1, "acme/demo")
	if code >= 300 || !strings.Contains(answer, "previews are off") {
		t.Fatalf("a request turning previews on in its own Pipeline: %d %q, want previews off", code, answer)
	}

	// main turns them on, with the stages ferry serve configures.
	onPipeline := `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
metadata: {name: default}
spec:
  previews: {enabled: true}
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true, from: [dev]}
  - {name: prod, from: [staging], approval: {required: 1}}
`
	os.MkdirAll(filepath.Join(work, ".ferry"), 0o755)
	os.WriteFile(filepath.Join(work, ".ferry/pipeline.yaml"), []byte(onPipeline), 0o644)
	os.WriteFile(filepath.Join(work, "hello", "main.py"), []byte(greeter("main v2")), 0o644)
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "previews on")
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	waitGreeting(t, p, "main v2", 2*time.Minute)

	// A request whose head repository is gone: ferry cannot confirm its
	// origin, so it is a fork's and not built.
	pushPullFiles(t, work, 3, map[string]string{"hello/main.py": greeter("PR 3")})
	if code, answer := pullHook(t, p.api, "demo", secret, "d-3", "opened", 3, ""); code >= 300 || !strings.Contains(answer, "fork") {
		t.Errorf("head.repo null: %d %q, want a fork's, not built", code, answer)
	}

	// PR 2 names prod its first, automatic stage.
	raw, err := os.ReadFile(cfg.path)
	if err != nil {
		t.Fatal(err)
	}
	registry := ""
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "registryListen: "); ok {
			registry = "http://" + strings.TrimSpace(v) + "/v2/"
		}
	}
	ferrys := []string{p.api + "/healthz", p.api + "/api/v1/sources", registry}
	pushPullFiles(t, work, 2, map[string]string{".ferry/pipeline.yaml": hostilePipeline, "hello/main.py": prober("PR 2", ferrys)})
	if code, answer := pullHook(t, p.api, "demo", secret, "d-2", "opened", 2, "acme/demo"); code >= 300 {
		t.Fatalf("PR 2: %d %q", code, answer)
	}
	waitGreetingAt(t, p, p.gw+"/pr-2-demo/hello", "PR 2", 2*time.Minute)

	_, body := getBody(p.gw + "/pr-2-demo/hello")
	// The stages share the gateway's origin: a preview's answer is a
	// sandboxed page of its own.
	if resp, err := http.Get(p.gw + "/pr-2-demo/hello"); err == nil {
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox") {
			t.Errorf("the preview's answer has Content-Security-Policy %q; want a sandbox", csp)
		}
	}
	if resp, err := http.Get(p.gw + "/dev/hello"); err == nil {
		resp.Body.Close()
		if csp := resp.Header.Get("Content-Security-Policy"); csp != "" {
			t.Errorf("dev's answer has Content-Security-Policy %q; a stage's answers are its own", csp)
		}
	}
	var got struct{ Reach []string }
	json.Unmarshal([]byte(body), &got)
	if len(got.Reach) != len(ferrys) {
		t.Errorf("the preview's probe said %s", body)
	}
	t.Logf("from the preview: %q", got.Reach)
	for _, r := range got.Reach {
		if strings.Contains(r, " answered ") {
			t.Errorf("a preview's function reaches ferry: %s", r)
		}
	}
	for _, leak := range []string{devSecret, "ghp_ferrys_own_token_0815", secret, serveToken} {
		if strings.Contains(body, leak) {
			t.Errorf("the preview's function sees a secret (%s): %s", leak, body)
		}
	}
	for _, env := range []string{"dev", "staging", "prod"} {
		if _, b := getBody(p.gw + "/" + env + "/hello"); strings.Contains(b, "PR 2") {
			t.Errorf("%s runs the pull request's code: %s", env, b)
		}
	}
	// The request's runs deployed to its preview and nowhere else.
	for _, env := range []string{"dev", "staging", "prod"} {
		h, err := c.History(t.Context(), env, 100, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range h.Items {
			rel, err := c.Release(t.Context(), d.Release)
			if err != nil {
				t.Fatal(err)
			}
			if rel.Commit != "" && rel.Commit != strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "main")) &&
				rel.Commit != strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "main~1")) {
				t.Errorf("%s had a deployment of commit %s, which is not main's", env, rel.Commit)
			}
		}
	}
	pv, err := c.Previews(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range pv {
		if x.Number != 2 {
			t.Errorf("a preview of pull request %d (%s, %s): only #2 was allowed one", x.Number, x.Environment, x.State)
		}
	}
	for _, leak := range []string{devSecret, "ghp_ferrys_own_token_0815", secret} {
		if strings.Contains(p.output.String(), leak) {
			t.Errorf("ferry serve's log shows a secret (%s)", leak)
		}
	}
}

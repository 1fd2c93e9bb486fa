package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/test/gitserver"
)

// previewsPipeline turns a repository's previews on, as the README says.
const previewsPipeline = `apiVersion: ferry.dev/v1alpha1
kind: Pipeline
spec:
  stages:
  - {name: dev, auto: true}
  - {name: staging, auto: true}
  - {name: prod, approval: {required: 1}}
  previews: {enabled: true, ttl: 72h}
`

// TestServePreviewsPolled follows the README with no webhook: a source
// whose Pipeline turns previews on, a server that builds requests whose
// origin it cannot tell (previews: {forks: true}), and a pull request
// pushed as refs/pull/1/head. Its preview answers with the request's
// code, follows a push, and is removed when the ref goes.
func TestServePreviewsPolled(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "app", func(dir string) {
		if err := os.MkdirAll(filepath.Join(dir, ".ferry"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".ferry", "pipeline.yaml"), []byte(previewsPipeline), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: app, url: %q, branch: main, interval: 1s}`, url))
	f, err := os.OpenFile(cfg.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("previews: {forks: true}\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 2*time.Minute)
	waitSaid(t, p, "pull requests open at the first listing", 2*time.Minute)

	r := ferry(t, "previews", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "no previews: a source has them once its Pipeline") {
		t.Errorf("ferry previews with none: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// The request: a branch of its own, pushed where GitHub keeps it.
	gitserver.Git(t, work, "checkout", "-q", "-b", "feature")
	pushPull(t, work, 1, "hello from the pull request")
	pr := p.gw + "/pr-1-app/hello"
	waitGreetingAt(t, p, pr, "hello from the pull request", 2*time.Minute)

	r = ferry(t, "previews", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "pr-1-app") || !strings.Contains(r.stdout, "live") {
		t.Errorf("ferry previews: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The request's run says where its release went.
	r = ferry(t, "runs", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "pr-1-app ✔") {
		t.Errorf("ferry runs does not show the preview's deploy: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// dev keeps the branch's code: a request never deploys there.
	waitGreeting(t, p, "hello from python", time.Minute)

	pushPull(t, work, 1, "hello from the second push")
	waitGreetingAt(t, p, pr, "hello from the second push", 2*time.Minute)

	// Closed: the ref goes, and so does the preview.
	gitserver.Git(t, work, "push", "-q", "origin", ":refs/pull/1/head")
	waitClosed(t, p, pr)
	// The URL answers 404 once the environment goes; the record follows.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r = ferry(t, "previews", "--server", p.api, "--token", serveToken)
		if r.code == 0 && strings.Contains(r.stdout, "torn down") && strings.Contains(r.stdout, "its pull request closed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry previews after the close: %d %q %q", r.code, r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestServePreviewsWebhook follows the README with GitHub's webhook: a
// signed pull_request delivery opens the preview of a request pushed as
// refs/pull/1/head, a synchronize delivery follows a push, and a closed
// delivery removes it while the ref stays, as GitHub keeps it. The
// source's requests are polled too (previews on means they are), and the
// opened delivery comes while a poll that saw the request is fetching
// it: before the watcher's events were queued, the poll then waited for
// the request the delivery held, the delivery for the mirror the poll
// held, and the source stopped for good.
func TestServePreviewsWebhook(t *testing.T) {
	const secret = "previews-webhook-secret"
	srv := gitserver.Start(t, "", "")
	url, work := pythonRepo(t, srv, "app", func(dir string) {
		if err := os.MkdirAll(filepath.Join(dir, ".ferry"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".ferry", "pipeline.yaml"), []byte(previewsPipeline), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	slow := newSlowFetches(t, url)
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: app, url: %q, branch: main, interval: 1s, webhookSecret: %s}`, slow.url, secret))
	p := startServe(t, cfg)
	waitGreeting(t, p, "hello from python", 2*time.Minute)
	waitSaid(t, p, "pull requests open at the first listing", 2*time.Minute)

	gitserver.Git(t, work, "checkout", "-q", "-b", "feature")
	slow.on()
	pushPull(t, work, 1, "hello from the pull request")
	select {
	case <-slow.started:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no poll fetched the request:\n%s", p.output)
	}
	code, answer := githubPull(t, p.api, "app", secret, "d-1", "opened", 1)
	if code != 202 && code != 200 || !strings.Contains(answer, "pr-1-app") {
		t.Errorf("opened: %d %s", code, answer)
	}
	slow.off()
	pr := p.gw + "/pr-1-app/hello"
	waitGreetingAt(t, p, pr, "hello from the pull request", 2*time.Minute)

	pushPull(t, work, 1, "hello from the second push")
	if code, answer := githubPull(t, p.api, "app", secret, "d-2", "synchronize", 1); code != 202 && code != 200 {
		t.Errorf("synchronize: %d %s", code, answer)
	}
	waitGreetingAt(t, p, pr, "hello from the second push", 2*time.Minute)

	if code, answer := githubPull(t, p.api, "app", secret, "d-3", "closed", 1); code != 202 && code != 200 {
		t.Errorf("closed: %d %s", code, answer)
	}
	waitClosed(t, p, pr)
}

// slowFetches stands before a Git server: while on, each fetch of objects
// (a POST to git-upload-pack) waits 2 s, and the first says so on started.
type slowFetches struct {
	url     string
	started chan struct{}
	mu      sync.Mutex
	slow    bool
	said    bool
}

func newSlowFetches(t *testing.T, target string) *slowFetches {
	t.Helper()
	u, err := neturl.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	s := &slowFetches{started: make(chan struct{})}
	proxy := httputil.NewSingleHostReverseProxy(&neturl.URL{Scheme: u.Scheme, Host: u.Host})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/git-upload-pack") {
			s.mu.Lock()
			slow, first := s.slow, s.slow && !s.said
			if first {
				s.said = true
			}
			s.mu.Unlock()
			if first {
				close(s.started)
			}
			if slow {
				time.Sleep(2 * time.Second)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	u.Host = strings.TrimPrefix(front.URL, "http://")
	s.url = u.String()
	return s
}

func (s *slowFetches) on() {
	s.mu.Lock()
	s.slow = true
	s.mu.Unlock()
}

func (s *slowFetches) off() {
	s.mu.Lock()
	s.slow = false
	s.mu.Unlock()
}

// githubPull sends a pull_request delivery of a request from the base
// repository itself, signed as GitHub signs, and returns the status and
// the answer's "answer".
func githubPull(t *testing.T, api, source, secret, delivery, action string, number int) (int, string) {
	t.Helper()
	repo := map[string]any{"full_name": "acme/app"}
	body, err := json.Marshal(map[string]any{
		"action": action, "number": number,
		"pull_request": map[string]any{
			"number": number, "title": "a change", "user": map[string]any{"login": "octocat"},
			"head": map[string]any{"ref": "feature", "sha": "0000000000000000000000000000000000000000", "repo": repo},
			"base": map[string]any{"ref": "main", "repo": repo},
		},
		"repository": repo, "sender": map[string]any{"login": "octocat"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return githubHookAnswer(t, api, source, secret, "pull_request", delivery, body)
}

// waitClosed waits until the preview's URL pr answers 404 saying its pull
// request closed (bounded only to catch a hang).
func waitClosed(t *testing.T, p *serveProc, pr string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := getBody(pr)
		if code == 404 && strings.Contains(body, "was removed (its pull request closed)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s after the close: %d %s\n%s", pr, code, body, p.output)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestValidateSaysPreviewsOn: ferry validate says when a repository's
// Pipeline turns previews on, and says nothing of them otherwise.
func TestValidateSaysPreviewsOn(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(root, "examples", "python"))); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, "validate", dir)
	if r.code != 0 || strings.Contains(r.stdout, "previews") {
		t.Errorf("ferry validate without previews: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".ferry"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".ferry", "pipeline.yaml"), []byte(previewsPipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ferry(t, "validate", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "; previews on (ttl 72h0m0s)") {
		t.Errorf("ferry validate with previews: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

package test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrycd/ferry/server"
	"github.com/ferrycd/ferry/test/gitserver"
	"github.com/ferrycd/ferry/test/testreg"
)

const serveToken = "e2e-admin-token-0123456789"

// serveProc is a running `ferry serve`.
type serveProc struct {
	cmd    *exec.Cmd
	done   chan error
	output *testreg.SyncBuffer
	api    string // http://HOST:PORT
	gw     string
}

// serveConfig is a configuration for `ferry serve` on free ports.
type serveConfig struct {
	path, api, gw string
	// args are more arguments of ferry serve (none by default).
	args []string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		// why: the kernel may give a closed port out again at once, and
		// one configuration takes three; a port is handed out once.
		if !handed[addr] {
			handed[addr] = true
			return addr
		}
	}
}

var (
	handedMu sync.Mutex
	handed   = map[string]bool{}
)

// writeServeConfig writes a configuration watching one source.
func writeServeConfig(t *testing.T, source string) serveConfig {
	t.Helper()
	dir := t.TempDir()
	api, gw, reg := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := fmt.Sprintf(`listen: %s
gateway: %s
registryListen: %s
dataDir: data
registry: embedded
sources:
%s
environments:
- {name: dev}
- {name: staging}
- {name: prod}
tokens:
- {name: e2e, token: %s, roles: [admin]}
`, api, gw, reg, source, serveToken)
	path := filepath.Join(dir, "ferry-serve.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return serveConfig{path: path, api: "http://" + api, gw: "http://" + gw}
}

// startServe starts ferry serve and waits until its API answers. The test
// stops it with SIGTERM at its end, unless it was killed before.
func startServe(t *testing.T, cfg serveConfig, env ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"serve", "--config", cfg.path}, cfg.args...)...)
	cmd.Env = append(append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"), env...)
	p := &serveProc{cmd: cmd, done: make(chan error, 1), output: &testreg.SyncBuffer{}, api: cfg.api, gw: cfg.gw}
	cmd.Stdout = p.output
	cmd.Stderr = p.output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Error("ferry serve did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("ferry serve said:\n%s", p.output)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if resp, err := http.Get(cfg.api + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("ferry serve exited (%v):\n%s", err, p.output)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferry serve did not answer within 60 s:\n%s", p.output)
		}
	}
}

// kill stops ferry serve with SIGKILL, as a crash would.
func (p *serveProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	<-p.done
}

// runsReport lists every run with its steps and log, for a failure.
func (p *serveProc) runsReport(t *testing.T) string {
	c := p.client(t)
	runs, err := c.Runs(t.Context(), "", 0, 0)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, r := range runs.Items {
		full, _ := c.Run(t.Context(), r.ID)
		fmt.Fprintf(&b, "run %d %s %s %s\n", r.ID, r.Commit, r.Status, r.Reason)
		for _, s := range full.Steps {
			fmt.Fprintf(&b, "  %s %s %s\n", s.Name, s.Status, s.Reason)
		}
		lines, _ := c.Logs(t.Context(), r.ID, 0)
		for _, l := range lines {
			fmt.Fprintf(&b, "    %s %s\n", l.Step, l.Text)
		}
	}
	return b.String()
}

func (p *serveProc) client(t *testing.T) *server.Client {
	t.Helper()
	c, err := server.NewClient(p.api, serveToken)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitGreeting polls GET GATEWAY/dev/hello until its message is want.
func waitGreeting(t *testing.T, p *serveProc, want string, within time.Duration) {
	t.Helper()
	waitGreetingAt(t, p, p.gw+"/dev/hello", want, within)
}

// waitGreetingAt polls url until its message is want.
func waitGreetingAt(t *testing.T, p *serveProc, url, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m struct{ Message string }
			json.Unmarshal(body, &m)
			if resp.StatusCode == 200 && m.Message == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %q within %s (last: %s)\n%s\nruns:\n%s", url, want, within, last, p.output, p.runsReport(t))
}

// pythonRepo pushes examples/python (changed by edit) as the first commit
// of a new repository on srv, and returns a clone to work in.
// serveHandler starts ferry serve on a repository of the Python example
// whose hello/main.py is mainPy (a hostile function, say), watched every
// second under source name, with the files drop names removed.
func serveHandler(t *testing.T, name, mainPy string, drop ...string) *serveProc {
	t.Helper()
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, name, func(dir string) {
		for _, f := range drop {
			os.RemoveAll(filepath.Join(dir, f))
		}
		if err := os.WriteFile(filepath.Join(dir, "hello", "main.py"), []byte(mainPy), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	return startServe(t, writeServeConfig(t, fmt.Sprintf(`- {name: %s, url: %q, branch: main, interval: 1s}`, name, url)))
}

func pythonRepo(t *testing.T, srv *gitserver.Server, name string, edit func(dir string)) (url, work string) {
	t.Helper()
	url = srv.Create(t, name)
	work = t.TempDir()
	if err := os.CopyFS(work, os.DirFS(filepath.Join(root, "examples", "python"))); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(work)
	}
	gitserver.Git(t, work, "init", "-q", "-b", "main")
	gitserver.Git(t, work, "add", "-A")
	gitserver.Git(t, work, "commit", "-q", "-m", "the python example")
	gitserver.Git(t, work, "remote", "add", "origin", srv.PushURL(url))
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return url, work
}

var greetingRE = regexp.MustCompile(`"message": "[^"]*"`)

// commitGreeting changes the example's greeting, commits (as author when
// given) and pushes; it returns the commit.
func commitGreeting(t *testing.T, work, author, greeting string) string {
	t.Helper()
	setGreeting(t, work, author, greeting)
	gitserver.Git(t, work, "push", "-q", "origin", "main")
	return strings.TrimSpace(gitserver.Git(t, work, "rev-parse", "HEAD"))
}

// setGreeting changes the example's greeting in work and commits it (as
// author when given) on the branch checked out.
func setGreeting(t *testing.T, work, author, greeting string) {
	t.Helper()
	p := filepath.Join(work, "hello", "main.py")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	changed := greetingRE.ReplaceAll(b, []byte(`"message": "`+greeting+`"`))
	if bytes.Equal(changed, b) {
		t.Fatalf("no greeting to change in %s", p)
	}
	if err := os.WriteFile(p, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"commit", "-q", "-a", "-m", "greet: " + greeting}
	if author != "" {
		args = append(args, "--author", author)
	}
	gitserver.Git(t, work, args...)
}

// githubPush sends a push webhook as GitHub does, signed with secret,
// and returns the status.
func githubPush(t *testing.T, api, source, secret, delivery string, body []byte) int {
	t.Helper()
	code, _ := githubPushReply(t, api, source, secret, delivery, body)
	return code
}

// githubPushReply is githubPush, also returning the answer's body.
func githubPushReply(t *testing.T, api, source, secret, delivery string, body []byte) (int, []byte) {
	t.Helper()
	return githubHook(t, api, source, secret, "push", delivery, body)
}

// githubHook sends a webhook of event as GitHub does, with its headers,
// signed with secret, and returns the status and the answer's body.
func githubHook(t *testing.T, api, source, secret, event, delivery string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", api+"/hooks/github/"+source, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/e2e")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-GitHub-Hook-ID", "292034523")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// githubHookAnswer is githubHook for deliveries that act (a pull request,
// a comment): it returns the status and the answer's "answer", or the
// whole body when it has none.
func githubHookAnswer(t *testing.T, api, source, secret, event, delivery string, body []byte) (int, string) {
	t.Helper()
	code, b := githubHook(t, api, source, secret, event, delivery, body)
	var a struct{ Answer string }
	json.Unmarshal(b, &a)
	if a.Answer == "" {
		a.Answer = string(b)
	}
	return code, a.Answer
}

// TestServeWebhookDeploys is the end-to-end test: a real Git
// smart-HTTP server (with basic auth), a push that changes the Python
// example, a signed GitHub webhook, and the new code answering at
// GATEWAY/dev/hello. The source polls only hourly, so the webhook is what
// brings the change.
func TestServeWebhookDeploys(t *testing.T) {
	srv := gitserver.Start(t, "git-user", "git-password")
	url, work := pythonRepo(t, srv, "demo", nil)
	const secret = "webhook-secret-e2e"
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: demo, url: %q, branch: main, interval: 1h, webhookSecret: %s, username: git-user, password: $GIT_PASSWORD}`, url, secret))
	p := startServe(t, cfg, "GIT_PASSWORD=git-password")

	// The first commit is fetched at start, built and deployed to dev.
	waitGreeting(t, p, "hello from python", 120*time.Second)
	if said := fmt.Sprintf("every 1h0m0s; webhook: %s/hooks/github/demo\n", p.api); !strings.Contains(p.output.String(), said) {
		t.Errorf("ferry serve does not say %q at start:\n%s", said, p.output)
	}

	commit := commitGreeting(t, work, "", "hello from the webhook")
	// The payload's commit is a lie: ferry must take the commit from Git.
	payload := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","before":"%s","after":"%s","deleted":false,"repository":{"full_name":"dev/demo"}}`,
		strings.Repeat("0", 40), strings.Repeat("f", 40)))
	if code := githubPush(t, p.api, "demo", "forged-secret", "delivery-0", payload); code != 401 {
		t.Errorf("a forged webhook answered %d, want 401", code)
	}
	if code := githubPush(t, p.api, "demo", secret, "delivery-1", payload); code != 202 {
		t.Fatalf("the webhook answered %d, want 202", code)
	}
	waitGreeting(t, p, "hello from the webhook", 60*time.Second)
	if code := githubPush(t, p.api, "demo", secret, "delivery-1", payload); code != 200 {
		t.Errorf("a replayed delivery answered %d, want 200", code)
	}

	// What the CLI shows of it.
	c := p.client(t)
	ctx := t.Context()
	// why: the new code answers once the deploy step applied it; the run
	// is marked succeeded a moment later, after it recorded the deploy.
	var runs server.ListPage[server.RunView]
	for deadline := time.Now().Add(60 * time.Second); ; {
		var err error
		runs, err = c.Runs(ctx, "demo", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs.Items) == 2 && runs.Items[0].Status != "queued" && runs.Items[0].Status != "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run 2 did not end: %+v", runs.Items)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if runs.Items[0].Commit != commit || runs.Items[0].Status != "succeeded" {
		t.Fatalf("runs: %+v", runs.Items)
	}
	r := ferry(t, "runs", "logs", fmt.Sprint(runs.Items[0].ID), "-f", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "deploy") {
		t.Errorf("ferry runs logs -f: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A source added through the CLI that cannot be reached: its status
	// says so and backs off; removing it leaves the rest alone.
	remote := []string{"--server", p.api, "--token", serveToken}
	r = ferry(t, append([]string{"sources", "add", "gone", "http://127.0.0.1:1/gone.git", "--interval", "1s"}, remote...)...)
	if r.code != 0 {
		t.Fatalf("ferry sources add: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = ferry(t, append([]string{"sources", "sync", "gone"}, remote...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "gone") {
		t.Errorf("ferry sources sync of an unreachable source: %d %s%s", r.code, r.stdout, r.stderr)
	}
	var listed []server.SourceView
	r = ferry(t, append([]string{"sources", "list", "-o", "json"}, remote...)...)
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 2 {
		t.Fatalf("ferry sources list -o json: %v %s%s", err, r.stdout, r.stderr)
	}
	for _, s := range listed {
		if s.Name == "gone" && (s.LastError == "" || s.Failures < 1 || !s.NextFetch.After(s.LastFetch)) {
			t.Errorf("the unreachable source's status: %+v", s)
		}
		if s.Name == "demo" && (s.LastError != "" || s.LastCommit != commit) {
			t.Errorf("demo's status: %+v", s)
		}
	}
	if r = ferry(t, append([]string{"sources", "rm", "gone"}, remote...)...); r.code != 0 {
		t.Errorf("ferry sources rm: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r = ferry(t, append([]string{"sources", "rm", "demo"}, remote...)...); r.code == 0 || !strings.Contains(r.stderr, "configuration") {
		t.Errorf("removing a configured source: %d %s%s", r.code, r.stdout, r.stderr)
	}
	r = ferry(t, append([]string{"releases", "-o", "wide"}, remote...)...)
	if r.code != 0 || strings.Count(r.stdout, "sha256:") != 2 {
		t.Errorf("ferry releases: %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = ferry(t, "status", "--server", p.api, "--token", serveToken)
	if r.code != 0 || !strings.Contains(r.stdout, "dev") || !strings.Contains(r.stdout, strings.TrimPrefix(runs.Items[0].Release, "sha256:")[:12]) {
		t.Errorf("ferry status: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestServeCrashResumes kills ferry serve with SIGKILL while a run is in
// its test step, starts it again, and checks that the run ends (here:
// resumes and succeeds), that there is exactly one release for the
// commit, and that nothing recorded before the crash is lost.
func TestServeCrashResumes(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url, _ := pythonRepo(t, srv, "slow", func(dir string) {
		p := filepath.Join(dir, "ferry.yaml")
		b, _ := os.ReadFile(p)
		// A test step that takes a while, so the kill lands inside it.
		b = bytes.Replace(b, []byte("command: [python3, -m, unittest, -v]"), []byte(`command: [python3, -c, "import time; time.sleep(4); print('slow test done')"]`), 1)
		os.WriteFile(p, b, 0o644)
	})
	cfg := writeServeConfig(t, fmt.Sprintf(`- {name: slow, url: %q, branch: main, interval: 1h}`, url))
	p := startServe(t, cfg)
	c := p.client(t)
	ctx := t.Context()
	// A source without a webhookSecret refuses webhooks: no URL for one.
	waitSaid(t, p, "(main), every 1h0m0s; ", time.Minute)
	if out := p.output.String(); !strings.Contains(out, "every 1h0m0s; no webhook (it takes one with a webhookSecret)\n") || strings.Contains(out, "/hooks/github/slow") {
		t.Errorf("ferry serve offers a webhook for a source without a secret:\n%s", out)
	}

	var before server.RunView
	deadline := time.Now().Add(120 * time.Second)
	for {
		run, err := c.Run(ctx, 1)
		if err == nil && len(run.Steps) > 3 && run.Steps[3].Status == "running" {
			before = run
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run 1 did not reach its test step (%+v, %v):\n%s", run, err, p.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	logsBefore, err := c.Logs(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.kill(t)

	p = startServe(t, cfg)
	c = p.client(t)
	var after server.RunView
	for deadline := time.Now().Add(120 * time.Second); ; {
		run, err := c.Run(ctx, 1)
		if err == nil && (run.Status == "succeeded" || run.Status == "failed") {
			after = run
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run 1 did not end after the restart (%+v, %v):\n%s", run, err, p.output)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.Status == "failed" && after.Reason == "" {
		t.Errorf("run 1 failed with no reason")
	}
	if after.Status == "succeeded" {
		waitGreeting(t, p, "hello from python", 60*time.Second)
	}
	// Steps done before the crash were not run again.
	for i := range 3 {
		if !after.Steps[i].Started.Equal(before.Steps[i].Started) {
			t.Errorf("step %s started again after the restart (%s, then %s)", after.Steps[i].Name, before.Steps[i].Started, after.Steps[i].Started)
		}
	}
	runs, err := c.Runs(ctx, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 1 {
		t.Errorf("%d runs after the restart, want the one", len(runs.Items))
	}
	rels, err := c.Releases(ctx, "slow", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rels.Items {
		if r.Commit == after.Commit {
			n++
		}
	}
	if want := map[string]int{"succeeded": 1, "failed": 0}[after.Status]; n != want {
		t.Errorf("%d releases for the commit, want %d (run %s)", n, want, after.Status)
	}
	// No log line written before the crash was lost.
	logsAfter, err := c.Logs(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(logsAfter) < len(logsBefore) {
		t.Fatalf("%d log lines after the restart, %d before", len(logsAfter), len(logsBefore))
	}
	for i, l := range logsBefore {
		if logsAfter[i].Seq != l.Seq || logsAfter[i].Text != l.Text {
			t.Errorf("log line %d changed: %+v, then %+v", i, l, logsAfter[i])
		}
	}
}

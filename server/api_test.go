package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/seal"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/watcher"
)

const (
	adminSecret    = "admin-secret-0123456789"
	viewerSecret   = "viewer-secret-0123456789"
	deployerSecret = "deployer-secret-0123456789"
)

// fixtureTokens are the API fixture's (and the dashboard fixture's) tokens.
var fixtureTokens = []Token{
	{Name: "root", Secret: adminSecret, Roles: []Role{RoleAdmin}},
	{Name: "vera", Secret: viewerSecret, Roles: []Role{RoleViewer}},
	{Name: "dan", Secret: deployerSecret, Roles: []Role{RoleDeployer}},
}

// apiFixture is the API over a real store and a real watcher.
type apiFixture struct {
	store store.Store
	url   string
	w     watcher.Watcher
	api   http.Handler
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := watcher.New(watcher.Config{Dir: filepath.Join(t.TempDir(), "mirrors"), State: st, OnEvent: func(store.SourceEvent) {}})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	box, err := seal.New(bytes.Repeat([]byte{42}, 32))
	if err != nil {
		t.Fatal(err)
	}
	// The test's repositories are made with t.TempDir, all in one folder.
	root, err := filepath.EvalSymlinks(filepath.Dir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewAPI(APIConfig{
		LocalRoots: []string{root},
		Store:      st,
		Tokens:     fixtureTokens,
		Sources:    &sourceManager{store: st, watcher: w, secrets: &secrets{box: box}},
		Environments: func(ctx context.Context, env string) (*environments.Status, error) {
			if env == "broken" {
				return nil, errors.New("target unreachable")
			}
			return &environments.Status{Environment: env, Release: "sha256:aaa", Functions: []environments.FunctionStatus{{Name: "hello", Image: "reg/hello@sha256:bbb", State: "running"}}}, nil
		},
		Poll: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &apiFixture{store: st, url: srv.URL, w: w, api: h}
}

func (f *apiFixture) client(t *testing.T, secret string) *Client {
	t.Helper()
	c, err := NewClient(f.url, secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gitRepo makes a repository with one commit on main.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"commit", "-q", "--allow-empty", "-m", "first"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

func wantStatus(t *testing.T, err error, code int) {
	t.Helper()
	var se *StatusError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("error %v, want status %d", err, code)
	}
}

func TestAPIAuthentication(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()

	for _, secret := range []string{"", "not-a-token-at-all-xx", adminSecret + "x"} {
		req, _ := http.NewRequest("GET", f.url+"/api/v1/sources", nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: %d, want 401 with WWW-Authenticate", secret, resp.StatusCode)
		}
	}
	// A viewer reads but may not add, remove or sync.
	viewer := f.client(t, viewerSecret)
	if _, err := viewer.Sources(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := viewer.AddSource(ctx, SourceRequest{Name: "demo", URL: gitRepo(t)})
	wantStatus(t, err, 403)
	if !strings.Contains(err.Error(), "lacks the admin role") {
		t.Errorf("403 says %q", err)
	}
	// Nothing was added by the refused call.
	if srcs, _ := f.client(t, adminSecret).Sources(ctx); len(srcs) != 0 {
		t.Errorf("a refused add left %d sources", len(srcs))
	}
}

func TestAPISources(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	admin, deployer := f.client(t, adminSecret), f.client(t, deployerSecret)
	repo := gitRepo(t)

	s, err := admin.AddSource(ctx, SourceRequest{Name: "demo", URL: repo, Interval: "1h", WebhookSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Branch != "main" || s.Interval != "1h0m0s" || !s.Webhook {
		t.Errorf("added %+v", s)
	}
	_, err = admin.AddSource(ctx, SourceRequest{Name: "demo", URL: repo})
	wantStatus(t, err, 409)
	_, err = admin.AddSource(ctx, SourceRequest{Name: "Bad_Name", URL: repo})
	wantStatus(t, err, 400)
	_, err = admin.AddSource(ctx, SourceRequest{Name: "nourl"})
	wantStatus(t, err, 400)

	// Sync fetches now: the status shows the branch's head.
	synced, err := deployer.SyncSource(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	head := strings.TrimSpace(gitOut(t, repo, "rev-parse", "HEAD"))
	if synced.LastCommit != head {
		t.Errorf("after sync the source is at %q, want %s", synced.LastCommit, head)
	}
	_, err = deployer.SyncSource(ctx, "nosuch")
	wantStatus(t, err, 404)

	// The list never carries secrets.
	req, _ := http.NewRequest("GET", f.url+"/api/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+viewerSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "s3cret") {
		t.Errorf("the source list shows the webhook secret: %s", body)
	}

	// A configured source cannot be removed through the API.
	src, _ := f.store.GetSource(ctx, "demo")
	src.Name, src.FromConfig = "fixed", true
	if err := f.store.PutSource(ctx, src); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, admin.RemoveSource(ctx, "fixed"), 409)

	if err := admin.RemoveSource(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, admin.RemoveSource(ctx, "demo"), 404)
	events, _ := f.store.ListEvents(ctx, "source/demo", store.Page{})
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Actor+" "+e.Action)
	}
	if strings.Join(actions, ",") != "root source.remove,dan source.sync,root source.add" {
		t.Errorf("audit of source/demo: %v", actions)
	}
}

func TestAPIRunsAndPaging(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	for i := range 7 {
		if _, _, err := f.store.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: fmt.Sprintf("c%02d", i), Status: store.StatusQueued, Created: time.Now()}, []string{"checkout", "build"}); err != nil {
			t.Fatal(err)
		}
	}
	c := f.client(t, viewerSecret)
	var seen []string
	var before int64
	for pages := 0; ; pages++ {
		p, err := c.Runs(ctx, "demo", 3, before)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Items {
			seen = append(seen, r.Commit)
		}
		if p.Next == 0 {
			break
		}
		before = p.Next
		if pages > 5 {
			t.Fatal("paging does not end")
		}
	}
	if strings.Join(seen, ",") != "c06,c05,c04,c03,c02,c01,c00" {
		t.Errorf("paged runs: %v", seen)
	}
	run, err := c.Run(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Steps) != 2 || run.Steps[0].Name != "checkout" {
		t.Errorf("run 1 steps: %+v", run.Steps)
	}
	_, err = c.Run(ctx, 999)
	wantStatus(t, err, 404)
	_, err = c.Runs(ctx, "", 100000, 0)
	wantStatus(t, err, 400)
}

func TestAPIFollowLogs(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	run, _, err := f.store.CreateRun(ctx, store.Run{Source: "demo", Branch: "main", Commit: "abc", Status: store.StatusRunning, Created: time.Now()}, []string{"build"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.store.AppendLog(ctx, run.ID, "build", "line 0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; i <= 20; i++ {
			f.store.AppendLog(ctx, run.ID, "build", fmt.Sprintf("line %d", i))
			time.Sleep(5 * time.Millisecond)
		}
		run.Status, run.Ended = store.StatusSucceeded, time.Now()
		f.store.UpdateRun(ctx, run)
	})
	var got []string
	end, err := f.client(t, viewerSecret).FollowLogs(ctx, run.ID, func(l LogLineView) { got = append(got, l.Text) })
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if end.Status != "succeeded" {
		t.Errorf("the stream ended with the run %s", end.Status)
	}
	if len(got) != 21 || got[0] != "line 0" || got[20] != "line 20" {
		t.Errorf("followed %d lines: %v", len(got), got)
	}
	for i, l := range got {
		if l != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d is %q: out of order or repeated", i, l)
		}
	}
}

func TestAPIEnvironments(t *testing.T) {
	f := newAPIFixture(t)
	ctx := context.Background()
	for _, name := range []string{"dev", "broken"} {
		if err := f.store.PutEnvironment(ctx, store.Environment{Name: name, Target: "embedded", Release: "sha256:aaa"}); err != nil {
			t.Fatal(err)
		}
	}
	envs, err := f.client(t, viewerSecret).Environments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]EnvironmentView{}
	for _, e := range envs {
		byName[e.Name] = e
	}
	if d := byName["dev"]; d.Release != "sha256:aaa" || len(d.Functions) != 1 || d.Functions[0].Image != "reg/hello@sha256:bbb" || d.Error != "" {
		t.Errorf("dev: %+v", d)
	}
	if b := byName["broken"]; b.Error != "target unreachable" {
		t.Errorf("broken: %+v", b)
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return string(out)
}

// TestReleaseID: an id is given with or without "sha256:", and a release
// reference (HOST/REPO@sha256:…) reaches the promoter whole, for it to
// admit by its repository.
func TestReleaseID(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for in, want := range map[string]string{
		"":                                    "",
		hex:                                   "sha256:" + hex,
		"sha256:" + hex:                       "sha256:" + hex,
		"reg.example:5000/team@sha256:" + hex: "reg.example:5000/team@sha256:" + hex,
	} {
		if got := releaseID(in); got != want {
			t.Errorf("releaseID(%q) = %q, want %q", in, got, want)
		}
	}
}

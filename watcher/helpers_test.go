package watcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
)

func TestMain(m *testing.M) {
	// The host's git configuration must not change what the tests see,
	// also in the git-upload-pack that go-git's file transport starts.
	os.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// gitEnv is the environment of the git commands the tests run: no host
// configuration, and fixed authors and dates so that commits are the same
// on every run.
var gitEnv = append(os.Environ(),
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_AUTHOR_NAME=Ferry Test", "GIT_AUTHOR_EMAIL=test@ferry.dev",
	"GIT_COMMITTER_NAME=Ferry Test", "GIT_COMMITTER_EMAIL=test@ferry.dev",
	"GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z",
	"LC_ALL=C",
)

// runGit runs git in dir and returns its output, trimmed.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitRepo is a repository as a user has it: a work tree that pushes to a
// bare repository, which ferry watches.
type gitRepo struct {
	t    testing.TB
	work string
	bare string
	n    int
}

// newGitRepo makes an empty bare repository at bare (created) and a work
// tree pushing to it.
func newGitRepo(t testing.TB, bare string) *gitRepo {
	t.Helper()
	runGit(t, "", "init", "-q", "--bare", "-b", "main", bare)
	work := filepath.Join(t.TempDir(), "work")
	runGit(t, "", "init", "-q", "-b", "main", work)
	runGit(t, work, "remote", "add", "origin", bare)
	return &gitRepo{t: t, work: work, bare: bare}
}

// write writes files (path → content) in the work tree; a content
// starting with "link:" makes a symlink to the rest, "exec:" an executable
// file.
func (r *gitRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		os.Remove(p)
		var err error
		switch {
		case strings.HasPrefix(content, "link:"):
			err = os.Symlink(strings.TrimPrefix(content, "link:"), p)
		case strings.HasPrefix(content, "exec:"):
			err = os.WriteFile(p, []byte(strings.TrimPrefix(content, "exec:")), 0o755)
		default:
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files, commits everything and returns the commit.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	r.n++
	if files == nil {
		files = map[string]string{"n.txt": fmt.Sprint(r.n)}
	}
	r.write(files)
	runGit(r.t, r.work, "add", "-A")
	runGit(r.t, r.work, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("commit %d", r.n))
	return runGit(r.t, r.work, "rev-parse", "HEAD")
}

// push pushes main to the bare repository.
func (r *gitRepo) push() {
	r.t.Helper()
	runGit(r.t, r.work, "push", "-q", "origin", "main")
}

// forcePush drops the last commit, commits something else and pushes it
// over the old head; it returns the new head.
func (r *gitRepo) forcePush() string {
	r.t.Helper()
	runGit(r.t, r.work, "reset", "-q", "--hard", "HEAD~1")
	head := r.commit(map[string]string{"forced.txt": fmt.Sprint(r.n)})
	runGit(r.t, r.work, "push", "-q", "--force", "origin", "main")
	return head
}

// memState is a StateStore in memory, as store.Sources behaves.
type memState struct {
	mu       sync.Mutex
	statuses map[string]store.SourceStatus
	events   []store.SourceEvent
	puts     int
	// failRecord, when set, fails RecordSourceEvent.
	failRecord error
	// failPut, when set, fails PutSourceStatus.
	failPut error
}

func newMemState() *memState {
	return &memState{statuses: map[string]store.SourceStatus{}}
}

func (m *memState) PutSourceStatus(ctx context.Context, st store.SourceStatus) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failPut != nil {
		return m.failPut
	}
	m.statuses[st.Source] = st
	m.puts++
	return nil
}

func (m *memState) GetSourceStatus(ctx context.Context, name string) (store.SourceStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.statuses[name]
	if !ok {
		return st, fmt.Errorf("status of %s: %w", name, store.ErrNotFound)
	}
	return st, nil
}

func (m *memState) RecordSourceEvent(ctx context.Context, ev store.SourceEvent) (store.SourceEvent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failRecord != nil {
		return ev, m.failRecord
	}
	ev.ID = int64(len(m.events) + 1)
	m.events = append(m.events, ev)
	st := m.statuses[ev.Source]
	st.Source = ev.Source
	st.LastCommit = ev.Commit
	m.statuses[ev.Source] = st
	return ev, nil
}

// sourceEvents returns the events recorded for source.
func (m *memState) sourceEvents(source string) []store.SourceEvent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []store.SourceEvent
	for _, ev := range m.events {
		if ev.Source == source {
			out = append(out, ev)
		}
	}
	return out
}

// testWatcher is a running watcher over a memState, with the events
// OnEvent heard.
type testWatcher struct {
	*watcher
	state *memState
	dir   string

	mu     sync.Mutex
	events []Event
}

// startWatcher starts a watcher; cfg's Dir and State default to a temp
// folder and a new memState. It stops when the test ends.
func startWatcher(t *testing.T, cfg Config) *testWatcher {
	t.Helper()
	tw := &testWatcher{}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.State == nil {
		tw.state = newMemState()
		cfg.State = tw.state
	} else if m, ok := cfg.State.(*memState); ok {
		tw.state = m
	}
	cfg.OnEvent = func(ev Event) {
		tw.mu.Lock()
		tw.events = append(tw.events, ev)
		tw.mu.Unlock()
	}
	if cfg.Log == nil {
		cfg.Log = t.Logf
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tw.watcher = w.(*watcher)
	tw.dir = cfg.Dir
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return tw
}

// heard returns the events OnEvent heard for source.
func (tw *testWatcher) heard(source string) []Event {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	var out []Event
	for _, ev := range tw.events {
		if ev.Source == source {
			out = append(out, ev)
		}
	}
	return out
}

// add adds src, failing the test on an error.
func (tw *testWatcher) add(t *testing.T, src store.Source) {
	t.Helper()
	if src.Branch == "" {
		src.Branch = "main"
	}
	if src.Interval == 0 {
		src.Interval = time.Hour
	}
	if err := tw.Add(context.Background(), src); err != nil {
		t.Fatal(err)
	}
}

// sync syncs the source, failing the test on an error.
func (tw *testWatcher) sync(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := tw.Sync(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// waitStatus waits until the source's status satisfies ok and returns it.
func (tw *testWatcher) waitStatus(t *testing.T, name string, what string, ok func(store.SourceStatus) bool) store.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := tw.Status(name)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("source %s: timed out waiting for %s; status %+v, error %v", name, what, st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gitServer is git's own smart-HTTP server (git http-backend) serving the
// bare repositories under root at /git/<name>.git, behind basic
// authentication when user is set.
type gitServer struct {
	*httptest.Server
	root     string
	requests atomic.Int64
}

func newGitServer(t testing.TB, user, password string) *gitServer {
	t.Helper()
	execPath := runGit(t, "", "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend is not installed: %v", err)
	}
	gs := &gitServer{root: t.TempDir()}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Root: "/git",
		Env: []string{
			"GIT_PROJECT_ROOT=" + gs.root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	gs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gs.requests.Add(1)
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		cgiHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(gs.Close)
	return gs
}

// repo makes a repository the server serves as name.
func (gs *gitServer) repo(t testing.TB, name string) (*gitRepo, string) {
	r := newGitRepo(t, filepath.Join(gs.root, name+".git"))
	return r, gs.URL + "/git/" + name + ".git"
}

// isNotFound reports whether err says a source is not watched.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

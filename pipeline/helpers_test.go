package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/build"
	"github.com/ferrycd/ferry/environments"
	"github.com/ferrycd/ferry/internal/sandbox"
	"github.com/ferrycd/ferry/pipeline"
	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/testbuild"
	"github.com/ferrycd/ferry/test/testenv"
)

// shared is the registry and builder every test pushes to: one build
// cache, so the example builds once for the whole package.
var shared struct {
	repo    string
	builder build.Builder
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	return testbuild.RunWithBuilder("ferry-pipeline-test-", func(_, repo string, b build.Builder) int {
		shared.repo, shared.builder = repo, b
		return m.Run()
	})
}

// fixture is one ferry: a store file, the dev environment behind its
// gateway, and Git repositories as sources.
type fixture struct {
	t       *testing.T
	dbPath  string
	st      *store.SQLite
	target  environments.Target
	gateway string // http://ADDR

	mu    sync.Mutex
	repos map[string]string // source name → repository folder
	// applyStarted, when set, makes dev a target whose Apply closes it and
	// then hangs until its context ends: a deployment ferry is stopped in.
	applyStarted chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{t: t, dbPath: filepath.Join(dir, "ferry.db"), repos: map[string]string{}}
	f.openStore()
	t.Cleanup(func() { f.st.Close() })

	host, err := testenv.StartEmbedded(filepath.Join(dir, "dev"), "dev")
	if err != nil {
		t.Fatal(err)
	}
	f.gateway = host.Gateway
	if f.target, err = host.Target("dev"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := host.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return f
}

func (f *fixture) openStore() {
	st, err := store.Open(context.Background(), f.dbPath)
	if err != nil {
		f.t.Fatal(err)
	}
	f.st = st
}

// restartStore closes the store and opens the same file again, as a
// restarted ferry would.
func (f *fixture) restartStore() {
	if err := f.st.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.openStore()
}

// config is the executor's wiring in tests.
func (f *fixture) config() pipeline.Config {
	return pipeline.Config{
		Store:     f.st,
		Tree:      f.tree,
		SourceURL: func(source string) string { return "https://git.example.com/" + source },
		Builder:   shared.builder,
		Repo:      shared.repo,
		Target:    f.targetFor,
		Jobs:      2,
		Log:       func(format string, args ...any) { f.t.Logf("ferry: "+format, args...) },
	}
}

// hostConfig is config for a test whose command talks to the test through
// files of the host, which the sandbox hides by design: it runs test
// commands unconfined. The sandbox itself is checked by
// TestTestCommandIsSandboxed here and by test/sandbox_test.go.
func (f *fixture) hostConfig() pipeline.Config {
	cfg := f.config()
	none, err := sandbox.Find(context.Background(), sandbox.ModeNone, "")
	if err != nil {
		f.t.Fatal(err)
	}
	cfg.Sandbox = none
	return cfg
}

func (f *fixture) targetFor(env string) (environments.Target, error) {
	if env != "dev" {
		return nil, fmt.Errorf("no environment %s in this test", env)
	}
	f.mu.Lock()
	block := f.applyStarted
	f.mu.Unlock()
	if block != nil {
		return blockingTarget{f.target, block}, nil
	}
	return f.target, nil
}

// blockingTarget's Apply waits until its channel closes or ctx ends.
type blockingTarget struct {
	environments.Target
	started chan struct{}
}

func (b blockingTarget) Apply(ctx context.Context, rel *build.Release) error {
	close(b.started)
	<-ctx.Done()
	return ctx.Err()
}

// start runs an executor of cfg until the test ends or stop is called.
func (f *fixture) start(cfg pipeline.Config) (ex pipeline.Executor, stop func()) {
	f.t.Helper()
	ex, err := pipeline.NewEmbedded(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Errorf("Run: %v", err)
			}
		})
	}
	f.t.Cleanup(stop)
	return ex, stop
}

// tree is Config.Tree for tests: `git archive` of the commit unpacked into
// a fresh folder, seen as a build would see it. In production the
// watcher's mirror gives it.
func (f *fixture) tree(ctx context.Context, source, commit string) (fs.FS, error) {
	f.mu.Lock()
	repo, ok := f.repos[source]
	f.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no source %s", source)
	}
	dir, err := os.MkdirTemp(f.t.TempDir(), "tree-")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "sh", repo, commit, dir)
	cmd.Env = gitEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git archive %s: %w: %s", commit, err, out)
	}
	return build.LocalSource(ctx, dir)
}

// ---- Git repositories ---------------------------------------------------------

func gitEnv() []string {
	return append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_AUTHOR_DATE=2024-05-01T12:00:00Z",
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_COMMITTER_DATE=2024-05-01T12:00:00Z")
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// exampleManifest is examples/python/ferry.yaml.
func exampleManifest(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../examples/python/ferry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// withTest returns the example's manifest with its test command replaced.
func withTest(t *testing.T, command string) string {
	t.Helper()
	m := exampleManifest(t)
	const old = "command: [python3, -m, unittest, -v]"
	if !strings.Contains(m, old) {
		t.Fatalf("examples/python/ferry.yaml has no %q to replace", old)
	}
	return strings.Replace(m, old, "command: "+command, 1)
}

// newSource makes a Git repository holding a copy of examples/python,
// with files changed as given, commits it on main, and registers it as
// source name. It returns the commit.
func (f *fixture) newSource(name string, files map[string]string) string {
	f.t.Helper()
	dir := filepath.Join(f.t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS("../examples/python")); err != nil {
		f.t.Fatal(err)
	}
	git(f.t, dir, "init", "-q", "-b", "main")
	f.mu.Lock()
	f.repos[name] = dir
	f.mu.Unlock()
	return f.commit(name, "first", files)
}

// commit writes files (path → content) into source's repository and
// commits everything, returning the commit.
func (f *fixture) commit(source, msg string, files map[string]string) string {
	f.t.Helper()
	f.mu.Lock()
	dir := f.repos[source]
	f.mu.Unlock()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	git(f.t, dir, "add", "-A")
	git(f.t, dir, "commit", "-q", "--allow-empty", "-m", msg)
	return git(f.t, dir, "rev-parse", "HEAD")
}

// unreadableOnce is f.tree, except that its first call fails as an
// unreadable mirror would: ferry's infrastructure, not the repository.
func (f *fixture) unreadableOnce() func(ctx context.Context, source, commit string) (fs.FS, error) {
	var mu sync.Mutex
	fails := 1
	return func(ctx context.Context, source, commit string) (fs.FS, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return nil, errors.New("the mirror is not readable")
		}
		return f.tree(ctx, source, commit)
	}
}

// ---- looking at the outcome -------------------------------------------------------

// wait waits for run id to be done.
func wait(t *testing.T, ex pipeline.Executor, id int64) store.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	run, err := ex.Wait(ctx, id)
	if err != nil {
		t.Fatalf("waiting for run %d: %v", id, err)
	}
	return run
}

// waitRanAgain waits for run id, failed by the infrastructure, to run
// again by itself and succeed, unmarked.
func (f *fixture) waitRanAgain(t *testing.T, id int64) {
	t.Helper()
	// The back-off is 5s; bounded only to catch a hang.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := f.st.GetRun(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == store.StatusSucceeded && !r.InfraFailed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not run again by itself: %s %q", r.Status, r.Reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stepStatus is the status of run id's step, as stored.
func (f *fixture) stepStatus(id int64, step string) store.RunStatus {
	run, err := f.st.GetRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, s := range run.Steps {
		if s.Name == step {
			return s.Status
		}
	}
	f.t.Fatalf("run %d has no step %s", id, step)
	return ""
}

// steps maps a run's steps by name.
func steps(run store.Run) map[string]store.Step {
	m := map[string]store.Step{}
	for _, s := range run.Steps {
		m[s.Name] = s
	}
	return m
}

// logs returns run id's log lines by step.
func (f *fixture) logs(id int64) map[string][]string {
	f.t.Helper()
	lines, err := f.st.Logs(context.Background(), id, 0, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range lines {
		m[l.Step] = append(m[l.Step], l.Text)
	}
	return m
}

func (f *fixture) releases(source string) []store.Release {
	f.t.Helper()
	rels, err := f.st.ListReleases(context.Background(), source, store.Page{})
	if err != nil {
		f.t.Fatal(err)
	}
	return rels
}

func (f *fixture) deployments() []store.Deployment {
	f.t.Helper()
	ds, err := f.st.ListDeployments(context.Background(), "dev", store.Page{})
	if err != nil {
		f.t.Fatal(err)
	}
	return ds
}

// get calls the dev gateway at path and returns the body; status other
// than 200 is an error.
func (f *fixture) get(path string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.gateway+path, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), errors.New(resp.Status + ": " + string(body))
	}
	return string(body), nil
}

// contains reports whether some line holds want.
func contains(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}

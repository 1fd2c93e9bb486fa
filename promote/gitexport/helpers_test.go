package gitexport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

func TestMain(m *testing.M) {
	// go-git runs git-upload-pack and git-receive-pack for local
	// repositories, inheriting this environment: keep the host's Git
	// settings out of the results, as the git CLI calls do.
	os.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Exit(m.Run())
}

// logBook collects an exporter's log lines.
type logBook struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBook) log(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// count is the number of lines that contain sub.
func (l *logBook) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, sub) {
			n++
		}
	}
	return n
}

func (l *logBook) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// retryLine is in the log line of every retry.
const retryLine = "refused because branch main moved"

// newExporter returns an exporter for cfg, with a folder of its own
// unless cfg names one, logging into the returned book.
func newExporter(t *testing.T, cfg Config) (*Exporter, *logBook) {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	book := &logBook{}
	cfg.Log = book.log
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exporter log:\n%s", book)
		}
	})
	return e, book
}

// release is a release of source demo with a rendered manifest of two
// YAML documents that differs with n.
func release(n int) store.Release {
	manifest := fmt.Sprintf(`apiVersion: ferry.dev/v1
kind: Function
metadata:
  name: hello
spec:
  image: registry.local/demo/hello@sha256:%064x
---
apiVersion: ferry.dev/v1
kind: Route
metadata:
  name: hello
spec:
  path: /hello
`, n)
	sum := sha256.Sum256([]byte(manifest))
	id := "sha256:" + hex.EncodeToString(sum[:])
	return store.Release{
		ID:       id,
		Source:   "demo",
		Commit:   fmt.Sprintf("%040x", 0xc0ffee+n),
		Ref:      "registry.local/releases/demo@" + id,
		Manifest: []byte(manifest),
	}
}

// deployment is deployment id of rel to env by actor, asked for by
// promotion id+100.
func deployment(env string, id int64, rel store.Release, actor string) store.Deployment {
	return store.Deployment{
		ID:          id,
		Environment: env,
		Release:     rel.ID,
		Actor:       actor,
		Promotion:   id + 100,
		Status:      "succeeded",
		At:          time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC),
	}
}

// gitCmd runs git in dir with the host's settings shut out and returns its
// output, failing the test on an error.
func gitCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return gitserver.Git(t, dir, args...)
}

// runGit is gitCmd for goroutines other than the test's: it returns the
// error instead of failing the test.
func runGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=other", "GIT_AUTHOR_EMAIL=other@example.com",
		"GIT_COMMITTER_NAME=other", "GIT_COMMITTER_EMAIL=other@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// otherWriter commits file with content on the branch main of the bare
// repository at bare, as another system would, from a clone of its own.
func otherWriter(bare, file, content string) error {
	dir, err := os.MkdirTemp("", "other-writer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := runGit("", "clone", "-q", bare, dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, file)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"add", file},
		{"commit", "-q", "-m", "other writer: " + file},
		{"push", "-q", "origin", "HEAD:main"},
	} {
		if _, err := runGit(dir, args...); err != nil {
			return err
		}
	}
	return nil
}

// bareRepo is where gitserver keeps the repository name.
func bareRepo(srv *gitserver.Server, name string) string {
	return filepath.Join(srv.Root, name+".git")
}

// show is file at the head of main in the bare repository.
func show(t *testing.T, bare, file string) string {
	t.Helper()
	return gitCmd(t, bare, "show", "main:"+file)
}

// commits is the number of commits on main in the bare repository.
func commits(t *testing.T, bare string) int {
	t.Helper()
	var n int
	fmt.Sscan(gitCmd(t, bare, "rev-list", "--count", "main"), &n)
	return n
}

// checkLinear fails the test when main in the bare repository has a merge
// or a broken object.
func checkLinear(t *testing.T, bare string) {
	t.Helper()
	if merges := strings.TrimSpace(gitCmd(t, bare, "rev-list", "--merges", "main")); merges != "" {
		t.Errorf("main has merges: %s", merges)
	}
	gitCmd(t, bare, "fsck", "--strict", "--no-dangling")
}

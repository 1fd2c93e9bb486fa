package gitexport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"go.yaml.in/yaml/v3"

	"github.com/ferrycd/ferry/store"
	"github.com/ferrycd/ferry/test/gitserver"
)

// The first export into an empty repository creates the branch and the
// file, with the release in a comment and the commit message; a second
// environment gets its own file; the same export again, even from a new
// clone, commits nothing; a new release replaces the file.
func TestExport(t *testing.T) {
	srv := gitserver.Start(t, "ferry", "s3cret")
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")
	dir := t.TempDir()
	e, book := newExporter(t, Config{URL: url, Username: "ferry", Password: "s3cret", Dir: dir})
	ctx := context.Background()

	rel1 := release(1)
	d1 := deployment("prod", 12, rel1, "alice")
	if err := e.Export(ctx, d1, rel1); err != nil {
		t.Fatal(err)
	}

	// What another user sees: a clone with the git CLI.
	clone := t.TempDir()
	gitCmd(t, "", "clone", "-q", srv.PushURL(url), clone)
	got, err := os.ReadFile(filepath.Join(clone, "environments/prod/ferry.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	header := fmt.Sprintf("# ferry release %s of demo@%s, deployed to prod by alice (promotion 112, deployment 12)\n", rel1.ID, rel1.Commit)
	if want := header + string(rel1.Manifest); string(got) != want {
		t.Fatalf("environments/prod/ferry.yaml =\n%s\nwant\n%s", got, want)
	}
	checkSameYAML(t, got, rel1.Manifest)
	msg := gitCmd(t, clone, "log", "-1", "--format=%B")
	for _, want := range []string{
		"deploy prod: release " + rel1.ID[:len("sha256:")+12] + " by alice\n\n",
		"Release: " + rel1.ID + "\n",
		"Source: demo\n",
		"Commit: " + rel1.Commit + "\n",
		"Promotion: 112\n",
		"Deployment: 12\n",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message\n%s\nlacks %q", msg, want)
		}
	}
	if !strings.HasPrefix(msg, "deploy prod: release "+rel1.ID[:19]+" by alice\n") {
		t.Errorf("commit subject: %q", strings.SplitN(msg, "\n", 2)[0])
	}
	if author := gitCmd(t, clone, "log", "-1", "--format=%an <%ae> %aI"); author != "ferry <ferry@localhost> 2026-05-04T12:00:00+00:00\n" {
		t.Errorf("author = %q, want ferry <ferry@localhost> at the deployment's time", author)
	}
	if b := strings.TrimSpace(gitCmd(t, clone, "rev-parse", "--abbrev-ref", "HEAD")); b != "main" {
		t.Errorf("the clone's branch is %s, want main", b)
	}

	// Another environment: its own file, the first one kept.
	rel2 := release(2)
	if err := e.Export(ctx, deployment("staging", 13, rel2, "bob"), rel2); err != nil {
		t.Fatal(err)
	}
	if files := gitCmd(t, bare, "ls-tree", "-r", "--name-only", "main"); files != "environments/prod/ferry.yaml\nenvironments/staging/ferry.yaml\n" {
		t.Errorf("files on main:\n%s", files)
	}
	if show(t, bare, "environments/prod/ferry.yaml") != string(got) {
		t.Error("exporting staging changed prod's file")
	}
	if n := commits(t, bare); n != 2 {
		t.Fatalf("%d commits after two exports, want 2", n)
	}

	// The same export again: by the same exporter, by one restarted on
	// the same folder, and by one that lost its clone.
	again := func(e *Exporter) {
		t.Helper()
		if err := e.Export(ctx, d1, rel1); err != nil {
			t.Fatal(err)
		}
		if n := commits(t, bare); n != 2 {
			t.Fatalf("%d commits after exporting the same deployment again, want 2", n)
		}
	}
	again(e)
	if book.count("nothing to commit") != 1 {
		t.Errorf("log does not say the repeated export changed nothing:\n%s", book)
	}
	restarted, _ := newExporter(t, Config{URL: url, Username: "ferry", Password: "s3cret", Dir: dir})
	again(restarted)
	fresh, _ := newExporter(t, Config{URL: url, Username: "ferry", Password: "s3cret"})
	again(fresh)

	// A new release to prod replaces its file.
	rel3 := release(3)
	if err := restarted.Export(ctx, deployment("prod", 14, rel3, "carol"), rel3); err != nil {
		t.Fatal(err)
	}
	if n := commits(t, bare); n != 3 {
		t.Fatalf("%d commits, want 3", n)
	}
	if f := show(t, bare, "environments/prod/ferry.yaml"); !strings.HasSuffix(f, string(rel3.Manifest)) || !strings.Contains(f, rel3.ID) {
		t.Errorf("prod's file after the third export:\n%s", f)
	}
	checkLinear(t, bare)
}

// checkSameYAML fails the test unless file parses as the same YAML
// documents as manifest.
func checkSameYAML(t *testing.T, file, manifest []byte) {
	t.Helper()
	docs := func(b []byte) []any {
		var out []any
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				return out
			}
			if err != nil {
				t.Fatalf("YAML does not parse: %v\n%s", err, b)
			}
			out = append(out, v)
		}
	}
	got, want := docs(file), docs(manifest)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 2 {
		t.Errorf("the file's YAML is %v, want the manifest's %v", got, want)
	}
}

// Another writer pushes between our fetch and our push: go-git sees the
// branch moved, the export fetches again, commits on the new head and
// lands; both commits are kept, in a line.
func TestOtherWriterBetweenFetchAndPush(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")
	if err := otherWriter(bare, "README.md", "# GitOps\n"); err != nil {
		t.Fatal(err)
	}
	e, book := newExporter(t, Config{URL: url})
	e.beforePush = func(attempt int) {
		if attempt == 1 {
			if err := otherWriter(bare, "apps/other.yaml", "kind: Other\n"); err != nil {
				t.Error(err)
			}
		}
	}
	rel := release(1)
	if err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel); err != nil {
		t.Fatal(err)
	}
	if n := book.count(retryLine); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, book)
	}
	if files := gitCmd(t, bare, "ls-tree", "-r", "--name-only", "main"); files != "README.md\napps/other.yaml\nenvironments/prod/ferry.yaml\n" {
		t.Errorf("files on main:\n%s", files)
	}
	if subjects := gitCmd(t, bare, "log", "--format=%s", "main"); !strings.HasPrefix(subjects, "deploy prod: ") || !strings.Contains(subjects, "other writer: apps/other.yaml") || commits(t, bare) != 3 {
		t.Errorf("history:\n%s", subjects)
	}
	checkLinear(t, bare)
}

// A branch that moves before every push: the export gives up after
// Attempts pushes, saying why, and leaves the other writer's commits.
func TestGivesUpWhenTheBranchKeepsMoving(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")
	e, book := newExporter(t, Config{URL: url, Attempts: 3})
	e.beforePush = func(attempt int) {
		if err := otherWriter(bare, fmt.Sprintf("apps/other-%d.yaml", attempt), "kind: Other\n"); err != nil {
			t.Error(err)
		}
	}
	rel := release(1)
	err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel)
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 pushes") || !strings.Contains(err.Error(), url) ||
		!strings.Contains(err.Error(), "give ferry a branch of its own") || !errors.Is(err, errRejected) {
		t.Fatalf("export against a branch that keeps moving: %v", err)
	}
	if n := book.count(retryLine); n != 2 {
		t.Errorf("%d retries logged, want 2:\n%s", n, book)
	}
	if n := commits(t, bare); n != 3 {
		t.Errorf("%d commits, want the other writer's 3", n)
	}
}

// Another writer pushes after go-git read the branch's head but before
// the server updates it: the server's compare-and-swap of the ref
// refuses our push, and the export tries again.
func TestOtherWriterRacesTheServer(t *testing.T) {
	root := t.TempDir()
	h, err := gitserver.Handler(root, "ferry", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			once.Do(func() {
				if err := otherWriter(filepath.Join(root, "gitops.git"), "apps/other.yaml", "kind: Other\n"); err != nil {
					t.Error(err)
				}
			})
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	srv := &gitserver.Server{Root: root, URL: hs.URL}
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")
	if err := otherWriter(bare, "README.md", "# GitOps\n"); err != nil {
		t.Fatal(err)
	}

	e, book := newExporter(t, Config{URL: url, Username: "ferry", Password: "s3cret"})
	rel := release(1)
	if err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel); err != nil {
		t.Fatal(err)
	}
	if n := book.count(retryLine); n != 1 {
		t.Errorf("%d retries logged, want 1:\n%s", n, book)
	}
	if files := gitCmd(t, bare, "ls-tree", "-r", "--name-only", "main"); files != "README.md\napps/other.yaml\nenvironments/prod/ferry.yaml\n" {
		t.Errorf("files on main:\n%s", files)
	}
	if n := commits(t, bare); n != 3 {
		t.Errorf("%d commits, want 3", n)
	}
	checkLinear(t, bare)
}

// Eight exports at once from two exporters with clones of their own, as
// two ferry servers would: all land, in a line, and every retry is
// logged.
func TestConcurrentExports(t *testing.T) {
	root := t.TempDir()
	h, err := gitserver.Handler(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	// Each attempt fetches once, and a fetch starts by reading the
	// refs: counting those counts attempts.
	var attempts atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Query().Get("service") == "git-upload-pack" {
			attempts.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	srv := &gitserver.Server{Root: root, URL: hs.URL}
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")

	// Enough attempts that losing every race is out of the question on a
	// loaded machine; the default is for production.
	a, bookA := newExporter(t, Config{URL: url, Attempts: 30})
	b, bookB := newExporter(t, Config{URL: url, Attempts: 30})
	var wg sync.WaitGroup
	rels := make([]store.Release, 8)
	for i := range rels {
		rels[i] = release(i)
		e := a
		if i%2 == 1 {
			e = b
		}
		wg.Go(func() {
			env := fmt.Sprintf("env-%d", i)
			if err := e.Export(context.Background(), deployment(env, int64(i+1), rels[i], "alice"), rels[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, rel := range rels {
		f := show(t, bare, fmt.Sprintf("environments/env-%d/ferry.yaml", i))
		if !strings.HasSuffix(f, string(rel.Manifest)) || !strings.Contains(f, rel.ID) {
			t.Errorf("env-%d's file:\n%s", i, f)
		}
	}
	if n := commits(t, bare); n != 8 {
		t.Errorf("%d commits, want 8", n)
	}
	checkLinear(t, bare)
	retries := bookA.count(retryLine) + bookB.count(retryLine)
	if want := int(attempts.Load()) - 8; retries != want {
		t.Errorf("%d retries logged, but %d attempts were made for 8 exports", retries, attempts.Load())
	}
	t.Logf("%d retries", retries)
}

// After an export that failed before its push landed, the next one
// builds on the remote branch as it is, not on the commit left in the
// clone; so it does after someone rewrote the branch.
func TestStartsFromTheRemoteBranch(t *testing.T) {
	srv := gitserver.Start(t, "", "")
	url := srv.Create(t, "gitops")
	bare := bareRepo(srv, "gitops")
	e, book := newExporter(t, Config{URL: url})
	ctx := context.Background()
	rel1 := release(1)
	if err := e.Export(ctx, deployment("prod", 1, rel1, "alice"), rel1); err != nil {
		t.Fatal(err)
	}

	// The push is cut off: the commit stays in the clone only.
	cctx, cancel := context.WithCancel(ctx)
	e.beforePush = func(int) { cancel() }
	rel2 := release(2)
	err := e.Export(cctx, deployment("staging", 2, rel2, "alice"), rel2)
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("export with its context cancelled before the push: %v", err)
	}
	e.beforePush = nil
	if n := commits(t, bare); n != 1 {
		t.Fatalf("%d commits after a cancelled push, want 1", n)
	}

	// Someone rewrites main: a new root commit with a file of its own.
	tmp := t.TempDir()
	gitCmd(t, "", "init", "-q", "-b", "main", tmp)
	os.WriteFile(filepath.Join(tmp, "README.md"), []byte("rewritten\n"), 0o644)
	gitCmd(t, tmp, "add", ".")
	gitCmd(t, tmp, "commit", "-q", "-m", "rewrite")
	gitCmd(t, tmp, "push", "-q", "--force", bare, "main")
	rewritten := strings.TrimSpace(gitCmd(t, bare, "rev-parse", "main"))

	rel3 := release(3)
	if err := e.Export(ctx, deployment("qa", 3, rel3, "alice"), rel3); err != nil {
		t.Fatal(err)
	}
	if parent := strings.TrimSpace(gitCmd(t, bare, "rev-parse", "main^")); parent != rewritten {
		t.Errorf("the export's parent is %s, want the rewritten head %s", parent, rewritten)
	}
	if files := gitCmd(t, bare, "ls-tree", "-r", "--name-only", "main"); files != "README.md\nenvironments/qa/ferry.yaml\n" {
		t.Errorf("files on main:\n%s", files)
	}

	// The clone breaks (a crash, a disk full): it is made again.
	if err := os.WriteFile(filepath.Join(e.repoDir, "HEAD"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.repoDir, "config"), []byte("[[[ not a config"), 0o644)
	e.repo = nil // as after a restart
	if err := e.Export(ctx, deployment("staging", 4, rel2, "alice"), rel2); err != nil {
		t.Fatal(err)
	}
	if n := commits(t, bare); n != 3 {
		t.Errorf("%d commits, want 3", n)
	}
	if book.count("does not open") != 1 {
		t.Errorf("log does not say the clone was made again:\n%s", book)
	}

	// Fetches split the clone into many packs (these are bogus, so go-git
	// would fail on them): it is made again, as one.
	for i := range maxPacks + 1 {
		os.WriteFile(filepath.Join(e.repoDir, "objects", "pack", fmt.Sprintf("pack-%040x.pack", i)), nil, 0o644)
	}
	rel4 := release(4)
	if err := e.Export(ctx, deployment("staging", 5, rel4, "alice"), rel4); err != nil {
		t.Fatal(err)
	}
	if n := countPacks(e.repoDir); n != 1 {
		t.Errorf("%d packs in the clone made again, want 1", n)
	}
	if n := commits(t, bare); n != 4 {
		t.Errorf("%d commits, want 4", n)
	}
	checkLinear(t, bare)
}

// Wrong credentials, none, a missing repository and a server that is not
// there: one clear error each, naming the repository and saying what to
// do, at once and without retries.
func TestRemoteErrors(t *testing.T) {
	root := t.TempDir()
	h, err := gitserver.Handler(root, "ferry", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	var requests atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	srv := &gitserver.Server{Root: root, URL: hs.URL}
	url := srv.Create(t, "gitops")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/gitops.git"
	ln.Close()

	for _, tc := range []struct {
		name   string
		cfg    Config
		want   []string
		target error
	}{
		{"wrong password", Config{URL: url, Username: "ferry", Password: "wrong"},
			[]string{url, "prod", "the username and password (or token) were refused", "check them"}, transport.ErrAuthenticationRequired},
		{"no credentials", Config{URL: url},
			[]string{url, "authentication required", "give the exporter a username and a token"}, transport.ErrAuthenticationRequired},
		{"no repository", Config{URL: hs.URL + "/missing.git", Username: "ferry", Password: "s3cret"},
			[]string{hs.URL + "/missing.git", "repository not found", "check the URL"}, transport.ErrRepositoryNotFound},
		{"unreachable", Config{URL: closed},
			[]string{closed, "connection refused", "the server cannot be reached"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, book := newExporter(t, tc.cfg)
			before := requests.Load()
			rel := release(1)
			err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel)
			if err == nil {
				t.Fatal("export succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") && tc.name == "wrong password" {
				t.Errorf("error %q shows the password", err)
			}
			if tc.target != nil && !errors.Is(err, tc.target) {
				t.Errorf("error %q does not wrap %v", err, tc.target)
			}
			if n := book.count(retryLine); n != 0 {
				t.Errorf("%d retries logged for an error that is not a race:\n%s", n, book)
			}
			// One request to read the refs; a client that retried
			// would make more.
			if n := requests.Load() - before; n > 2 {
				t.Errorf("%d requests for one failed export", n)
			}
		})
	}
	if files, _ := os.ReadDir(filepath.Join(root, "gitops.git", "refs", "heads")); len(files) != 0 {
		t.Errorf("a failed export created branches: %v", files)
	}
}

// A local path works as the URL, pushing through git-receive-pack.
func TestLocalRepository(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "gitops.git")
	gitCmd(t, "", "init", "-q", "--bare", "-b", "main", bare)
	for _, url := range []string{bare, "file://" + bare} {
		e, _ := newExporter(t, Config{URL: url, Branch: "deploy", Path: "clusters/{env}.yaml"})
		rel := release(len(url))
		if err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel); err != nil {
			t.Fatal(err)
		}
		if f := gitCmd(t, bare, "show", "deploy:clusters/prod.yaml"); !strings.Contains(f, rel.ID) {
			t.Errorf("clusters/prod.yaml:\n%s", f)
		}
	}
	if n := gitCmd(t, bare, "rev-list", "--count", "deploy"); n != "2\n" {
		t.Errorf("%s commits, want 2", n)
	}
}

// A deployment that did not succeed leaves the repository as it is.
func TestSkipsFailedDeployments(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "gitops.git")
	gitCmd(t, "", "init", "-q", "--bare", "-b", "main", bare)
	e, book := newExporter(t, Config{URL: bare})
	rel := release(1)
	for _, status := range []string{"failed", "rolled-back"} {
		d := deployment("prod", 1, rel, "alice")
		d.Status = status
		if err := e.Export(context.Background(), d, rel); err != nil {
			t.Fatal(err)
		}
	}
	if refs := gitCmd(t, bare, "for-each-ref"); refs != "" {
		t.Errorf("refs after failed deployments: %s", refs)
	}
	if book.count("not exporting") != 2 {
		t.Errorf("log:\n%s", book)
	}
}

// The path in the repository is taken by a file where a folder should be,
// or the other way round: a clear error, the branch unchanged.
func TestPathTaken(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "gitops.git")
	gitCmd(t, "", "init", "-q", "--bare", "-b", "main", bare)
	if err := otherWriter(bare, "environments", "a file\n"); err != nil {
		t.Fatal(err)
	}
	if err := otherWriter(bare, "clusters/prod/ferry.yaml/x", "a folder\n"); err != nil {
		t.Fatal(err)
	}
	rel := release(1)
	for path, want := range map[string]string{
		"":                          "environments is not a folder in the repository",
		"clusters/{env}/ferry.yaml": "clusters/prod/ferry.yaml is a folder in the repository",
	} {
		e, _ := newExporter(t, Config{URL: bare, Path: path})
		err := e.Export(context.Background(), deployment("prod", 1, rel, "alice"), rel)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "change the exporter's path") {
			t.Errorf("path %q: %v, want an error saying %q", path, err, want)
		}
	}
	if n := commits(t, bare); n != 2 {
		t.Errorf("%d commits, want 2", n)
	}
}

// New refuses configurations that cannot work, saying what to change.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "https://git.example.com/gitops.git"}, "give the exporter a folder"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Path: "ferry.yaml"}, "every environment would write the same file"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Path: "{env}/{name}.yaml"}, "the only placeholder"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Path: "../{env}.yaml"}, `no ".." part`},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Path: "/{env}.yaml"}, "relative to the repository's root"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Path: ".git/{env}"}, "may not go into .git"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Branch: "refs/heads/main"}, "without refs/heads/"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Branch: "a..b"}, "not a valid Git branch name"},
		{Config{URL: "https://git.example.com/gitops.git", Dir: dir, Attempts: -1}, "attempts must be positive"},
		// The URL and credentials are gitauth's to check (its tests
		// have every case); New says the error is the exporter's.
		{Config{URL: "https://user:pw@git.example.com/gitops.git", Dir: dir}, "gitexport: url"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error saying %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), ":pw@") {
			t.Errorf("error %q shows the password", err)
		}
	}
}

// Export refuses what it cannot write, before reaching the repository.
func TestExportRefuses(t *testing.T) {
	e, _ := newExporter(t, Config{URL: "http://127.0.0.1:1/none.git"})
	rel := release(1)
	for _, tc := range []struct {
		d    store.Deployment
		rel  store.Release
		want string
	}{
		{deployment("prod", 1, release(2), "alice"), rel, "pass the deployment's release"},
		{deployment("prod", 1, rel, "alice"), store.Release{ID: rel.ID}, "no rendered manifest"},
		{deployment("a/b", 1, rel, "alice"), rel, "cannot be part of a file's path"},
		{deployment("..", 1, rel, "alice"), rel, `no ".." part`},
		{deployment("", 1, rel, "alice"), rel, "cannot be part of a file's path"},
	} {
		err := e.Export(context.Background(), tc.d, tc.rel)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Export(%s) = %v, want an error saying %q", tc.d.Environment, err, tc.want)
		}
	}
}

// Values that hold line breaks cannot escape the header's comment or the
// commit's subject.
func TestHeaderIsOneComment(t *testing.T) {
	rel := release(1)
	d := deployment("prod", 7, rel, "mallory\nkind: Secret\u2028x\r\n")
	d.Promotion = 0
	d.RunID = 9
	f := fileContent(d, rel)
	head, rest, _ := bytes.Cut(f, []byte("\n"))
	if string(head) != "# ferry release "+rel.ID+" of demo@"+rel.Commit+", deployed to prod by mallory kind: Secret x (run 9, deployment 7)" {
		t.Errorf("header %q", head)
	}
	if !bytes.Equal(rest, rel.Manifest) {
		t.Error("the manifest changed")
	}
	checkSameYAML(t, f, rel.Manifest)
	d.ID, d.RunID = 0, 0
	if head, _, _ := bytes.Cut(fileContent(d, rel), []byte("\n")); !bytes.HasSuffix(head, []byte("by mallory kind: Secret x")) {
		t.Errorf("header without ids %q", head)
	}
	d.ID, d.RunID = 7, 9
	msg := commitMessage(d, rel)
	if subject, _, _ := strings.Cut(msg, "\n"); subject != "deploy prod: release "+rel.ID[:19]+" by mallory kind: Secret x" {
		t.Errorf("subject %q", subject)
	}
	if strings.Contains(msg, "Promotion:") || !strings.Contains(msg, "Run: 9\n") {
		t.Errorf("message:\n%s", msg)
	}
}

func FuzzHeader(f *testing.F) {
	f.Add("alice", "demo", "prod")
	f.Add("a\nb", "x\r\ny", "p\u2028q")
	f.Add("\u0085", "#", "---")
	f.Fuzz(func(t *testing.T, actor, source, env string) {
		rel := release(1)
		rel.Source = source
		d := deployment(env, 1, rel, actor)
		f := fileContent(d, rel)
		head, rest, ok := bytes.Cut(f, []byte("\n"))
		if !ok || !bytes.HasPrefix(head, []byte("# ferry release ")) || !bytes.Equal(rest, rel.Manifest) {
			t.Fatalf("content:\n%q", f)
		}
		// No character that YAML or an editor reads as a line break.
		if bytes.ContainsAny(head, "\r\u0085\u2028\u2029") {
			t.Fatalf("header %q holds a line break", head)
		}
		if subject, _, _ := strings.Cut(commitMessage(d, rel), "\n"); strings.ContainsAny(subject, "\r\u0085\u2028\u2029") {
			t.Fatalf("subject %q holds a line break", subject)
		}
	})
}

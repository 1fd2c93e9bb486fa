package watcher

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// The ferry.yaml of examples/python, trimmed.
const treeManifest = `apiVersion: ferry.dev/v1alpha1
kind: Function
metadata:
  name: hello
spec:
  runtime: python
  handler: main.handle
  source: hello
---
apiVersion: ferry.dev/v1alpha1
kind: HTTPTrigger
metadata:
  name: hello
spec:
  function: hello
  path: /hello
  methods: [GET, POST]
`

// treeFiles is the first commit of the tree tests: files, an executable,
// symlinks to a file and a folder inside the tree.
var treeFiles = map[string]string{
	"ferry.yaml":      treeManifest,
	"hello/main.py":   "from util import greet\n\ndef handle(event, context):\n    return greet()\n",
	"hello/util.py":   "link:../lib/util.py",
	"lib/util.py":     "def greet():\n    return 'hi'\n",
	"lib/deep/x.txt":  "x\n",
	"run.sh":          "exec:#!/bin/sh\necho hi\n",
	"libdir":          "link:lib",
	"hello/lib":       "link:../lib/deep",
	"docs/README.md":  "# docs\n",
	"docs/readme.txt": "link:README.md",
}

// watchedTree pushes commits to a repository, lets a watcher fetch them
// and returns the watcher and the commits.
func watchedTree(t *testing.T, commits ...map[string]string) (*testWatcher, []string) {
	t.Helper()
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	var heads []string
	for _, files := range commits {
		heads = append(heads, repo.commit(files))
	}
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	tw.sync(t, "app")
	return tw, heads
}

func TestTreeReadsFilesAndModes(t *testing.T) {
	tw, heads := watchedTree(t, treeFiles)
	ctx := context.Background()
	tree, err := tw.Tree(ctx, "app", heads[0])
	if err != nil {
		t.Fatal(err)
	}

	// The standard library's own checks, symlinks' Lstat included.
	if err := fstest.TestFS(tree, "ferry.yaml", "hello/main.py", "hello/util.py", "lib/util.py", "lib/deep/x.txt", "run.sh", "libdir", "docs/readme.txt"); err != nil {
		t.Fatal(err)
	}

	b, err := fs.ReadFile(tree, "ferry.yaml")
	if err != nil || string(b) != treeManifest {
		t.Errorf("ReadFile(ferry.yaml) = %q, %v", b, err)
	}
	commitTime, err := tw.CommitTime(ctx, "app", heads[0])
	if err != nil || !commitTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("CommitTime = %v, %v; want the fixed commit date", commitTime, err)
	}
	if name, email, err := tw.CommitAuthor(ctx, "app", heads[0]); err != nil || name != "Ferry Test" || email != "test@ferry.dev" {
		t.Errorf("CommitAuthor = %q %q, %v; want the test identity", name, email, err)
	}
	for _, c := range []struct {
		name  string
		lstat bool
		mode  fs.FileMode
		size  int64
	}{
		{".", false, fs.ModeDir | 0o755, 0},
		{"ferry.yaml", false, 0o644, int64(len(treeManifest))},
		{"run.sh", false, 0o755, int64(len("#!/bin/sh\necho hi\n"))},
		{"hello", false, fs.ModeDir | 0o755, 0},
		{"hello/util.py", true, fs.ModeSymlink | 0o777, int64(len("../lib/util.py"))},
		{"hello/util.py", false, 0o644, int64(len("def greet():\n    return 'hi'\n"))},
		{"libdir", true, fs.ModeSymlink | 0o777, 3},
		{"libdir", false, fs.ModeDir | 0o755, 0},
		{"libdir/deep/x.txt", false, 0o644, 2},
		{"hello/lib/x.txt", false, 0o644, 2},
	} {
		stat := fs.Stat
		if c.lstat {
			stat = fs.Lstat
		}
		info, err := stat(tree, c.name)
		if err != nil {
			t.Errorf("stat %s: %v", c.name, err)
			continue
		}
		if info.Mode() != c.mode || (!info.IsDir() && info.Size() != c.size) || !info.ModTime().Equal(commitTime) {
			t.Errorf("stat %s (lstat %v): mode %v size %d time %v, want %v %d %v", c.name, c.lstat, info.Mode(), info.Size(), info.ModTime(), c.mode, c.size, commitTime)
		}
		if want := filepath.Base(c.name); info.Name() != want {
			t.Errorf("stat %s: name %q, want %q", c.name, info.Name(), want)
		}
	}
	if target, err := fs.ReadLink(tree, "hello/util.py"); err != nil || target != "../lib/util.py" {
		t.Errorf("ReadLink = %q, %v", target, err)
	}
	if b, err := fs.ReadFile(tree, "hello/util.py"); err != nil || !strings.Contains(string(b), "def greet") {
		t.Errorf("ReadFile through a link = %q, %v", b, err)
	}
	if _, err := fs.ReadLink(tree, "ferry.yaml"); err == nil {
		t.Error("ReadLink of a file succeeded")
	}
	entries, err := fs.ReadDir(tree, "libdir")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"deep", "util.py"}) {
		t.Errorf("ReadDir(libdir) = %v", names)
	}

	// Bad names are invalid, missing ones do not exist, and both are
	// *fs.PathError.
	for name, want := range map[string]error{
		"/ferry.yaml":    fs.ErrInvalid,
		"hello/../x":     fs.ErrInvalid,
		"hello/":         fs.ErrInvalid,
		"nothing":        fs.ErrNotExist,
		"ferry.yaml/x":   fs.ErrNotExist,
		"libdir/nothing": fs.ErrNotExist,
	} {
		_, err := tree.Open(name)
		var pe *fs.PathError
		if !errors.Is(err, want) || !errors.As(err, &pe) || pe.Path != name {
			t.Errorf("Open(%q): %v, want a *fs.PathError for it satisfying %v", name, err, want)
		}
	}

	// A closed file reads no more.
	f, err := tree.Open("ferry.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close: %v", err)
	}
	// A folder is not read as a file.
	if _, err := fs.ReadFile(tree, "hello"); err == nil {
		t.Error("ReadFile of a folder succeeded")
	}
}

// The manifests load from the tree, and a build's walk of a function's
// folder follows its links inside the tree.
func TestTreeLoadsManifests(t *testing.T) {
	tw, heads := watchedTree(t, treeFiles)
	ctx := context.Background()
	tree, err := tw.Tree(ctx, "app", heads[0])
	if err != nil {
		t.Fatal(err)
	}
	set, err := manifests.Load(ctx, tree)
	if err != nil {
		t.Fatalf("manifests.Load: %v", err)
	}
	if len(set.Functions) != 1 || set.Functions[0].Name != "hello" || set.Functions[0].Spec.Runtime != "python" {
		t.Errorf("loaded functions %+v", set.Functions)
	}
	var walked []string
	err = manifests.WalkSource(ctx, tree, "hello", func(e manifests.SourceEntry) error {
		walked = append(walked, e.Path+"="+e.Real)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".=hello", "lib=lib/deep", "lib/x.txt=lib/deep/x.txt", "main.py=hello/main.py", "util.py=lib/util.py"}
	if !slices.Equal(walked, want) {
		t.Errorf("WalkSource(hello) = %v, want %v", walked, want)
	}
}

// Links that leave the tree are refused, naming the link; the link itself
// still shows through Lstat and ReadLink. A dangling link does not exist.
func TestTreeRefusesEscapingLinks(t *testing.T) {
	files := map[string]string{
		"ferry.yaml":    treeManifest,
		"hello/main.py": "def handle(event, context):\n    return 1\n",
		"up":            "link:../outside",
		"abs":           "link:/etc/passwd",
		"other/deep":    "link:../../../etc",
		"dangling":      "link:nothing",
		"loop":          "link:loop",
	}
	tw, heads := watchedTree(t, files)
	tree, err := tw.Tree(context.Background(), "app", heads[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"up", "abs", "other/deep", "other/deep/passwd"} {
		_, err := tree.Open(name)
		var pe *fs.PathError
		if err == nil || !errors.As(err, &pe) || !strings.Contains(err.Error(), "outside the repository") {
			t.Errorf("Open(%s): %v, want a *fs.PathError saying the link leads outside", name, err)
		}
		if _, err := fs.ReadFile(tree, name); err == nil {
			t.Errorf("ReadFile(%s) succeeded", name)
		}
		if _, err := fs.Stat(tree, name); err == nil {
			t.Errorf("Stat(%s) succeeded", name)
		}
	}
	if info, err := fs.Lstat(tree, "up"); err != nil || info.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(up) = %v, %v; want the link", info, err)
	}
	if target, err := fs.ReadLink(tree, "abs"); err != nil || target != "/etc/passwd" {
		t.Errorf("ReadLink(abs) = %q, %v", target, err)
	}
	if _, err := tree.Open("dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(dangling): %v, want not exist", err)
	}
	if _, err := tree.Open("loop"); err == nil || !strings.Contains(err.Error(), "symlinks in a chain") {
		t.Errorf("Open(loop): %v, want a loop error", err)
	}
	// The manifests still load: nothing they use leads out.
	if _, err := manifests.Load(context.Background(), tree); err != nil {
		t.Errorf("manifests.Load: %v", err)
	}
	// A build's walk of the folder with the escaping link fails naming it.
	err = manifests.WalkSource(context.Background(), tree, "other", func(manifests.SourceEntry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "other/deep") {
		t.Errorf("WalkSource(other): %v, want an error naming other/deep", err)
	}
}

// A submodule is an empty folder.
func TestTreeSubmodule(t *testing.T) {
	tw := startWatcher(t, Config{})
	repo := newGitRepo(t, filepath.Join(t.TempDir(), "origin.git"))
	first := repo.commit(map[string]string{"a.txt": "a"})
	runGit(t, repo.work, "update-index", "--add", "--cacheinfo", "160000,"+first+",vendor/sub")
	runGit(t, repo.work, "commit", "-q", "-m", "submodule")
	head := runGit(t, repo.work, "rev-parse", "HEAD")
	repo.push()
	tw.add(t, store.Source{Name: "app", URL: repo.bare})
	tw.sync(t, "app")
	tree, err := tw.Tree(context.Background(), "app", head)
	if err != nil {
		t.Fatal(err)
	}
	info, err := fs.Stat(tree, "vendor/sub")
	if err != nil || !info.IsDir() || info.Mode() != fs.ModeDir|0o755 {
		t.Fatalf("Stat(vendor/sub) = %v, %v; want a folder", info, err)
	}
	entries, err := fs.ReadDir(tree, "vendor/sub")
	if err != nil || len(entries) != 0 {
		t.Errorf("ReadDir(vendor/sub) = %v, %v; want it empty", entries, err)
	}
	if err := fstest.TestFS(tree, "a.txt", "vendor/sub"); err != nil {
		t.Error(err)
	}
}

// Tree refuses what it cannot read, clearly; an old commit stays readable
// after a force-push replaced it.
func TestTreeErrors(t *testing.T) {
	tw, heads := watchedTree(t, map[string]string{"a.txt": "1"}, map[string]string{"a.txt": "2"})
	ctx := context.Background()
	for _, c := range []struct{ source, commit, want string }{
		{"app", "abc", "full 40-character"},
		{"app", strings.Repeat("z", 40), "full 40-character"},
		{"app", strings.Repeat("0", 40), "is not in its mirror"},
		{"other", heads[0], "has no mirror"},
		{"../app", heads[0], "not valid"},
	} {
		if _, err := tw.Tree(ctx, c.source, c.commit); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Tree(%s, %s): %v, want %q", c.source, c.commit, err, c.want)
		}
	}
	old, err := tw.Tree(ctx, "app", heads[0])
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(old, "a.txt"); err != nil || string(b) != "1" {
		t.Errorf("the first commit's a.txt = %q, %v", b, err)
	}
}

// A tree is safe for concurrent use, also while its source fetches.
func TestTreeConcurrent(t *testing.T) {
	tw, heads := watchedTree(t, treeFiles)
	tree, err := tw.Tree(context.Background(), "app", heads[0])
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				err := fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
						return err
					}
					f, err := tree.Open(p)
					if err != nil {
						return err
					}
					defer f.Close()
					_, err = io.Copy(io.Discard, f)
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := tw.Sync(context.Background(), "app"); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}

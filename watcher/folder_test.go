package watcher

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// writeFile writes content to dir/rel, making its folders.
func writeFile(t *testing.T, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// nextChange waits for the folder's next change; a hang fails the test.
func nextChange(t *testing.T, w *Folder) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	files, err := w.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestFolderSkipsWhatFerryAndEditorsWrite, outside a Git repository: the
// data folder (inside the folder, given by a relative path), editors'
// temporary files and what the top-level .gitignore lists are never
// reported, so the first change reported is the one real edit, alone.
func TestFolderSkipsWhatFerryAndEditorsWrite(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "hello/main.py", "print(1)\n")
	writeFile(t, dir, ".gitignore", "# build output\n/out/\n*.pyc\n__pycache__/\n!keep.pyc\n")
	t.Chdir(dir)
	w, err := NewFolder(context.Background(), FolderConfig{Dir: ".", Skip: []string{".ferry-data"}, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{
		".ferry-data/registry/blob", ".ferry-data/logs/hello.log",
		"hello/.main.py.swp", "hello/main.py~", "hello/.#main.py", "hello/4913",
		"out/app", "hello/main.pyc", "hello/__pycache__/main.cpython-312.pyc",
	} {
		writeFile(t, dir, rel, "noise")
	}
	// Several looks pass over the noise before the edit.
	time.Sleep(100 * time.Millisecond)
	writeFile(t, dir, "hello/main.py", "print(2)\n")
	if got := nextChange(t, w); !slices.Equal(got, []string{"hello/main.py"}) {
		t.Fatalf("changed: %v, want [hello/main.py]", got)
	}

	// A file made and one removed are reported (together, unless a look
	// falls between them); a negated pattern brings a file back.
	writeFile(t, dir, "hello/keep.pyc", "x")
	if err := os.Remove(filepath.Join(dir, "hello", "main.py")); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		got = append(got, nextChange(t, w)...)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"hello/keep.pyc", "hello/main.py"}) {
		t.Fatalf("changed: %v, want [hello/keep.pyc hello/main.py]", got)
	}
}

// TestFolderInGitRepository: in a work tree git decides (check-ignore,
// with .gitignore files below the top and .git/info/exclude), and .git
// itself is never reported.
func TestFolderInGitRepository(t *testing.T) {
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", "main")
	writeFile(t, dir, "fn/main.go", "package main\n")
	writeFile(t, dir, "fn/.gitignore", "tmp/\n")
	writeFile(t, dir, ".git/info/exclude", "*.log\n")
	data := t.TempDir() // a data folder outside is no trouble either
	w, err := NewFolder(context.Background(), FolderConfig{Dir: dir, Skip: []string{data}, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-qm", "first")
	writeFile(t, dir, "fn/tmp/x", "noise")
	writeFile(t, dir, "debug.log", "noise")
	writeFile(t, data, "registry/blob", "noise")
	time.Sleep(100 * time.Millisecond)
	writeFile(t, dir, "fn/main.go", "package main\n\nfunc main() {}\n")
	if got := nextChange(t, w); !slices.Equal(got, []string{"fn/main.go"}) {
		t.Fatalf("changed: %v, want [fn/main.go]", got)
	}
}

// TestFolderSettles: writes that land between two looks, as an editor's
// save does, are one change.
func TestFolderSettles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.py", "1")
	w, err := NewFolder(context.Background(), FolderConfig{Dir: dir, Poll: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a.py", "22")
	writeFile(t, dir, "b.py", "1")
	writeFile(t, dir, "a.py", "333")
	if got := nextChange(t, w); !slices.Equal(got, []string{"a.py", "b.py"}) {
		t.Fatalf("changed: %v, want [a.py b.py] at once", got)
	}
}

// TestGitignoreRules: the top-level .gitignore, as read outside a Git
// repository.
func TestGitignoreRules(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, ".gitignore", ".ferry-data/\n/dist\n**/cache/\nnode_modules\n*.tmp\n!important.tmp\ndocs/*.html\n")
	rules, err := readGitignore(filepath.Join(dir, ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		".ferry-data/registry/x": true,
		"sub/.ferry-data/x":      true,
		"dist":                   true,
		"dist/app.js":            true,
		"src/dist/app.js":        false,
		"a/b/cache/x":            true,
		"a/cache":                false, // a file named cache, not the folder
		"node_modules/x/y.js":    true,
		"web/node_modules/z.js":  true,
		"notes.tmp":              true,
		"important.tmp":          false,
		"docs/index.html":        true,
		"docs/api/index.html":    false,
		"hello/main.py":          false,
	} {
		if got := rules.ignored(rel, false); got != want {
			t.Errorf("%s: ignored %v, want %v", rel, got, want)
		}
	}
}

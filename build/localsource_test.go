package build

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferrycd/ferry/manifests"
)

// localGitEnv gives git, the tests' and LocalSource's, an environment of
// its own: no system or user configuration, no default excludes file
// (git reads $XDG_CONFIG_HOME/git/ignore without being told), and no
// variable that points it at another repository, as a hook would.
func localGitEnv(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// localGit runs git in dir with the tests' own settings.
func localGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=ferry", "-c", "user.email=ferry@example.com", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// localWrite writes files (slash-separated paths) under dir.
func localWrite(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		target := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func localSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skipf("cannot make symlinks here: %v", err)
	}
}

// localWalk lists every path in fsys, as fs.WalkDir sees it.
func localWalk(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var got []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			p += "/"
		}
		got = append(got, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func localSameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// localNotExist checks that every way of reaching name says it does not
// exist.
func localNotExist(t *testing.T, fsys fs.FS, name string) {
	t.Helper()
	localUnreachable(t, fsys, name, true)
}

// localUnreachable checks that name cannot be opened, read or listed, and,
// when lstat is set, that it cannot be described or read as a link either
// (a symlink to a hidden file is itself there).
func localUnreachable(t *testing.T, fsys fs.FS, name string, lstat bool) {
	t.Helper()
	check := func(op string, err error) {
		t.Helper()
		var pe *fs.PathError
		if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) {
			t.Errorf("%s(%q) = %v, want a *fs.PathError for fs.ErrNotExist", op, name, err)
		}
	}
	f, err := fsys.Open(name)
	if err == nil {
		f.Close()
	}
	check("Open", err)
	_, err = fs.Stat(fsys, name)
	check("Stat", err)
	if lstat {
		_, err = fs.Lstat(fsys, name)
		check("Lstat", err)
		_, err = fs.ReadLink(fsys, name)
		check("ReadLink", err)
	}
	_, err = fs.ReadFile(fsys, name)
	check("ReadFile", err)
	_, err = fs.ReadDir(fsys, name)
	check("ReadDir", err)
}

// localRepo makes a repository with committed, untracked and ignored
// files, and a worktree's .git file, and returns its folder.
func localRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	localGit(t, dir, "init", "-q")
	localWrite(t, dir, map[string]string{
		".gitignore":        ".env\ndist/\n*.log\nout/\n",
		"ferry.yaml":        "functions: []\n",
		"app/main.go":       "package main\n",
		"app/lib/util.go":   "package lib\n",
		"keep/forced.log":   "tracked though ignored\n",
		"out/kept.txt":      "tracked in an ignored folder\n",
		"out/tmp.o":         "built\n",
		"app/.gitignore":    "secret.txt\n",
		"app/secret.txt":    "s3cr3t\n",
		"app/.env":          "TOKEN=1\n",
		"app/debug.log":     "log\n",
		".env":              "TOKEN=2\n",
		"dist/out.js":       "built\n",
		"dist/deep/x.js":    "built\n",
		"logs/a.log":        "log\n",
		"notes.txt":         "untracked, not ignored\n",
		"app/new.go":        "package main // uncommitted\n",
		"wt/.git":           "gitdir: /home/alice/src/repo/.git/worktrees/wt\n",
		"wt/file.txt":       "in a worktree\n",
		"editor.swp":        "global excludes\n",
		"app/lib/.git/HEAD": "ref: refs/heads/main\n",
	})
	localSymlink(t, "app/main.go", filepath.Join(dir, "main-link"))
	localGit(t, dir, "add", ".gitignore", "ferry.yaml", "app/main.go", "app/lib/util.go", "app/.gitignore", "main-link")
	localGit(t, dir, "add", "-f", "keep/forced.log", "out/kept.txt")
	localGit(t, dir, "commit", "-q", "-m", "initial")
	return dir
}

// localGlobalExcludes makes the user's global configuration name an
// excludes file that ignores *.swp, as an editor's setup would.
func localGlobalExcludes(t *testing.T) {
	t.Helper()
	cfg := t.TempDir()
	excludes := filepath.Join(cfg, "ignore")
	localWrite(t, cfg, map[string]string{
		"ignore":    "*.swp\n",
		"gitconfig": "[core]\n\texcludesFile = " + filepath.ToSlash(excludes) + "\n",
	})
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(cfg, "gitconfig"))
}

func TestLocalSourceGit(t *testing.T) {
	localGitEnv(t)
	dir := localRepo(t)
	localGlobalExcludes(t)
	// The system configuration is ignored even when git is pointed at
	// one.
	t.Setenv("GIT_CONFIG_SYSTEM", filepath.Join(dir, "no-such-config"))

	fsys, err := LocalSource(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{
		".gitignore", "ferry.yaml", "main-link", "notes.txt",
		"app/.gitignore", "app/main.go", "app/new.go", "app/lib/util.go",
		"keep/forced.log", "out/kept.txt", "wt/file.txt",
	}
	want := append([]string{"./", "app/", "app/lib/", "keep/", "out/", "wt/"}, files...)
	localSameList(t, "WalkDir", localWalk(t, fsys), want)

	for _, name := range []string{
		".env", "app/.env", "app/secret.txt", "app/debug.log", "logs", "logs/a.log",
		"dist", "dist/out.js", "dist/deep", "dist/deep/x.js", "out/tmp.o", "editor.swp",
		".git", ".git/HEAD", ".git/config", "wt/.git", "app/lib/.git", "app/lib/.git/HEAD",
		"no-such-file",
	} {
		localNotExist(t, fsys, name)
	}

	t.Run("fstest", func(t *testing.T) {
		if err := fstest.TestFS(fsys, files...); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("symlink", func(t *testing.T) {
		info, err := fs.Lstat(fsys, "main-link")
		if err != nil || info.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("Lstat(main-link) = %v, %v; want a symlink", info, err)
		}
		target, err := fs.ReadLink(fsys, "main-link")
		if err != nil || target != "app/main.go" {
			t.Fatalf("ReadLink(main-link) = %q, %v", target, err)
		}
		data, err := fs.ReadFile(fsys, "main-link")
		if err != nil || string(data) != "package main\n" {
			t.Fatalf("ReadFile(main-link) = %q, %v", data, err)
		}
		info, err = fs.Stat(fsys, "main-link")
		if err != nil || !info.Mode().IsRegular() || info.Name() != "main-link" {
			t.Fatalf("Stat(main-link) = %v, %v; want the regular file, named as asked", info, err)
		}
	})

	t.Run("open folder", func(t *testing.T) {
		f, err := fsys.Open(".")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		d, ok := f.(fs.ReadDirFile)
		if !ok {
			t.Fatalf("Open(.) is a %T, not an fs.ReadDirFile", f)
		}
		// One at a time, so that a batch of hidden entries must be read
		// past.
		var names []string
		for {
			entries, err := d.ReadDir(1)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Fatalf("ReadDir(1) = %d entries, nil", len(entries))
			}
			names = append(names, entries[0].Name())
		}
		localSameList(t, "Open(.).ReadDir(1)", names, []string{".gitignore", "app", "ferry.yaml", "keep", "main-link", "notes.txt", "out", "wt"})
	})

	t.Run("invalid names", func(t *testing.T) {
		for _, name := range []string{"", "/etc/passwd", "../x", "app/../.env", "./app", "app/", `app\main.go`} {
			if name == `app\main.go` && runtime.GOOS != "windows" {
				continue
			}
			_, err := fsys.Open(name)
			if !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Open(%q) = %v, want fs.ErrInvalid", name, err)
			}
			_, err = fs.Lstat(fsys, name)
			if !errors.Is(err, fs.ErrInvalid) {
				t.Errorf("Lstat(%q) = %v, want fs.ErrInvalid", name, err)
			}
		}
	})

	t.Run("files written later", func(t *testing.T) {
		// Git was asked once: a file written since is seen, as an
		// untracked one.
		localWrite(t, dir, map[string]string{"late.txt": "late\n"})
		if _, err := fs.Stat(fsys, "late.txt"); err != nil {
			t.Fatal(err)
		}
	})
}

// A symlink cannot reach what is hidden, nor lead outside the folder,
// whatever path it takes.
func TestLocalSourceSymlinks(t *testing.T) {
	localGitEnv(t)
	dir := localRepo(t)
	outside := t.TempDir()
	localWrite(t, outside, map[string]string{"secret": "outside\n"})
	links := map[string]string{
		"env-link":           ".env",
		"dist-link":          "dist",
		"git-link":           ".git",
		"self":               ".",
		"app/up":             "..",
		"app/env-via-parent": "../app/.env",
		"loop-a":             "loop-b",
		"loop-b":             "loop-a",
		"out-rel":            "../" + filepath.Base(outside),
		"out-abs":            outside,
		"out-deep":           "app/../..",
	}
	for link, target := range links {
		localSymlink(t, filepath.FromSlash(target), filepath.Join(dir, filepath.FromSlash(link)))
	}
	fsys, err := LocalSource(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}

	// The links themselves are there, so that a caller can say which
	// link is wrong.
	for link, target := range links {
		info, err := fs.Lstat(fsys, link)
		if err != nil || info.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("Lstat(%s) = %v, %v; want the link", link, info, err)
		}
		got, err := fs.ReadLink(fsys, link)
		if err != nil || filepath.ToSlash(got) != filepath.ToSlash(target) {
			t.Errorf("ReadLink(%s) = %q, %v; want %q", link, got, err, target)
		}
	}

	for _, name := range []string{"env-link", "dist-link", "git-link", "app/env-via-parent", "self/env-link", "self/app/up/dist-link"} {
		localUnreachable(t, fsys, name, false)
	}
	for _, name := range []string{
		"dist-link/out.js", "git-link/HEAD", "self/.env", "self/.git/HEAD", "self/dist/out.js",
		"app/up/.env", "app/up/app/secret.txt", "self/app/up/dist-link/deep",
	} {
		localNotExist(t, fsys, name)
	}

	// Visible files are still reached through links.
	for name, want := range map[string]string{
		"self/notes.txt":            "untracked, not ignored\n",
		"app/up/app/main.go":        "package main\n",
		"self/app/up/main-link":     "package main\n",
		"self/self/keep/forced.log": "tracked though ignored\n",
	} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil || string(data) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q", name, data, err, want)
		}
	}
	entries, err := fs.ReadDir(fsys, "self")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".env" || e.Name() == ".git" || e.Name() == "dist" {
			t.Errorf("ReadDir(self) shows %s", e.Name())
		}
	}
	f, err := fsys.Open("app/up")
	if err != nil {
		t.Fatal(err)
	}
	entries, err = f.(fs.ReadDirFile).ReadDir(-1)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".env" || e.Name() == ".git" || e.Name() == "dist" {
			t.Errorf("Open(app/up).ReadDir shows %s", e.Name())
		}
	}

	// Out of the folder, or round in circles: an error, never the file.
	for _, name := range []string{"out-rel/secret", "out-abs/secret", "out-deep", "out-rel", "loop-a", "self/loop-b/x"} {
		if _, err := fs.ReadFile(fsys, name); err == nil {
			t.Errorf("ReadFile(%s) succeeded", name)
		} else if !errors.As(err, new(*fs.PathError)) {
			t.Errorf("ReadFile(%s) = %v, want a *fs.PathError", name, err)
		}
		if _, err := fs.Stat(fsys, name); err == nil {
			t.Errorf("Stat(%s) succeeded", name)
		}
	}
	_, err = fs.Stat(fsys, "out-rel/secret")
	if err == nil || !strings.Contains(err.Error(), "out-rel") || !strings.Contains(err.Error(), "outside") {
		t.Errorf("Stat(out-rel/secret) = %v, want it to blame the link", err)
	}
}

// A folder of a repository sees paths relative to itself, with the
// repository's rules and its own.
func TestLocalSourceSubfolder(t *testing.T) {
	localGitEnv(t)
	dir := localRepo(t)
	localWrite(t, dir, map[string]string{
		"fn/.gitignore":       "local.txt\n",
		"fn/handler.py":       "def handle(e): pass\n",
		"fn/local.txt":        "ignored here\n",
		"fn/.env":             "TOKEN=3\n",
		"fn/dist/a.js":        "built\n",
		"fn/run.log":          "log\n",
		"fn/pkg/mod.py":       "\n",
		"fn/pkg/cache.log":    "log\n",
		"fn/.venv/bin/python": "#!\n",
	})
	localGit(t, dir, "add", "fn/handler.py")
	if err := os.WriteFile(filepath.Join(dir, ".git", "info", "exclude"), []byte(".venv/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fsys, err := LocalSource(context.Background(), filepath.Join(dir, "fn"))
	if err != nil {
		t.Fatal(err)
	}
	localSameList(t, "WalkDir", localWalk(t, fsys), []string{"./", ".gitignore", "handler.py", "pkg/", "pkg/mod.py"})
	for _, name := range []string{"local.txt", ".env", "dist", "dist/a.js", "run.log", "pkg/cache.log", ".venv", ".venv/bin/python"} {
		localNotExist(t, fsys, name)
	}
	if err := fstest.TestFS(fsys, "handler.py", "pkg/mod.py"); err != nil {
		t.Fatal(err)
	}
}

// A folder outside Git, or without git installed, hides only .git
// entries.
func TestLocalSourcePlain(t *testing.T) {
	localGitEnv(t)
	files := map[string]string{
		".gitignore":   ".env\n",
		".env":         "TOKEN=1\n",
		"main.go":      "package main\n",
		"sub/.git":     "gitdir: /home/alice/x\n",
		"sub/a.txt":    "a\n",
		".git/HEAD":    "ref: refs/heads/main\n",
		"deep/.git/x":  "x\n",
		"deep/keep.go": "package deep\n",
	}
	want := []string{"./", ".env", ".gitignore", "main.go", "sub/", "sub/a.txt", "deep/", "deep/keep.go"}

	t.Run("not a repository", func(t *testing.T) {
		parent := t.TempDir()
		// Git must not look above the test's folder for a repository.
		t.Setenv("GIT_CEILING_DIRECTORIES", parent)
		dir := filepath.Join(parent, "plain")
		localWrite(t, dir, files)
		fsys, err := LocalSource(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		localSameList(t, "WalkDir", localWalk(t, fsys), want)
		for _, name := range []string{".git", ".git/HEAD", "sub/.git", "deep/.git", "deep/.git/x"} {
			localNotExist(t, fsys, name)
		}
		if err := fstest.TestFS(fsys, ".env", "main.go", "sub/a.txt", "deep/keep.go"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("git not installed", func(t *testing.T) {
		dir := localRepo(t)
		t.Setenv("PATH", t.TempDir())
		fsys, err := LocalSource(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fs.Stat(fsys, ".env"); err != nil {
			t.Errorf("without git, .env should be seen: %v", err)
		}
		localNotExist(t, fsys, ".git")
		localNotExist(t, fsys, "wt/.git")
	})
}

// A folder Git ignores whole has nothing to build.
func TestLocalSourceIgnoredFolder(t *testing.T) {
	localGitEnv(t)
	dir := localRepo(t)
	_, err := LocalSource(context.Background(), filepath.Join(dir, "dist"))
	if err == nil || !strings.Contains(err.Error(), "ignores everything") {
		t.Fatalf("LocalSource(dist) = %v, want an error saying git ignores it", err)
	}
}

func TestLocalSourceGitFails(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake git is a shell script")
	}
	localGitEnv(t)
	dir := localRepo(t)
	cases := []struct {
		name   string
		stderr string
		want   []string
	}{
		{
			name:   "dubious ownership",
			stderr: "fatal: detected dubious ownership in repository at '/srv/repo'\nTo add an exception for this directory, call:\n\n\tgit config --global --add safe.directory /srv/repo",
			want: []string{
				`"fatal: detected dubious ownership in repository at '/srv/repo' To add an exception`,
				"git config --global --add safe.directory /srv/repo`",
			},
		},
		{
			name:   "broken worktree",
			stderr: "fatal: not a git repository: /home/alice/src/repo/.git/worktrees/wt",
			want:   []string{`"fatal: not a git repository: /home/alice/src/repo/.git/worktrees/wt"`, "git -C " + dir + " status"},
		},
		{
			name: "silent",
			want: []string{"exit status 128"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := t.TempDir()
			// printf is a builtin: PATH holds nothing but this git.
			script := "#!/bin/sh\nprintf '%s\\n' '" + strings.ReplaceAll(c.stderr, "'", `'\''`) + "' >&2\nexit 128\n"
			if err := os.WriteFile(filepath.Join(bin, "git"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", bin)
			fsys, err := LocalSource(context.Background(), dir)
			if err == nil {
				t.Fatalf("LocalSource = %v, nil; want an error", fsys)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not hold %q", err, w)
				}
			}
		})
	}

	t.Run("real dubious ownership", func(t *testing.T) {
		// Only root can give a repository away.
		if os.Geteuid() != 0 {
			t.Skip("needs root")
		}
		t.Setenv("SUDO_UID", "")
		os.Unsetenv("SUDO_UID")
		other := localRepo(t)
		err := filepath.WalkDir(other, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, 65534, 65534)
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = LocalSource(context.Background(), other)
		if err == nil || !strings.Contains(err.Error(), "dubious ownership") || !strings.Contains(err.Error(), "safe.directory "+other) {
			t.Fatalf("LocalSource = %v, want git's complaint and the safe.directory advice", err)
		}
		t.Log(err)
	})

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := LocalSource(ctx, dir); !errors.Is(err, context.Canceled) {
			t.Fatalf("LocalSource = %v, want context.Canceled", err)
		}
	})

	t.Run("missing folder", func(t *testing.T) {
		if _, err := LocalSource(context.Background(), filepath.Join(dir, "no-such-folder")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("LocalSource = %v, want fs.ErrNotExist", err)
		}
	})
}

// The walk a build makes of a function's folder sees what LocalSource
// shows, and a link to a hidden file is a link to nothing.
func TestLocalSourceWalkSource(t *testing.T) {
	localGitEnv(t)
	dir := localRepo(t)
	fsys, err := LocalSource(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = manifests.WalkSource(context.Background(), fsys, "app", func(e manifests.SourceEntry) error {
		got = append(got, e.Path+" "+e.Real)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	localSameList(t, "WalkSource(app)", got, []string{
		". app", ".gitignore app/.gitignore", "lib app/lib", "lib/util.go app/lib/util.go", "main.go app/main.go", "new.go app/new.go",
	})

	localSymlink(t, ".env", filepath.Join(dir, "app", "config"))
	err = manifests.WalkSource(context.Background(), fsys, "app", func(manifests.SourceEntry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "app/config is a symlink") || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("WalkSource with a link to an ignored file = %v, want it to say the link leads nowhere", err)
	}
}

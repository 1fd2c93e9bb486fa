package watcher

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// defaultFolderPoll is how often a Folder looks: a save shows within two
// looks (half a second), and a walk of a function repository costs far
// less than that.
const defaultFolderPoll = 250 * time.Millisecond

// FolderConfig says which folder a Folder watches and what it skips.
type FolderConfig struct {
	// Dir is the folder watched, with everything under it.
	Dir string
	// Skip are folders never looked into, wherever they are (ferry run's
	// data folder, which it writes to itself).
	Skip []string
	// Poll is how often the folder is looked at (default 250 ms).
	Poll time.Duration
}

// Folder reports the saved changes to the files of a working folder, for
// `ferry run`: what it writes itself (its data folder), `.git`, what Git
// ignores and editors' temporary files are never reported, and a change
// is reported once it has settled, so that a save is one change.
type Folder struct {
	cfg  FolderConfig
	dir  string          // cfg.Dir, absolute, with symbolic links resolved
	skip map[string]bool // cfg.Skip the same way
	// last is the state last reported (or the first look's).
	last map[string]fileStamp
	// pending is the previous look when it differed from last: a change
	// is reported when two looks in a row agree.
	pending map[string]fileStamp
	// rawKey and ignored cache Git's answer for one raw look, so that git
	// runs only when something on disk changed.
	rawKey  string
	ignored func(rel string, dir bool) bool
}

// fileStamp is what a look notes of a file: enough to see an edit
// without reading contents.
type fileStamp struct {
	size  int64
	mode  fs.FileMode
	mtime int64
}

// NewFolder takes the first look at cfg.Dir; the changes Next reports
// are the ones after it.
func NewFolder(ctx context.Context, cfg FolderConfig) (*Folder, error) {
	if cfg.Poll <= 0 {
		cfg.Poll = defaultFolderPoll
	}
	dir, err := resolve(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", cfg.Dir, err)
	}
	w := &Folder{cfg: cfg, dir: dir, skip: map[string]bool{}}
	for _, s := range cfg.Skip {
		// A data folder that does not exist yet is skipped by the path
		// it will have.
		r, err := resolve(s)
		if err != nil {
			return nil, fmt.Errorf("watching %s: %w", cfg.Dir, err)
		}
		w.skip[r] = true
	}
	w.last, err = w.look(ctx)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// resolve makes p absolute and resolves the symbolic links of the longest
// part of it that exists.
func resolve(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// Next waits for the next settled change and returns the files it
// touched (made, changed or removed), relative to the folder, in order.
// It returns ctx's error when ctx ends, and an error of a look, after
// which it may be called again.
func (w *Folder) Next(ctx context.Context) ([]string, error) {
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		cur, err := w.look(ctx)
		if err != nil {
			return nil, err
		}
		if sameStamps(cur, w.last) {
			w.pending = nil
			continue
		}
		// why: an editor's save is several writes (a temporary file, a
		// rename, a chmod); reporting the first look of it would build
		// twice, so a change waits for a second look that agrees.
		if w.pending == nil || !sameStamps(cur, w.pending) {
			w.pending = cur
			continue
		}
		changed := diffStamps(w.last, cur)
		w.last, w.pending = cur, nil
		return changed, nil
	}
}

// look walks the folder and notes every file it would report.
func (w *Folder) look(ctx context.Context) (map[string]fileStamp, error) {
	raw := map[string]fileStamp{}
	err := filepath.WalkDir(w.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != w.dir && errors.Is(err, fs.ErrNotExist) {
				// Removed while walking: the next look sees it.
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(w.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (d.Name() == ".git" || w.skip[p]) {
				return filepath.SkipDir
			}
			return nil
		}
		if editorTemp(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		raw[rel] = fileStamp{size: info.Size(), mode: info.Mode(), mtime: info.ModTime().UnixNano()}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("watching %s: %w", w.cfg.Dir, err)
	}
	key := stampKey(raw)
	if w.ignored == nil || key != w.rawKey {
		ign, err := gitIgnored(ctx, w.dir, slices.Sorted(maps.Keys(raw)))
		if err != nil {
			return nil, fmt.Errorf("watching %s: %w", w.cfg.Dir, err)
		}
		w.ignored, w.rawKey = ign, key
	}
	for rel := range raw {
		if w.ignored(rel, false) {
			delete(raw, rel)
		}
	}
	return raw, nil
}

// editorTemp reports whether name is an editor's temporary file: vim's
// swap files and its write test 4913, backups ending in ~, and Emacs's
// lock files.
func editorTemp(name string) bool {
	return name == "4913" || strings.HasSuffix(name, "~") || strings.HasPrefix(name, ".#") ||
		strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swx") || strings.HasSuffix(name, ".swo")
}

// gitIgnored says which of files (relative to dir) Git ignores: git
// check-ignore's answer when dir is in a Git work tree, else the rules of
// dir/.gitignore, so that a folder `ferry init` made before `git init`
// ignores what its .gitignore says.
func gitIgnored(ctx context.Context, dir string, files []string) (func(string, bool) bool, error) {
	set, inRepo, err := gitCheckIgnore(ctx, dir, files)
	if err != nil {
		return nil, err
	}
	if inRepo {
		return func(rel string, _ bool) bool { return set[rel] }, nil
	}
	rules, err := readGitignore(filepath.Join(dir, ".gitignore"))
	if err != nil {
		return nil, err
	}
	return rules.ignored, nil
}

// gitCheckIgnore asks git which of files it ignores. inRepo is false when
// git is not installed or dir is not in a work tree.
func gitCheckIgnore(ctx context.Context, dir string, files []string) (set map[string]bool, inRepo bool, err error) {
	cmd := exec.CommandContext(ctx, "git", "check-ignore", "-z", "--stdin")
	cmd.Dir = dir
	cmd.Env = folderGitEnv()
	var in, stdout, stderr bytes.Buffer
	for _, f := range files {
		in.WriteString(f)
		in.WriteByte(0)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &stdout, &stderr
	err = cmd.Run()
	if errors.Is(err, exec.ErrNotFound) {
		return nil, false, nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		msg := stderr.String()
		switch {
		case exit.ExitCode() == 1 && strings.TrimSpace(msg) == "":
			// Exit 1: none of the files is ignored.
			return map[string]bool{}, true, nil
		case strings.Contains(msg, "not a git repository") || strings.Contains(msg, "must be run in a work tree"):
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("asking git which files it ignores: %s", strings.Join(strings.Fields(msg), " "))
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, fmt.Errorf("asking git which files it ignores: %w", err)
	}
	set = map[string]bool{}
	for _, p := range strings.Split(stdout.String(), "\x00") {
		if p != "" {
			set[p] = true
		}
	}
	return set, true, nil
}

// folderGitEnv is the user's environment without the variables that would
// point git at another repository, in the C locale so that its messages
// can be recognized.
func folderGitEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "GIT_") && k != "GIT_CONFIG_GLOBAL" && k != "GIT_CONFIG_NOSYSTEM" || k == "LC_ALL" || k == "LANGUAGE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// gitignore is the rules of one .gitignore, at the top of the folder.
type gitignore []ignoreRule

type ignoreRule struct {
	pattern  string // without a leading "/" or trailing "/"
	anchored bool   // has a "/" before its end: matched from the top
	dirOnly  bool   // ended in "/"
	negate   bool   // began with "!"
}

// readGitignore reads the rules of file; a missing file has none.
func readGitignore(file string) (gitignore, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rules gitignore
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), " \t\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var r ignoreRule
		if strings.HasPrefix(line, "!") {
			r.negate, line = true, line[1:]
		}
		if strings.HasSuffix(line, "/") {
			r.dirOnly, line = true, strings.TrimRight(line, "/")
		}
		line = strings.TrimPrefix(line, "**/")
		if strings.Contains(line, "/") {
			r.anchored, line = true, strings.TrimPrefix(line, "/")
		}
		if line == "" {
			continue
		}
		r.pattern = line
		rules = append(rules, r)
	}
	return rules, nil
}

// ignored reports whether rel (slash-separated) is ignored: itself, or a
// folder above it. As in Git, the last rule that matches decides.
func (g gitignore) ignored(rel string, isDir bool) bool {
	parts := strings.Split(rel, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		asDir := isDir || i < len(parts)-1
		if g.match(sub, asDir) {
			return true
		}
	}
	return false
}

func (g gitignore) match(rel string, isDir bool) bool {
	hit := false
	for _, r := range g {
		if r.dirOnly && !isDir {
			continue
		}
		var ok bool
		if r.anchored {
			ok, _ = path.Match(r.pattern, rel)
		} else {
			ok, _ = path.Match(r.pattern, path.Base(rel))
		}
		if ok {
			hit = !r.negate
		}
	}
	return hit
}

func sameStamps(a, b map[string]fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// diffStamps lists the files made, changed or removed from a to b, in
// order.
func diffStamps(a, b map[string]fileStamp) []string {
	var out []string
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// stampKey is a look as one string, to tell whether git must be asked
// again.
func stampKey(m map[string]fileStamp) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		fmt.Fprintf(&b, "%s\x00%d %o %d\n", k, v.size, v.mode, v.mtime)
	}
	return b.String()
}

package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ferrycd/ferry/manifests"
)

// LocalSource returns the repository in dir as the build should see it:
// when dir is inside a Git work tree, the working tree without the files
// Git ignores (untracked files that are not ignored stay, so a build of
// uncommitted work sees it), and never any .git entry, file or folder;
// otherwise os.DirFS(dir) without .git entries.
//
// A hidden path, and everything under it, behaves as if it did not exist,
// also when it is reached through a symlink. Symlinks are followed only
// inside dir: opening a path through a link that leads outside it is an
// error (Lstat and ReadLink still show the link itself, so that callers
// can report it).
//
// Git is asked once, here; files that become ignored later are not
// hidden. When git is not installed, or dir is not in a work tree, only
// .git entries are hidden. Any other failure of git is an error, since
// building without knowing what Git ignores could ship secrets.
func LocalSource(ctx context.Context, dir string) (fs.FS, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	l := &localFS{
		fsys:   os.DirFS(dir),
		hidden: map[string]bool{},
		fold:   localSourceFoldsCase(),
	}
	ignored, err := localSourceIgnored(ctx, dir)
	if err != nil {
		return nil, err
	}
	for _, p := range ignored {
		if p == "." {
			return nil, fmt.Errorf("git ignores everything in %s (`git -C %s status --ignored` shows it); build a folder that holds files Git does not ignore", dir, dir)
		}
		l.hidden[l.key(p)] = true
	}
	return l, nil
}

// localSourceIgnored lists the paths under dir, relative to it, that Git
// ignores, folders once for all they hold. It returns nothing when git is
// not installed or dir is not in a work tree.
func localSourceIgnored(ctx context.Context, dir string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory")
	// From dir, ls-files lists only what is under it, relative to it.
	cmd.Dir = dir
	cmd.Env = localSourceGitEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(err, exec.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("asking git which files %s ignores: %w", dir, ctxErr)
		}
		msg := strings.Join(strings.Fields(stderr.String()), " ")
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return nil, fmt.Errorf("asking git which files %s ignores: %w", dir, err)
		}
		if strings.Contains(msg, "not a git repository (or any") || strings.Contains(msg, "must be run in a work tree") {
			// Not in a work tree: nothing is ignored.
			return nil, nil
		}
		said := fmt.Sprintf("git said %q", msg)
		if msg == "" {
			said = "git failed with " + exit.String()
		}
		return nil, fmt.Errorf("asking git which files %s ignores: %s; %s", dir, said, localSourceAdvice(dir, msg))
	}
	var out []string
	for _, p := range strings.Split(stdout.String(), "\x00") {
		// A folder ends in "/"; "./" is dir itself, when all it holds
		// is ignored.
		p = strings.TrimSuffix(p, "/")
		if p == "" {
			continue
		}
		p = path.Clean(p)
		if p != "." && !fs.ValidPath(p) {
			// Not a path under dir; no name given to the FS can
			// match it.
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// localSourceGitEnv is the environment git runs in: the user's, so that
// their global configuration (and its excludes file) applies, without the
// system configuration, in the C locale so that its messages can be
// recognized, and without the variables that point git at another
// repository (a hook sets GIT_DIR, for one), so that it finds the
// repository from dir.
func localSourceGitEnv() []string {
	drop := map[string]bool{
		"GIT_DIR": true, "GIT_WORK_TREE": true, "GIT_INDEX_FILE": true,
		"GIT_COMMON_DIR": true, "GIT_PREFIX": true, "GIT_OBJECT_DIRECTORY": true,
		"GIT_ALTERNATE_OBJECT_DIRECTORIES": true, "GIT_IMPLICIT_WORK_TREE": true,
		"GIT_INTERNAL_SUPER_PREFIX": true, "GIT_NAMESPACE": true,
		"LC_ALL": true, "LANGUAGE": true,
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	return append(env, "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C")
}

// localSourceAdvice says what to do about git's failure msg in dir.
func localSourceAdvice(dir, msg string) string {
	if strings.Contains(msg, "dubious ownership") {
		repo := dir
		if _, rest, ok := strings.Cut(msg, "repository at '"); ok {
			if r, _, ok := strings.Cut(rest, "'"); ok && r != "" {
				repo = r
			}
		}
		return fmt.Sprintf("the repository belongs to another user; if you trust it, run `git config --global --add safe.directory %s`, then build again", repo)
	}
	return fmt.Sprintf("ferry needs git to leave out the files it ignores; fix what `git -C %s status` reports, then build again", dir)
}

// localSourceFoldsCase reports whether names that differ only in case
// are the same file, as they are by default on macOS and Windows.
func localSourceFoldsCase() bool {
	switch runtime.GOOS {
	case "darwin", "ios", "windows":
		return true
	}
	return false
}

// localFS is a folder with some paths hidden.
type localFS struct {
	fsys fs.FS // os.DirFS of the folder
	// hidden holds the ignored paths, by key.
	hidden map[string]bool
	// fold is set when the file system ignores case, so that ".ENV"
	// cannot reach an ignored ".env".
	fold bool
}

var (
	_ fs.ReadDirFS  = (*localFS)(nil)
	_ fs.StatFS     = (*localFS)(nil)
	_ fs.ReadFileFS = (*localFS)(nil)
	_ fs.ReadLinkFS = (*localFS)(nil)
)

func (l *localFS) key(p string) string {
	if l.fold {
		return strings.ToLower(p)
	}
	return p
}

// hides reports whether p, whose parent folder is visible, is hidden.
func (l *localFS) hides(p string) bool {
	base := path.Base(p)
	if base == ".git" || (l.fold && strings.EqualFold(base, ".git")) {
		return true
	}
	return l.hidden[l.key(p)]
}

// resolve checks that name is a valid path that can be seen, following
// every symlink along it (the last element too when followLast is set)
// inside the folder, and returns the path it leads to.
func (l *localFS) resolve(op, name string, followLast bool) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	real, err := manifests.Resolve(l.fsys, name, followLast, l.hides)
	if err != nil {
		return "", &fs.PathError{Op: op, Path: name, Err: localSourcePathErr(err)}
	}
	return real, nil
}

// localSourcePathErr returns the error a *fs.PathError holds, so that it
// can be reported for the name the caller gave.
func localSourcePathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Open opens name, following symlinks inside the folder; a folder's
// ReadDir leaves out hidden entries.
func (l *localFS) Open(name string) (fs.File, error) {
	real, err := l.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	f, err := l.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !info.IsDir() {
		return f, nil
	}
	d, ok := f.(fs.ReadDirFile)
	if !ok {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("folder cannot be listed")}
	}
	return &localDir{ReadDirFile: d, l: l, real: real}, nil
}

// ReadDir lists the folder name without its hidden entries.
func (l *localFS) ReadDir(name string) ([]fs.DirEntry, error) {
	real, err := l.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(l.fsys, name)
	return l.visible(real, entries), err
}

// Stat describes name, following symlinks inside the folder.
func (l *localFS) Stat(name string) (fs.FileInfo, error) {
	if _, err := l.resolve("stat", name, true); err != nil {
		return nil, err
	}
	return fs.Stat(l.fsys, name)
}

// ReadFile reads name, following symlinks inside the folder.
func (l *localFS) ReadFile(name string) ([]byte, error) {
	if _, err := l.resolve("readfile", name, true); err != nil {
		return nil, err
	}
	return fs.ReadFile(l.fsys, name)
}

// Lstat describes name without following it if it is a symlink.
func (l *localFS) Lstat(name string) (fs.FileInfo, error) {
	if _, err := l.resolve("lstat", name, false); err != nil {
		return nil, err
	}
	return fs.Lstat(l.fsys, name)
}

// ReadLink returns the target of the symlink name, as it is written.
func (l *localFS) ReadLink(name string) (string, error) {
	if _, err := l.resolve("readlink", name, false); err != nil {
		return "", err
	}
	return fs.ReadLink(l.fsys, name)
}

// visible returns the entries of the folder real that are not hidden.
func (l *localFS) visible(real string, entries []fs.DirEntry) []fs.DirEntry {
	out := entries[:0]
	for _, e := range entries {
		if !l.hides(path.Join(real, e.Name())) {
			out = append(out, e)
		}
	}
	return out
}

// localDir is an open folder of a localFS.
type localDir struct {
	fs.ReadDirFile
	l    *localFS
	real string // the folder, once symlinks are followed
}

// ReadDir reads the folder's next n visible entries, or all the rest when
// n <= 0, as fs.ReadDirFile says.
func (d *localDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n <= 0 {
		entries, err := d.ReadDirFile.ReadDir(n)
		return d.l.visible(d.real, entries), err
	}
	var out []fs.DirEntry
	for len(out) < n {
		entries, err := d.ReadDirFile.ReadDir(n - len(out))
		out = append(out, d.l.visible(d.real, entries)...)
		if err != nil {
			if err == io.EOF && len(out) > 0 {
				return out, nil
			}
			return out, err
		}
	}
	return out, nil
}

// LoadLocal loads the repository in dir as a build sees it (LocalSource)
// and returns its manifests and the tree. Manifest errors come back as a
// manifests.ErrorList whose files start with dir, so that a path printed
// from where the command ran opens in an editor.
func LoadLocal(ctx context.Context, dir string) (*manifests.Set, fs.FS, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !info.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a folder; give the repository's folder", dir)
	}
	src, err := LocalSource(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	set, err := manifests.Load(ctx, src)
	if list := manifests.Errors(err); list != nil {
		for _, e := range list {
			e.File = filepath.Join(dir, e.File)
		}
		return nil, nil, manifests.ErrorList(list)
	}
	if err != nil {
		return nil, nil, err
	}
	return set, src, nil
}

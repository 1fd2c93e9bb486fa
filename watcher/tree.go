package watcher

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/ferrycd/ferry/manifests"
	"github.com/ferrycd/ferry/store"
)

// treeCache bounds the object cache of one Tree: it holds the trees and
// the delta bases a build reads, not whole repositories.
const treeCache = 16 * cache.MiByte

// Tree implements Watcher.
func (w *watcher) Tree(ctx context.Context, source, commit string) (fs.FS, error) {
	st, c, err := w.readCommit(ctx, source, commit)
	if err != nil {
		return nil, err
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("source %s: reading the tree of %s: %w", source, commit, err)
	}
	return &treeFS{st: st, root: root.Hash, modTime: c.Committer.When, dirs: map[plumbing.Hash][]object.TreeEntry{}}, nil
}

// CommitTime implements Watcher.
func (w *watcher) CommitTime(ctx context.Context, source, commit string) (time.Time, error) {
	_, c, err := w.readCommit(ctx, source, commit)
	if err != nil {
		return time.Time{}, err
	}
	return c.Committer.When, nil
}

// CommitAuthor returns the name and email of commit's author, read from
// the source's mirror: an approval by the author is a self-approval.
func (w *watcher) CommitAuthor(ctx context.Context, source, commit string) (name, email string, err error) {
	_, c, err := w.readCommit(ctx, source, commit)
	if err != nil {
		return "", "", err
	}
	return c.Author.Name, c.Author.Email, nil
}

// IsAncestor implements Watcher.
func (w *watcher) IsAncestor(ctx context.Context, source, ancestor, descendant string) (bool, error) {
	if ancestor == descendant {
		return true, nil
	}
	st, d, err := w.readCommit(ctx, source, descendant)
	if err != nil {
		return false, err
	}
	a, err := object.GetCommit(st, plumbing.NewHash(ancestor))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return false, fmt.Errorf("source %s: commit %s is not in its mirror (%w); sync the source, or check the commit", source, ancestor, fs.ErrNotExist)
	}
	if err != nil {
		return false, fmt.Errorf("source %s: reading commit %s from its mirror: %w", source, ancestor, err)
	}
	ok, err := a.IsAncestor(d)
	if err != nil {
		return false, fmt.Errorf("source %s: walking the history of %s: %w", source, store.Short(descendant), err)
	}
	return ok, nil
}

// readCommit opens the source's mirror for reading, on storage of its own
// (go-git's storage is not safe for concurrent use, and a fetch may be
// writing the mirror: it adds packs, each whole before it is named, and
// never changes one), and reads commit from it.
func (w *watcher) readCommit(ctx context.Context, source, commit string) (*filesystem.Storage, *object.Commit, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if !validName(source) {
		return nil, nil, fmt.Errorf("source name %q is not valid: %w", source, fs.ErrNotExist)
	}
	if len(commit) != 40 {
		return nil, nil, fmt.Errorf("source %s: commit %q: give a full 40-character commit hash", source, commit)
	}
	if _, err := hex.DecodeString(commit); err != nil {
		return nil, nil, fmt.Errorf("source %s: commit %q: give a full 40-character commit hash", source, commit)
	}
	dir := w.mirrorPath(source)
	if _, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("source %s has no mirror in %s (%w); add the source and let it fetch", source, w.cfg.Dir, err)
	}
	st := filesystem.NewStorage(osfs.New(dir), cache.NewObjectLRU(treeCache))
	c, err := object.GetCommit(st, plumbing.NewHash(commit))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, nil, fmt.Errorf("source %s: commit %s is not in its mirror (%w); sync the source, or check the commit", source, commit, fs.ErrNotExist)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("source %s: reading commit %s from its mirror: %w", source, commit, err)
	}
	return st, c, nil
}

// treeFS is a commit's tree read from Git's objects. Git stores no
// permissions but the executable bit: files are 0644 or 0755, folders
// 0755, symlinks ModeSymlink|0777 with their target as content, and every
// entry has the commit's time. A submodule is an empty folder, as a
// checkout without `git submodule update` shows it: its commit is not in
// the mirror. Symlinks are followed on Open, Stat, ReadFile and ReadDir
// only inside the tree, the way manifests.Resolve does: a link that leads
// out is an error naming it, while Lstat and ReadLink show the link itself.
type treeFS struct {
	root    plumbing.Hash
	modTime time.Time

	// mu serialises reading objects: go-git's storage is not safe for
	// concurrent use.
	mu   sync.Mutex
	st   *filesystem.Storage
	dirs map[plumbing.Hash][]object.TreeEntry // entries of trees read, sorted by name
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
	_ fs.ReadLinkFS = (*treeFS)(nil)
)

// entry is one object of the tree.
type entry struct {
	name string // the base name the caller used
	mode filemode.FileMode
	hash plumbing.Hash
}

func (e entry) isDir() bool {
	return e.mode == filemode.Dir || e.mode == filemode.Submodule
}

// fsMode maps a Git mode to a file mode.
func fsMode(m filemode.FileMode) fs.FileMode {
	switch m {
	case filemode.Dir, filemode.Submodule:
		return fs.ModeDir | 0o755
	case filemode.Executable:
		return 0o755
	case filemode.Symlink:
		return fs.ModeSymlink | 0o777
	default:
		return 0o644
	}
}

// entries lists the tree h, sorted by name (Git sorts folders as if their
// name ended in "/"). A submodule has none. Called with t.mu held.
func (t *treeFS) entries(e entry) ([]object.TreeEntry, error) {
	if e.mode == filemode.Submodule {
		return nil, nil
	}
	if list, ok := t.dirs[e.hash]; ok {
		return list, nil
	}
	tree, err := object.GetTree(t.st, e.hash)
	if err != nil {
		return nil, err
	}
	list := slices.Clone(tree.Entries)
	slices.SortFunc(list, func(a, b object.TreeEntry) int { return strings.Compare(a.Name, b.Name) })
	t.dirs[e.hash] = list
	return list, nil
}

// lookup finds the clean path p, which holds no symlink (but may end in
// one), without following anything. Called with t.mu held.
func (t *treeFS) lookup(p string) (entry, error) {
	cur := entry{name: ".", mode: filemode.Dir, hash: t.root}
	if p == "." {
		return cur, nil
	}
	for _, name := range strings.Split(p, "/") {
		if !cur.isDir() {
			return entry{}, fs.ErrNotExist
		}
		list, err := t.entries(cur)
		if err != nil {
			return entry{}, err
		}
		i, ok := slices.BinarySearchFunc(list, name, func(e object.TreeEntry, name string) int { return strings.Compare(e.Name, name) })
		if !ok {
			return entry{}, fs.ErrNotExist
		}
		cur = entry{name: name, mode: list[i].Mode, hash: list[i].Hash}
	}
	return cur, nil
}

// info describes e, calling it name. Called with t.mu held.
func (t *treeFS) info(name string, e entry) (fs.FileInfo, error) {
	fi := &fileInfo{name: name, mode: fsMode(e.mode), modTime: t.modTime}
	if !e.isDir() {
		// The object's header says its size without reading it.
		size, err := t.st.EncodedObjectSize(e.hash)
		if err != nil {
			return nil, err
		}
		fi.size = size
	}
	return fi, nil
}

// blob reads the object h. Called with t.mu held.
func (t *treeFS) blob(h plumbing.Hash) ([]byte, error) {
	o, err := t.st.EncodedObject(plumbing.BlobObject, h)
	if err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// raw is the tree without symlinks followed, which manifests.Resolve
// walks one element at a time.
type raw struct{ t *treeFS }

func (r raw) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: errors.ErrUnsupported}
}

func (r raw) Lstat(name string) (fs.FileInfo, error) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	e, err := r.t.lookup(name)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return r.t.info(path.Base(name), e)
}

func (r raw) ReadLink(name string) (string, error) {
	r.t.mu.Lock()
	defer r.t.mu.Unlock()
	e, err := r.t.lookup(name)
	if err == nil && e.mode != filemode.Symlink {
		err = fs.ErrInvalid
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	b, err := r.t.blob(e.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(b), nil
}

// resolve checks name and follows the symlinks along it (the last element
// too when followLast is set) inside the tree, and returns what it leads
// to.
func (t *treeFS) resolve(op, name string, followLast bool) (entry, error) {
	if !fs.ValidPath(name) {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	real, err := manifests.Resolve(raw{t}, name, followLast, nil)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return entry{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, err := t.lookup(real)
	if err != nil {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: err}
	}
	e.name = path.Base(name)
	return e, nil
}

// Open opens name, following symlinks inside the tree.
func (t *treeFS) Open(name string) (fs.File, error) {
	e, err := t.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	info, err := t.info(e.name, e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if e.isDir() {
		list, err := t.dirEntries(e)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &dirFile{path: name, info: info, entries: list}, nil
	}
	b, err := t.blob(e.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &file{path: name, info: info, r: bytes.NewReader(b)}, nil
}

// dirEntries lists the folder e. Called with t.mu held.
func (t *treeFS) dirEntries(e entry) ([]fs.DirEntry, error) {
	list, err := t.entries(e)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, len(list))
	for i, te := range list {
		out[i] = &dirEntry{t: t, e: entry{name: te.Name, mode: te.Mode, hash: te.Hash}}
	}
	return out, nil
}

// ReadDir lists the folder name, following symlinks inside the tree.
func (t *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := t.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !e.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	list, err := t.dirEntries(e)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return list, nil
}

// ReadFile reads name, following symlinks inside the tree.
func (t *treeFS) ReadFile(name string) ([]byte, error) {
	e, err := t.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if e.isDir() {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: errors.New("is a directory")}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := t.blob(e.hash)
	if err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return b, nil
}

// Stat describes name, following symlinks inside the tree.
func (t *treeFS) Stat(name string) (fs.FileInfo, error) {
	return t.stat("stat", name, true)
}

// Lstat describes name without following it if it is a symlink.
func (t *treeFS) Lstat(name string) (fs.FileInfo, error) {
	return t.stat("lstat", name, false)
}

func (t *treeFS) stat(op, name string, follow bool) (fs.FileInfo, error) {
	e, err := t.resolve(op, name, follow)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	info, err := t.info(e.name, e)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return info, nil
}

// ReadLink returns the target of the symlink name, as it is written.
func (t *treeFS) ReadLink(name string) (string, error) {
	e, err := t.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if e.mode != filemode.Symlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b, err := t.blob(e.hash)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return string(b), nil
}

// fileInfo describes an entry of a treeFS.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.modTime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

// dirEntry is an entry of a folder listing; it describes the entry itself,
// a symlink as a symlink.
type dirEntry struct {
	t *treeFS
	e entry
}

func (d *dirEntry) Name() string      { return d.e.name }
func (d *dirEntry) IsDir() bool       { return d.e.isDir() }
func (d *dirEntry) Type() fs.FileMode { return fsMode(d.e.mode).Type() }
func (d *dirEntry) Info() (fs.FileInfo, error) {
	d.t.mu.Lock()
	defer d.t.mu.Unlock()
	return d.t.info(d.e.name, d.e)
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// file is an open file of a treeFS, its content read.
type file struct {
	path   string
	info   fs.FileInfo
	r      *bytes.Reader
	closed bool
}

func (f *file) Stat() (fs.FileInfo, error) { return f.info, nil }

func (f *file) Read(b []byte) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	return f.r.Read(b)
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "read", Path: f.path, Err: fs.ErrClosed}
	}
	return f.r.ReadAt(b, off)
}

func (f *file) Seek(offset int64, whence int) (int64, error) {
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrClosed}
	}
	return f.r.Seek(offset, whence)
}

func (f *file) Close() error {
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.path, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// dirFile is an open folder of a treeFS.
type dirFile struct {
	path    string
	info    fs.FileInfo
	entries []fs.DirEntry
	off     int
	closed  bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }

func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: errors.New("is a directory")}
}

func (d *dirFile) Close() error {
	if d.closed {
		return &fs.PathError{Op: "close", Path: d.path, Err: fs.ErrClosed}
	}
	d.closed = true
	return nil
}

// ReadDir returns the next n entries, or all the rest when n <= 0, as
// fs.ReadDirFile says.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.closed {
		return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: fs.ErrClosed}
	}
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}

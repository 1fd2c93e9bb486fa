package manifests

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// maxLinkHops bounds symlink chains, as the kernel's ELOOP does.
const maxLinkHops = 40

// maxSourceEntries bounds the walk of one function's folder; a function
// with more files than this is almost certainly a mistake (a vendored
// node_modules of a monorepo) and would make every build slow.
const maxSourceEntries = 100_000

// escapeError is a path that leads outside the repository.
type escapeError struct {
	name, link, target string
}

// Error names the path, and the link that leads out if that is not the
// path itself.
func (e *escapeError) Error() string {
	if e.link == "" {
		return fmt.Sprintf("%q leaves the repository; use a path inside it, relative to the repository root", e.name)
	}
	msg := fmt.Sprintf("%s is a symlink to %q, which leads outside the repository; replace the link with the files it points to", e.link, e.target)
	if e.link != e.name {
		msg = fmt.Sprintf("%q: %s", e.name, msg)
	}
	return msg
}

// resolveInRoot checks that name, a slash-separated path relative to the
// repository root, stays inside the repository once every symlink along it
// is followed, and returns the path it resolves to, which holds no symlink.
// A missing element is an error satisfying fs.ErrNotExist.
func resolveInRoot(fsys fs.FS, name string) (string, error) {
	return Resolve(fsys, name, true, nil)
}

// Resolve follows name, a slash-separated path relative to the root of
// fsys, one element at a time with Lstat, expanding symlinks itself
// instead of letting the file system follow them, so that a link to "/etc"
// or to "../../.." is caught before anything is read. It returns the path
// name leads to, which holds no symlink but, when followLast is false, a
// link at its very end. A path that leaves the root is an error naming the
// link that leads out; a missing element, or one that hidden (if set)
// reports, is an error satisfying fs.ErrNotExist.
func Resolve(fsys fs.FS, name string, followLast bool, hidden func(string) bool) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.IndexByte(name, 0) >= 0 {
		return "", &escapeError{name: name}
	}
	// Every element remembers the link whose target it came from, so an
	// escape is blamed on the link that caused it.
	type elem struct{ name, link, target string }
	var pending []elem
	for _, e := range splitPath(name) {
		pending = append(pending, elem{name: e})
	}
	var resolved []string
	hops := 0
	for len(pending) > 0 {
		e := pending[0]
		pending = pending[1:]
		switch e.name {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "", &escapeError{name: name, link: e.link, target: e.target}
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		cur := path.Join(append(resolved, e.name)...)
		if hidden != nil && hidden(cur) {
			return "", fmt.Errorf("%s: %w", cur, fs.ErrNotExist)
		}
		if len(pending) == 0 && !followLast {
			resolved = append(resolved, e.name)
			break
		}
		info, err := fs.Lstat(fsys, cur)
		if err != nil {
			return "", named(cur, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, e.name)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", fmt.Errorf("%s: more than %d symlinks in a chain (a loop?); replace them with the files", name, maxLinkHops)
		}
		target, err := fs.ReadLink(fsys, cur)
		if err != nil {
			return "", named(cur, err)
		}
		if target == "" || strings.HasPrefix(target, "/") || strings.Contains(target, "\\") {
			return "", &escapeError{name: name, link: cur, target: target}
		}
		// A relative target is relative to the link's folder, which is
		// what resolved holds now; its elements go in front of the rest.
		var expanded []elem
		for _, t := range splitPath(target) {
			expanded = append(expanded, elem{name: t, link: cur, target: target})
		}
		pending = append(expanded, pending...)
	}
	return path.Join(append([]string{"."}, resolved...)...), nil
}

func splitPath(p string) []string {
	return strings.Split(p, "/")
}

// checkTreeConfined walks the folder root (already resolved) and checks
// that every symlink in it resolves inside the repository and exists. A
// link to a folder is walked too (once), since the build will copy what it
// holds, and a link inside it may lead out.
func checkTreeConfined(ctx context.Context, fsys fs.FS, root string) error {
	w := &treeWalker{ctx: ctx, fsys: fsys, visited: map[string]bool{root: true}}
	return w.walk(root, "")
}

type treeWalker struct {
	ctx     context.Context
	fsys    fs.FS
	visited map[string]bool
	entries int
}

// walk checks the folder dir, reached through the link via ("" for the
// function's own folder).
func (w *treeWalker) walk(dir, via string) error {
	return fs.WalkDir(w.fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if w.entries++; w.entries > maxSourceEntries {
			return fmt.Errorf("holds more than %d files; a function's folder should hold its code, not a whole repository", maxSourceEntries)
		}
		if w.entries%1024 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		if d.IsDir() && d.Name() == ".git" && p != dir {
			return fs.SkipDir
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		real, err := resolveInRoot(w.fsys, p)
		if err != nil {
			var esc *escapeError
			switch {
			case errors.As(err, &esc):
			case errors.Is(err, fs.ErrNotExist):
				target, _ := fs.ReadLink(w.fsys, p)
				err = fmt.Errorf("%s is a symlink to %q, which does not exist; fix or remove the link", p, target)
			}
			if via != "" {
				err = fmt.Errorf("%w (reached through the link %s)", err, via)
			}
			return err
		}
		info, err := fs.Stat(w.fsys, real)
		if err != nil {
			return err
		}
		if info.IsDir() && !w.visited[real] {
			w.visited[real] = true
			next := p
			if via != "" {
				next = via + " -> " + p
			}
			return w.walk(real, next)
		}
		return nil
	})
}

// SourceEntry is one file or folder of a function's source, as WalkSource
// sees it.
type SourceEntry struct {
	// Path is the entry's path relative to the walked folder, through
	// links, slash-separated; "." is the folder itself.
	Path string
	// Real is where the content is in the repository once every symlink is
	// followed; read the file through it.
	Real string
	// Info describes Real (never a symlink).
	Info fs.FileInfo
}

// WalkSource walks the folder dir of the repository in fsys in lexical
// order and calls fn for every folder and regular file in it, with
// symlinks followed, so that a build sees the files a checkout shows. A
// link that leaves the repository, dangles or loops is an error naming the
// link; .git (folder or file) and anything other than files, folders and
// links (sockets, devices) are skipped. It stops after maxSourceEntries entries.
func WalkSource(ctx context.Context, fsys fs.FS, dir string, fn func(SourceEntry) error) error {
	real, err := resolveInRoot(fsys, path.Clean(dir))
	if err != nil {
		return err
	}
	w := &sourceWalker{ctx: ctx, fsys: fsys, fn: fn}
	info, err := fs.Stat(fsys, real)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	return w.walk(".", real, info, []string{real})
}

type sourceWalker struct {
	ctx     context.Context
	fsys    fs.FS
	fn      func(SourceEntry) error
	entries int
}

// walk visits the folder real, seen at rel; chain holds the real folders
// above it, so that a link back to one of them is reported as a loop
// instead of walked forever.
func (w *sourceWalker) walk(rel, real string, info fs.FileInfo, chain []string) error {
	if err := w.fn(SourceEntry{Path: rel, Real: real, Info: info}); err != nil {
		return err
	}
	entries, err := fs.ReadDir(w.fsys, real)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if w.entries++; w.entries > maxSourceEntries {
			return fmt.Errorf("%s holds more than %d files; a function's folder should hold its code, not a whole repository", chain[0], maxSourceEntries)
		}
		if w.entries%1024 == 0 {
			if err := w.ctx.Err(); err != nil {
				return err
			}
		}
		if e.Name() == ".git" {
			// A folder, or the file a worktree or submodule has instead:
			// Git's, never the function's.
			continue
		}
		childRel := path.Join(rel, e.Name())
		childReal := path.Join(real, e.Name())
		if e.Type()&fs.ModeSymlink != 0 {
			r, err := resolveInRoot(w.fsys, childReal)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					target, _ := fs.ReadLink(w.fsys, childReal)
					err = fmt.Errorf("%s is a symlink to %q, which does not exist; fix or remove the link", childReal, target)
				}
				return err
			}
			childReal = r
		}
		ci, err := fs.Stat(w.fsys, childReal)
		if err != nil {
			return err
		}
		switch {
		case ci.IsDir():
			for _, c := range chain {
				if c == childReal || strings.HasPrefix(c, childReal+"/") || childReal == "." {
					return fmt.Errorf("%s links back to a folder that holds it (a loop); replace the link with the files", path.Join(real, e.Name()))
				}
			}
			if err := w.walk(childRel, childReal, ci, append(chain[:len(chain):len(chain)], childReal)); err != nil {
				return err
			}
		case ci.Mode().IsRegular():
			if err := w.fn(SourceEntry{Path: childRel, Real: childReal, Info: ci}); err != nil {
				return err
			}
		}
	}
	return nil
}

// named is err about the element at p, naming p once: an *fs.PathError
// names its path already.
func named(p string, err error) error {
	if _, ok := errors.AsType[*fs.PathError](err); ok {
		return err
	}
	return fmt.Errorf("%s: %w", p, err)
}

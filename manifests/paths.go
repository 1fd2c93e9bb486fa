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
//
// It walks name one element at a time with Lstat, expanding
// symlinks itself instead of letting the file system follow them, so that
// a link to "/etc" or to "../../.." is caught before anything is read.
// Every element remembers the link whose target it came from, so an escape
// is blamed on the link that caused it.
func resolveInRoot(fsys fs.FS, name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.IndexByte(name, 0) >= 0 {
		return "", &escapeError{name: name}
	}
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
		info, err := fs.Lstat(fsys, cur)
		if err != nil {
			return "", fmt.Errorf("%s: %w", cur, err)
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
			return "", fmt.Errorf("%s: %w", cur, err)
		}
		if strings.HasPrefix(target, "/") || strings.Contains(target, "\\") {
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

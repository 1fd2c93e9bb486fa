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

func (e *escapeError) Error() string {
	if e.link == "" {
		return fmt.Sprintf("%q leaves the repository; use a path inside it, relative to its root", e.name)
	}
	return fmt.Sprintf("%s is a symlink to %q, which leads outside the repository; replace the link with the files it points to", e.link, e.target)
}

// ConfinePath checks that name, a slash-separated path relative to the
// repository root, stays inside the repository once every symlink along it
// is followed, and returns the path it resolves to (which has no symlinks
// in it). It does not require the final element to exist; a missing
// element is reported by the returned error satisfying fs.ErrNotExist.
func ConfinePath(fsys fs.FS, name string) (string, error) {
	return resolveInRoot(fsys, name)
}

// resolveInRoot walks name one element at a time with Lstat, expanding
// symlinks itself instead of letting the file system follow them, so that
// a link to "/etc" or to "../../.." is caught before anything is read.
func resolveInRoot(fsys fs.FS, name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.IndexByte(name, 0) >= 0 {
		return "", &escapeError{name: name}
	}
	pending := splitPath(name)
	var resolved []string
	hops := 0
	for len(pending) > 0 {
		elem := pending[0]
		pending = pending[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "", &escapeError{name: name}
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		cur := path.Join(append(resolved, elem)...)
		info, err := fs.Lstat(fsys, cur)
		if err != nil {
			return "", fmt.Errorf("%s: %w", cur, err)
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, elem)
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
		// what resolved holds now. Check it on its own first, so the error
		// names this link rather than the whole path.
		if escapes(resolved, target) {
			return "", &escapeError{name: name, link: cur, target: target}
		}
		pending = append(splitPath(target), pending...)
	}
	return path.Join(append([]string{"."}, resolved...)...), nil
}

// escapes reports whether target, relative to the folder dir, climbs above
// the root by its ".." elements alone.
func escapes(dir []string, target string) bool {
	depth := len(dir)
	for _, e := range splitPath(target) {
		switch e {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func splitPath(p string) []string {
	return strings.Split(p, "/")
}

// checkTreeConfined walks the folder root (already resolved) and checks
// that every symlink in it resolves inside the repository and exists.
// It does not follow symlinked folders: their targets are checked, and the
// build will see their files under the target's own path.
func checkTreeConfined(ctx context.Context, fsys fs.FS, root string) error {
	entries := 0
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entries++; entries > maxSourceEntries {
			return fmt.Errorf("holds more than %d files; a function's folder should hold its code, not a whole repository", maxSourceEntries)
		}
		if entries%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.IsDir() && d.Name() == ".git" && p != root {
			return fs.SkipDir
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if _, err := resolveInRoot(fsys, p); err != nil {
			var esc *escapeError
			if errors.As(err, &esc) {
				return err
			}
			if errors.Is(err, fs.ErrNotExist) {
				target, _ := fs.ReadLink(fsys, p)
				return fmt.Errorf("%s is a symlink to %q, which does not exist; fix or remove the link", p, target)
			}
			return err
		}
		return nil
	})
}

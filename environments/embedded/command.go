package embedded

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferrycd/ferry/internal/sandbox"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// command returns the argv and environment to run the function image
// unpacked at root, whose config is cfg, on this machine. Two entrypoint
// shapes are run, the ones ferry's builds make (see build/invoker):
//
//   - ["/ferry/bin/function"]: an absolute path, taken inside root; it must
//     be a regular executable file that stays inside root once its links
//     are resolved (go).
//   - ["python3", "/ferry/invoker/ferry_invoker.py"]: a bare interpreter
//     name, looked up on the fixed sandbox.SystemPath of the host (never on
//     ferry's own PATH, which may name folders only ferry can read, and
//     which is not what the sandbox sees), and one absolute script path,
//     taken inside root the same way (python, nodejs). An image built on
//     scratch has no interpreter of its own, so the host's must serve.
//
// Following Docker, the image's Cmd is appended to its Entrypoint, so an
// image that puts the same argv in Cmd runs as well.
//
// The environment is the image's Env with one exception: PATH is
// sandbox.SystemPath. The image's PATH names folders of the image (or of a
// base image that is not there), which on this machine would be the
// host's folders of that name. Nothing of ferry's environment is passed
// on, not even its PATH, so ferry's own settings and credentials never
// reach a function.
func command(root string, cfg *v1.ConfigFile) (argv []string, env []string, err error) {
	if cfg == nil {
		return nil, nil, errors.New("function image has no config: it cannot say what to run")
	}
	// why: every path is compared after resolving links, and root may itself
	// sit behind one (a data folder under a linked /tmp, say).
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, nil, fmt.Errorf("function image unpacked at %s: %w", root, err)
	}
	entry := append(append([]string(nil), cfg.Config.Entrypoint...), cfg.Config.Cmd...)

	switch {
	case len(entry) == 1 && filepath.IsAbs(entry[0]):
		bin, err := inRoot(realRoot, entry[0], true)
		if err != nil {
			return nil, nil, err
		}
		argv = []string{bin}
	case len(entry) == 2 && isBareName(entry[0]) && filepath.IsAbs(entry[1]):
		interp, err := lookSystem(entry[0])
		if err != nil {
			return nil, nil, fmt.Errorf("function image needs %s on this machine (the image was built on scratch): install it, or build with a base image and deploy to a target that runs images: %w", entry[0], err)
		}
		script, err := inRoot(realRoot, entry[1], false)
		if err != nil {
			return nil, nil, err
		}
		argv = []string{interp, script}
	default:
		return nil, nil, fmt.Errorf("function image entrypoint %q cannot run on this machine: the embedded target runs [\"/absolute/program\"] or [\"interpreter\", \"/absolute/script\"], as ferry builds them", entry)
	}

	for _, kv := range cfg.Config.Env {
		if name, _, _ := strings.Cut(kv, "="); name == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+sandbox.SystemPath)
	return argv, env, nil
}

// lookSystem finds an interpreter on sandbox.SystemPath of the host.
func lookSystem(name string) (string, error) {
	for _, dir := range filepath.SplitList(sandbox.SystemPath) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not in %s: %w", name, sandbox.SystemPath, exec.ErrNotFound)
}

// imageUser returns the uid an image's User asks for: empty means
// sandbox.DefaultUID; a number (or number:group) is taken as it is; a
// name cannot be looked up in a scratch image and root is never given.
func imageUser(cfg *v1.ConfigFile) (int, error) {
	u := cfg.Config.User
	if u == "" {
		return sandbox.DefaultUID, nil
	}
	name, _, _ := strings.Cut(u, ":")
	uid, err := strconv.Atoi(name)
	if err != nil || uid < 0 {
		return 0, fmt.Errorf("function image's User %q is not a numeric uid: build it with a numeric user such as 65532", u)
	}
	if uid == 0 {
		return 0, fmt.Errorf("function image's User is root (%q): ferry never runs repository code as root; build it with a user such as 65532", u)
	}
	return uid, nil
}

// isBareName reports whether name is a program name to look up on PATH:
// no folder in it, as a shell would look it up.
func isBareName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsRune(name, '/')
}

// inRoot returns the host path of the image path p (absolute) under
// realRoot, its links resolved, after checking that it stays inside
// realRoot and is a regular file, executable when exe is set. Links are
// resolved as the host sees them, so an absolute link target names a host
// path: such a link leaves the root and is refused. The resolved path is
// the one to run, so what was checked is what runs.
func inRoot(realRoot, p string, exe bool) (string, error) {
	// why: Clean drops ".." at the start of a rooted path, as the kernel
	// does for "/.." inside a container, so the join cannot climb out.
	host := filepath.Join(realRoot, filepath.Clean(p))
	resolved, err := filepath.EvalSymlinks(host)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("function image has no %s (its entrypoint names it): %w", p, err)
		}
		return "", fmt.Errorf("function image's %s: %w", p, err)
	}
	rel, err := filepath.Rel(realRoot, resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", fmt.Errorf("function image's %s leads to %s, outside the image: refused (a link in an image must stay inside it)", p, resolved)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return "", fmt.Errorf("function image's %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("function image's %s is not a regular file (%s)", p, fi.Mode().Type())
	}
	if exe && fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("function image's %s is not executable (mode %s): the build must mark it executable", p, fi.Mode().Perm())
	}
	return resolved, nil
}

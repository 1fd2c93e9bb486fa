package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// depsPlan is a function's dependency install: which lock files, and the
// key of the layer the install makes.
type depsPlan struct {
	runtime string
	// lockNames are the files the install reads, relative to the source.
	lockNames []string
	// key identifies the layer: the lock files' content, anything of the
	// source they name, the installer's version and the platform.
	key string
}

// maxInstallOutput bounds how much of an installer's output an error
// repeats: the end of it, which is where pip and npm say what failed.
const maxInstallOutput = 4 << 10

// installTimeout bounds one install; a hung download must not hold a
// build (and its lock) forever.
const installTimeout = 10 * time.Minute

// planDeps finds the function's dependency declaration. Python:
// requirements.txt. Node.js: package.json with dependencies, which then
// needs package-lock.json (or npm-shrinkwrap.json): without a lock the
// install would pick whatever versions are newest that day, and two builds
// of one commit would differ.
func planDeps(ctx context.Context, fsys fs.FS, rt string, files []sourceFile) (*depsPlan, error) {
	k := &keyBuilder{}
	k.add("ferry deps v1 %s", rt)
	p := &depsPlan{runtime: rt}
	switch rt {
	case v1alpha1.RuntimePython:
		req, ok := findFile(files, "requirements.txt")
		if !ok {
			return nil, nil
		}
		p.lockNames = []string{"requirements.txt"}
		k.add("lock %s %s", req.Sum, req.Path)
		// A requirement may be a file of the source (a wheel, a folder):
		// what it names is an input of the install too.
		text, err := fs.ReadFile(fsys, req.Real)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if !f.Dir && f.Path != req.Path && strings.Contains(string(text), f.Path) {
				k.add("named %s %s", f.Sum, f.Path)
			}
		}
		v, err := toolVersion(ctx, "python3", "-m", "pip", "--version")
		if err != nil {
			return nil, fmt.Errorf("requirements.txt needs pip to install: %w", err)
		}
		k.add("installer %s", v)
	case v1alpha1.RuntimeNodeJS:
		pkg, ok := findFile(files, "package.json")
		if !ok {
			return nil, nil
		}
		lock, ok := findFile(files, "package-lock.json")
		if !ok {
			lock, ok = findFile(files, "npm-shrinkwrap.json")
		}
		if !ok {
			// Without a lock, only a package.json that needs nothing
			// installs reproducibly.
			data, err := fs.ReadFile(fsys, pkg.Real)
			if err != nil {
				return nil, err
			}
			var decl struct {
				Dependencies map[string]string `json:"dependencies"`
			}
			if err := json.Unmarshal(data, &decl); err != nil {
				return nil, fmt.Errorf("package.json: %w; fix its JSON", err)
			}
			if len(decl.Dependencies) > 0 {
				return nil, fmt.Errorf("package.json has dependencies but there is no package-lock.json; run `npm install` and commit package-lock.json, so every build installs the same versions")
			}
			return nil, nil
		}
		p.lockNames = []string{pkg.Path, lock.Path}
		k.add("lock %s %s", pkg.Sum, pkg.Path)
		k.add("lock %s %s", lock.Sum, lock.Path)
		v, err := toolVersion(ctx, "npm", "--version")
		if err != nil {
			return nil, fmt.Errorf("package.json needs npm to install: %w", err)
		}
		nv, err := toolVersion(ctx, "node", "--version")
		if err != nil {
			return nil, fmt.Errorf("package.json needs node to install: %w", err)
		}
		k.add("installer npm %s node %s", v, nv)
	default:
		return nil, nil
	}
	p.key = k.sum()
	return p, nil
}

// toolVersion runs a tool's version command; a tool that is not installed
// is an error that says so.
func toolVersion(ctx context.Context, tool string, args ...string) (string, error) {
	if _, err := exec.LookPath(tool); err != nil {
		return "", fmt.Errorf("%s is not installed on this machine; install it (hack/deps.sh does)", tool)
	}
	out, err := exec.CommandContext(ctx, tool, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

// depsLayer returns the function's dependency layer, from the cache when
// its key is known, else by running the installer in a scratch copy of
// the source and writing what it installed as a layer.
func (b *builder) depsLayer(ctx context.Context, p *plan, work string, t time.Time, mt types.MediaType) (*builtLayer, error) {
	// The layer's bytes depend on the time stamped on its files, so the
	// time is part of the cached layer's key.
	key := (&keyBuilder{lines: []string{p.deps.key, "time " + t.UTC().Format(time.RFC3339), "media " + string(mt)}}).sum()
	var rec layerRecord
	if ok, err := b.cache.getJSON("layers", key, &rec); err != nil {
		return nil, err
	} else if ok && b.cache.hasBlob(rec.Digest) {
		return b.cache.layer(rec), nil
	}
	dir := filepath.Join(work, "deps")
	srcDir := filepath.Join(work, "deps-src")
	if err := copyToHost(p.src, p.files, srcDir); err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, installTimeout)
	defer cancel()
	s := newLayerSpec()
	switch p.runtime {
	case v1alpha1.RuntimePython:
		target := filepath.Join(dir, "deps")
		if err := runInstaller(ictx, srcDir, "requirements.txt", "python3", "-m", "pip", "install",
			"--target", target, "--requirement", "requirements.txt",
			"--no-compile", "--no-cache-dir", "--disable-pip-version-check",
			"--no-input", "--no-warn-script-location", "--quiet"); err != nil {
			return nil, err
		}
		if err := scrubPython(target); err != nil {
			return nil, err
		}
		if err := s.addDir(target, pythonDeps, target); err != nil {
			return nil, err
		}
	case v1alpha1.RuntimeNodeJS:
		// --install-links copies local (file:) dependencies instead of
		// linking them out of node_modules; --ignore-scripts keeps a
		// dependency's install script from running on the build machine.
		if err := runInstaller(ictx, srcDir, strings.Join(p.deps.lockNames, " and "), "npm", "ci",
			"--omit=dev", "--ignore-scripts", "--install-links", "--no-audit", "--no-fund",
			"--loglevel=error"); err != nil {
			return nil, err
		}
		nm := filepath.Join(srcDir, "node_modules")
		if _, err := os.Stat(nm); err == nil {
			if err := s.addDir(nm, nodeDeps, srcDir); err != nil {
				return nil, err
			}
		}
	}
	l, err := b.cache.writeLayer(s, t, mt)
	if err != nil {
		return nil, err
	}
	if err := b.cache.putJSON("layers", key, layerRecord{Digest: l.digest, DiffID: l.diffID, Size: l.size, MediaType: mt}); err != nil {
		return nil, err
	}
	return l, nil
}

// runInstaller runs a package manager in dir and turns a failure into an
// error that repeats the end of its output.
func runInstaller(ctx context.Context, dir, what string, tool string, args ...string) error {
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Errorf("installing %s needs %s, which is not installed on this machine", what, tool)
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "PIP_ROOT_USER_ACTION=ignore", "npm_config_update_notifier=false")
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("installing %s: %s took longer than %s: %w", what, tool, installTimeout, ctx.Err())
		}
		tail := out.Bytes()
		if len(tail) > maxInstallOutput {
			tail = tail[len(tail)-maxInstallOutput:]
		}
		return fmt.Errorf("installing the dependencies in %s failed (%s %s: %v):\n%s\nfix %s and build again", what, tool, args[0], err, strings.TrimRight(string(tail), "\n"), what)
	}
	return nil
}

// scrubPython removes what pip writes that depends on the machine:
// direct_url.json records the absolute path a local requirement was
// installed from, and byte-code caches hold the host interpreter's
// timestamps.
func scrubPython(target string) error {
	entries, err := os.ReadDir(target)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".dist-info") {
			continue
		}
		info := filepath.Join(target, e.Name())
		if err := os.Remove(filepath.Join(info, "direct_url.json")); err != nil && !os.IsNotExist(err) {
			return err
		}
		record := filepath.Join(info, "RECORD")
		data, err := os.ReadFile(record)
		if err != nil {
			continue
		}
		var kept []string
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, e.Name()+"/direct_url.json,") {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(record, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			return err
		}
	}
	return filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "__pycache__" {
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		return err
	})
}

// copyToHost writes the source files to dir on the host, for tools that
// need a real folder.
func copyToHost(fsys fs.FS, files []sourceFile, dir string) error {
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.Path))
		if f.Dir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(fsys, f.Real, dst, f.Exec); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(fsys fs.FS, name, dst string, exec bool) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	mode := os.FileMode(0o644)
	if exec {
		mode = 0o755
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

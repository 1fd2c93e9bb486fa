package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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

// installKillWait is how long a killed installer's output may stay open.
const installKillWait = 5 * time.Second

// installTimeout bounds one install; a hung download must not hold a
// build (and its lock) forever.
const installTimeout = 10 * time.Minute

// planDeps finds the function's dependency declaration. Python:
// requirements.txt. Node.js: package.json with dependencies, which then
// needs package-lock.json (or npm-shrinkwrap.json): without a lock the
// install would pick whatever versions are newest that day, and two builds
// of one commit would differ.
//
// The key holds the lock files, the installer's version, the platform and
// the base (packages with native code are built for them), and, when the
// declaration names anything inside the function's folder (a wheel, a
// "file:" package), every file of the folder: which of them an install
// reads cannot be told without running it.
func (b *builder) planDeps(ctx context.Context, fsys fs.FS, rt string, files []sourceFile, base *baseImage) (*depsPlan, error) {
	k := &keyBuilder{}
	k.add("ferry deps v1 %s", rt)
	k.add("platform %s base %s", b.opts.platform.String(), base.digestString())
	p := &depsPlan{runtime: rt}
	var local bool
	switch rt {
	case v1alpha1.RuntimePython:
		req, ok := findFile(files, "requirements.txt")
		if !ok {
			return nil, nil
		}
		p.lockNames = []string{"requirements.txt"}
		k.add("lock %s %s", req.Sum, req.Path)
		text, err := fs.ReadFile(fsys, req.Real)
		if err != nil {
			return nil, err
		}
		local = namesLocalPython(string(text))
		if err := checkPythonRequirements(req.Path, string(text)); err != nil {
			return nil, err
		}
		v, err := b.tools.version(ctx, "python3", "-c", "import sys, pip; print('pip', pip.__version__, 'python', '.'.join(map(str, sys.version_info[:3])))")
		if err != nil {
			return nil, fmt.Errorf("requirements.txt needs python3 with pip to install: %w", err)
		}
		k.add("installer %s", v)
	case v1alpha1.RuntimeNodeJS:
		pkg, ok := findFile(files, "package.json")
		if !ok {
			return nil, nil
		}
		data, err := fs.ReadFile(fsys, pkg.Real)
		if err != nil {
			return nil, err
		}
		lock, ok := findFile(files, "package-lock.json")
		if !ok {
			lock, ok = findFile(files, "npm-shrinkwrap.json")
		}
		if !ok {
			// Without a lock, only a package.json that needs nothing
			// installs reproducibly.
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
		local = strings.Contains(string(data), `"file:`) || strings.Contains(string(data), `"link:`)
		v, err := b.tools.version(ctx, "npm", "--version")
		if err != nil {
			return nil, fmt.Errorf("package.json needs npm to install: %w", err)
		}
		nv, err := b.tools.version(ctx, "node", "--version")
		if err != nil {
			return nil, fmt.Errorf("package.json needs node to install: %w", err)
		}
		k.add("installer npm %s node %s", v, nv)
	default:
		return nil, nil
	}
	if local {
		k.files("local", files)
	}
	if host := (v1.Platform{OS: "linux", Architecture: runtime.GOARCH}); b.opts.platform.OS != host.OS || b.opts.platform.Architecture != host.Architecture {
		return nil, fmt.Errorf("installing %s for %s on a %s machine is not supported: pip and npm install for the machine they run on; build on a %s machine", strings.Join(p.lockNames, " and "), b.opts.platform, host, b.opts.platform)
	}
	p.key = k.sum()
	return p, nil
}

// checkPythonRequirements refuses what pip could only install by building
// it, which runs code of the repository's choosing as ferry: a local
// folder or archive, an editable install, a VCS URL, and --no-binary.
// Wheels (from an index, a --find-links folder or a path to a .whl) need
// no code run: pip is called with --only-binary=:all: as well.
func checkPythonRequirements(name, text string) error {
	for i, line := range requirementLines(text) {
		why := ""
		switch {
		case line == "-e" || strings.HasPrefix(line, "-e ") || strings.HasPrefix(line, "--editable"):
			why = "an editable install is built by running its setup code"
		case strings.HasPrefix(line, "--no-binary") || strings.HasPrefix(line, "--prefer-binary") || strings.HasPrefix(line, "--use-pep517") || strings.HasPrefix(line, "--no-build-isolation"):
			why = "ferry installs wheels only, so that no package's setup code runs"
		case strings.HasPrefix(line, "-"):
			continue // an option; pip refuses what it does not know
		case strings.Contains(line, "git+") || strings.Contains(line, "hg+") || strings.Contains(line, "svn+") || strings.Contains(line, "bzr+"):
			why = "a package from version control is built by running its setup code"
		case strings.HasSuffix(line, ".whl") || strings.Contains(line, ".whl#") || strings.Contains(line, ".whl "):
			continue
		case strings.HasPrefix(line, ".") || strings.HasPrefix(line, "/") || strings.HasPrefix(line, "file:") ||
			strings.HasSuffix(line, ".tar.gz") || strings.HasSuffix(line, ".zip") || strings.Contains(line, " @ file:"):
			why = "a local folder or a source archive is built by running its setup code"
		default:
			continue
		}
		return fmt.Errorf("%s:%d: %q: %s, which ferry does not do outside the sandbox; build a wheel and name the .whl (or put it in a --find-links folder), or copy the code into the function's folder", name, i+1, line, why)
	}
	return nil
}

// installerEnv is what pip and npm get of ferry's environment: where
// programs and caches are, the locale, proxies and the installers' own
// settings; never ferry's tokens or secrets.
func installerEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "PATH" || name == "HOME" || name == "TMPDIR" || name == "LANG" || name == "TZ",
			strings.HasPrefix(name, "LC_"),
			strings.HasPrefix(name, "PYENV"),
			strings.HasPrefix(name, "PIP_"),
			strings.HasPrefix(strings.ToLower(name), "npm_config_"),
			strings.EqualFold(name, "HTTP_PROXY") || strings.EqualFold(name, "HTTPS_PROXY") || strings.EqualFold(name, "NO_PROXY"),
			name == "SSL_CERT_FILE" || name == "SSL_CERT_DIR" || name == "REQUESTS_CA_BUNDLE":
			out = append(out, kv)
		}
	}
	return out
}

// requirementLines yields the lines of a requirements file that say
// something, comments cut off, each with its index (line number - 1).
func requirementLines(text string) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for i, line := range strings.Split(text, "\n") {
			line = strings.TrimSpace(line)
			if j := strings.Index(line, " #"); j >= 0 {
				line = strings.TrimSpace(line[:j])
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !yield(i, line) {
				return
			}
		}
	}
}

// namesLocalPython reports whether a requirements file refers to anything
// but packages from an index: a path, a file: or VCS URL, an editable
// install, a link folder or another requirements file.
func namesLocalPython(text string) bool {
	for _, line := range requirementLines(text) {
		for _, marker := range []string{"/", "\\", "file:", "git+", "hg+", "svn+", "bzr+", ".whl", ".tar.gz", ".zip"} {
			if strings.Contains(line, marker) {
				return true
			}
		}
		for _, opt := range []string{".", "-e", "--editable", "-f", "--find-links", "-r", "--requirement", "-c", "--constraint"} {
			if line == opt || strings.HasPrefix(line, opt+" ") || strings.HasPrefix(line, opt+"=") {
				return true
			}
		}
	}
	return false
}

// toolVersions remembers the version of each installer, on disk and in
// memory: asking pip takes most of a second, which a no-op build must not
// pay. An entry is keyed by the program's path, size and modification
// time, so an upgrade is noticed.
type toolVersions struct {
	cache *cache
	mu    sync.Mutex
	known map[string]string
}

// version returns what the tool prints for args; a tool that is not
// installed is an error that says so.
func (t *toolVersions) version(ctx context.Context, tool string, args ...string) (string, error) {
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("%s is not installed on this machine; install it (hack/deps.sh does)", tool)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	info, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	id := (&keyBuilder{lines: append([]string{real, fmt.Sprint(info.Size()), info.ModTime().UTC().String()}, args...)}).sum()
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.known[id]; ok {
		return v, nil
	}
	var rec struct{ Version string }
	if ok, err := t.cache.getJSON("tools", id, &rec); err == nil && ok && rec.Version != "" {
		t.known[id] = rec.Version
		return rec.Version, nil
	}
	out, err := exec.CommandContext(ctx, real, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", tool, strings.Join(args, " "), err)
	}
	v := strings.TrimSpace(string(out))
	t.known[id] = v
	if err := t.cache.putJSON("tools", id, struct{ Version string }{v}); err != nil {
		return "", err
	}
	return v, nil
}

// depsLayer returns the function's dependency layer, from the cache when
// its key is known, else by running the installer in a scratch copy of
// the source and writing what it installed as a layer.
func (b *builder) depsLayer(ctx context.Context, p *plan, work string, mt types.MediaType) (*builtLayer, error) {
	key := (&keyBuilder{lines: []string{p.deps.key, "media " + string(mt)}}).sum()
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
			// why: wheels only, so pip never builds a package, which
			// runs its setup code (a repository's own, for a local
			// folder) as ferry, outside the sandbox.
			"--only-binary=:all:",
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
	l, err := b.cache.writeLayer(s, sharedLayerTime, mt)
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
	// The installer runs in its own process group, all of which a
	// cancelled build kills: pip and npm start children (builds of source
	// packages) that would otherwise outlive it and hold its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = installKillWait
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(installerEnv(os.Environ()), "PIP_ROOT_USER_ACTION=ignore", "npm_config_update_notifier=false")
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
// installed from; scripts in bin/ start with the path of the build
// machine's interpreter, which the image does not have; byte-code caches
// hold the host interpreter's timestamps.
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
			if !strings.HasPrefix(line, e.Name()+"/direct_url.json,") && !strings.HasPrefix(line, "../../bin/") && !strings.HasPrefix(line, "bin/") {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(record, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(filepath.Join(target, "bin")); err != nil {
		return err
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

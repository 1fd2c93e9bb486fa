package build

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferrycd/ferry/build/invoker"
	"github.com/ferrycd/ferry/manifests/v1alpha1"
)

// Annotations ferry puts on the images it builds, beside the OCI ones.
const (
	// AnnotationRuntime names the function's runtime.
	AnnotationRuntime = "dev.ferry.runtime"
	// AnnotationHostInterpreter names the interpreter an image built on
	// scratch needs from the host that runs it (python3, node).
	AnnotationHostInterpreter = "dev.ferry.host-interpreter"
)

// sharedLayerTime is the mtime in the layers that do not come from the
// commit: the dependencies and ferry's invoker. With the commit's time they
// would change with every commit, and a one-line edit would push them and
// install the dependencies again; with a fixed time they are the same bytes
// for as long as their inputs are, and the registry already has them.
var sharedLayerTime = time.Unix(0, 0).UTC()

// Paths inside an image; see package invoker for the layout.
const (
	functionDir = "ferry/function"
	goBinary    = "ferry/bin/function"
	pythonDeps  = "ferry/deps"
	nodeDeps    = "ferry/node_modules"
	// imageUser is the user a function runs as: not root, and the number
	// distroless images use for "nonroot", so it exists in most bases.
	imageUser = "65532:65532"
)

type builder struct {
	opts   *options
	repo   name.Repository
	cache  *cache
	remote []remote.Option
	tools  *toolVersions

	// baseMu guards bases, the base images resolved by this builder.
	baseMu sync.Mutex
	bases  map[string]*baseImage
}

var _ Builder = (*builder)(nil)

// plan is everything a build needs, known before anything is built.
type plan struct {
	fn      *v1alpha1.Function
	src     fs.FS
	runtime string
	files   []sourceFile // the function's folder (go: the module's)
	source  string       // the function's folder in src, cleaned
	modRoot string       // go: the module's folder in src ("" without go.mod)
	deps    *depsPlan    // python, nodejs: what to install, or nil
	base    *baseImage
	key     string
	ref     name.Repository
}

// Build implements Builder.
func (b *builder) Build(ctx context.Context, src fs.FS, f *v1alpha1.Function, info Info) (*Image, error) {
	img, err := b.build(ctx, src, f, info)
	if err != nil {
		report(info, Progress{Function: f.Name, Phase: PhaseFailed})
		return nil, fmt.Errorf("function %s: %w", f.Name, err)
	}
	return img, nil
}

func report(info Info, p Progress) {
	if info.Progress != nil {
		info.Progress(p)
	}
}

func (b *builder) build(ctx context.Context, src fs.FS, f *v1alpha1.Function, info Info) (*Image, error) {
	t, err := stamp(info)
	if err != nil {
		return nil, err
	}
	p, err := b.plan(ctx, src, f)
	if err != nil {
		return nil, err
	}
	unlock, err := b.cache.lock(ctx, p.key)
	if err != nil {
		return nil, err
	}
	defer unlock()

	// A known key is the image built before, if the registry still has it.
	var rec imageRecord
	if ok, err := b.cache.getJSON("images", p.key, &rec); err != nil {
		return nil, err
	} else if ok {
		ref := p.ref.Digest(rec.Digest.String())
		has, err := b.headDigest(ctx, ref)
		if err != nil {
			return nil, err
		}
		if has {
			report(info, Progress{Function: f.Name, Phase: PhaseCached})
			return &Image{Function: f.Name, Ref: ref.String(), Digest: rec.Digest, Key: p.key, Cached: true}, nil
		}
	}

	report(info, Progress{Function: f.Name, Phase: PhaseBuilding})
	work, err := os.MkdirTemp(filepath.Join(b.cache.dir, "tmp"), "build-*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	// why: before the image, so code that does not parse never becomes
	// a release that fails only when it starts.
	if err := b.checkSyntax(ctx, p, work); err != nil {
		return nil, err
	}
	img, err := b.assemble(ctx, p, work, t, info)
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ref := p.ref.Digest(digest.String())
	report(info, Progress{Function: f.Name, Phase: PhasePushing})
	if err := b.push(ctx, ref, img, func(done, total int64) {
		report(info, Progress{Function: f.Name, Phase: PhasePushing, Pushed: done, Total: total})
	}); err != nil {
		return nil, err
	}
	if err := b.cache.putJSON("images", p.key, imageRecord{Key: p.key, Digest: digest, Runtime: p.runtime, Revision: info.Revision}); err != nil {
		return nil, err
	}
	report(info, Progress{Function: f.Name, Phase: PhaseDone})
	return &Image{Function: f.Name, Ref: ref.String(), Digest: digest, Key: p.key}, nil
}

// plan reads the function's inputs and computes its content key: the
// runtime, the handler, every file of the source with its mode, the
// dependency lock, the base digest, the platform and the builder's
// version (for Go, the toolchain's too).
func (b *builder) plan(ctx context.Context, src fs.FS, f *v1alpha1.Function) (*plan, error) {
	spec := f.Spec
	p := &plan{fn: f, src: src, runtime: spec.Runtime}
	p.ref = b.repo.Registry.Repo(b.repo.RepositoryStr() + "/" + f.Name)
	source := path.Clean(spec.Source)
	p.source = source
	k := &keyBuilder{}
	k.add("ferry build key v1")
	k.add("builder %s %s", builderVersion, runtime.Version())
	k.add("platform %s", b.opts.platform.String())
	k.add("runtime %s", spec.Runtime)
	k.add("handler %q", spec.Handler)
	inv, err := invokerSum(spec.Runtime)
	if err != nil {
		return nil, err
	}
	k.add("invoker %s", inv)
	switch spec.Runtime {
	case v1alpha1.RuntimeGo:
		root, ok, err := goModuleRoot(src, source)
		if err != nil {
			return nil, err
		}
		walk := source
		if ok {
			p.modRoot, walk = root, root
		}
		p.files, err = readSource(ctx, src, walk, goSkip)
		if err != nil {
			return nil, err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(source, walk), "/")
		k.add("go package %q in %q", rel, walk)
		tool, err := loadGoTool(ctx)
		if err != nil {
			return nil, err
		}
		tc := tool.version
		k.add("go toolchain %s env %q", tc, b.opts.goEnv)
		k.files("src", p.files)
	case v1alpha1.RuntimePython, v1alpha1.RuntimeNodeJS:
		p.files, err = readSource(ctx, src, source, codeSkip(spec.Runtime))
		if err != nil {
			return nil, err
		}
		if err := checkHandler(spec.Runtime, spec.Handler, spec.Source, p.files); err != nil {
			return nil, err
		}
		if p.base, err = b.resolveBase(ctx, spec.Runtime); err != nil {
			return nil, err
		}
		p.deps, err = b.planDeps(ctx, src, spec.Runtime, p.files, p.base)
		if err != nil {
			return nil, err
		}
		if p.deps != nil {
			k.add("deps %s", p.deps.key)
		}
		k.add("%s", b.checkerKey(spec.Runtime))
		k.files("src", p.files)
	default:
		return nil, fmt.Errorf("runtime %q is not supported (use go, python or nodejs)", spec.Runtime)
	}
	if p.base == nil {
		if p.base, err = b.resolveBase(ctx, spec.Runtime); err != nil {
			return nil, err
		}
	}
	k.add("base %s", p.base.digestString())
	p.key = k.sum()
	return p, nil
}

// invokerSums holds invokerSum per runtime: its inputs are compiled into
// ferry, so it is worked out once per process, not on every build.
var invokerSums sync.Map // runtime → func() (string, error)

// invokerSum hashes ferry's own code that goes into an image of the
// runtime (the invoker, or the Go main and SDK), so that a ferry with a
// changed invoker never returns an image made with the old one.
func invokerSum(rt string) (string, error) {
	f, _ := invokerSums.LoadOrStore(rt, sync.OnceValues(func() (string, error) { return hashInvoker(rt) }))
	return f.(func() (string, error))()
}

func hashInvoker(rt string) (string, error) {
	k := &keyBuilder{}
	if rt == v1alpha1.RuntimeGo {
		main, err := invoker.GoMain("ferry.local/function", "Handle")
		if err != nil {
			return "", err
		}
		k.add("main %x", sha256.Sum256(main))
		err = fs.WalkDir(goSDK, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := fs.ReadFile(goSDK, p)
			k.add("sdk %x %s", sha256.Sum256(data), p)
			return err
		})
		return k.sum(), err
	}
	files, err := invoker.Files(rt)
	if err != nil {
		return "", err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		k.add("%x %s", sha256.Sum256(files[p]), p)
	}
	return k.sum(), nil
}

// goSkip leaves test files out of a Go build's inputs: the go command
// does not compile them into the binary, so editing a test must not make a
// new image.
func goSkip(rel string, isDir bool) bool {
	return !isDir && strings.HasSuffix(rel, "_test.go")
}

// codeSkip leaves out of the code layer what a checkout may hold but the
// image must not: Python's byte-code caches (written by the host's
// interpreter, different on every machine) and, for Node.js, node_modules,
// which the dependency layer provides from the lock file.
func codeSkip(rt string) func(string, bool) bool {
	return func(rel string, isDir bool) bool {
		base := path.Base(rel)
		switch rt {
		case v1alpha1.RuntimePython:
			return (isDir && base == "__pycache__") || (!isDir && strings.HasSuffix(base, ".pyc"))
		case v1alpha1.RuntimeNodeJS:
			return isDir && base == "node_modules" && rel == "node_modules"
		}
		return false
	}
}

// checkHandler fails a build whose handler's file is not in the source,
// which would otherwise build fine and fail only when the image starts.
func checkHandler(rt, handler, source string, files []sourceFile) error {
	i := strings.LastIndex(handler, ".")
	if i <= 0 {
		return fmt.Errorf("handler %q is not <file>.<function>", handler)
	}
	var candidates []string
	if rt == v1alpha1.RuntimePython {
		mod := strings.ReplaceAll(handler[:i], ".", "/")
		candidates = []string{mod + ".py", mod + "/__init__.py"}
	} else {
		candidates = []string{handler[:i] + ".js", handler[:i] + ".mjs", handler[:i] + ".cjs"}
	}
	for _, c := range candidates {
		if _, ok := findFile(files, c); ok {
			return nil
		}
	}
	return fmt.Errorf("handler %q needs %s in %s; create it or set spec.handler", handler, strings.Join(candidates, " or "), source)
}

// nameOptions are the options to parse ref with: --insecure lets only the
// registry pushed to be reached over plain HTTP.
func (b *builder) nameOptions(ref string) []name.Option {
	if b.opts.insecure {
		if r, err := name.ParseReference(ref); err == nil && r.Context().RegistryStr() == b.repo.RegistryStr() {
			return []name.Option{name.Insecure}
		}
	}
	return nil
}

// layerMediaType is the layer type that matches the base's manifest: OCI
// layers on an OCI (or no) base, Docker layers on a Docker base, since some
// registries refuse a manifest that mixes the two.
func layerMediaType(base v1.Image) (types.MediaType, error) {
	if base == nil {
		return types.OCILayer, nil
	}
	mt, err := base.MediaType()
	if err != nil {
		return "", err
	}
	if mt == types.DockerManifestSchema2 {
		return types.DockerLayer, nil
	}
	return types.OCILayer, nil
}

// assemble builds the layers and the image. The image is not pushed.
func (b *builder) assemble(ctx context.Context, p *plan, work string, t time.Time, info Info) (v1.Image, error) {
	base, err := p.base.image(ctx)
	if err != nil {
		return nil, err
	}
	mt, err := layerMediaType(base)
	if err != nil {
		return nil, fmt.Errorf("base image %s: %w", p.base.ref, err)
	}
	type part struct {
		layer     v1.Layer
		createdBy string
	}
	var parts []part
	add := func(l v1.Layer, createdBy string) { parts = append(parts, part{l, createdBy}) }

	var entrypoint, env []string
	switch p.runtime {
	case v1alpha1.RuntimeGo:
		bin := filepath.Join(work, "function")
		// The plan walked and hashed the module already; the compile
		// copies those files rather than walking again.
		gb := goBuild{Src: p.src, Source: p.source, Handler: p.fn.Spec.Handler, GOOS: b.opts.platform.OS, GOARCH: b.opts.platform.Architecture, Out: bin, Env: b.opts.goEnv, files: p.files, modRoot: p.modRoot}
		if err := gb.compile(ctx); err != nil {
			return nil, err
		}
		s := newLayerSpec()
		if err := s.addHostFile(goBinary, bin, true); err != nil {
			return nil, err
		}
		l, err := b.tempLayer(work, s, t, mt)
		if err != nil {
			return nil, err
		}
		add(l, "ferry build: go function "+p.fn.Spec.Handler+" with ferry's main")
		entrypoint = []string{"/" + goBinary}
	default:
		if p.deps != nil {
			l, err := b.depsLayer(ctx, p, work, mt)
			if err != nil {
				return nil, err
			}
			add(l, "ferry build: dependencies from "+strings.Join(p.deps.lockNames, ", "))
		}
		files, err := invoker.Files(p.runtime)
		if err != nil {
			return nil, err
		}
		s := newLayerSpec()
		for name, data := range files {
			s.addBytes(name, data, false)
		}
		l, err := b.tempLayer(work, s, sharedLayerTime, mt)
		if err != nil {
			return nil, err
		}
		add(l, "ferry build: ferry's "+p.runtime+" invoker")
		s = newLayerSpec()
		s.add(layerFile{Path: functionDir, Dir: true})
		for _, f := range p.files {
			s.addFS(p.src, functionDir, f)
		}
		l, err = b.tempLayer(work, s, t, mt)
		if err != nil {
			return nil, err
		}
		add(l, "ferry build: code of "+p.fn.Spec.Source)
		entrypoint, err = invoker.Entrypoint(p.runtime)
		if err != nil {
			return nil, err
		}
		env = append(env, "FERRY_HANDLER="+p.fn.Spec.Handler)
		if p.runtime == v1alpha1.RuntimePython {
			env = append(env, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
		} else {
			env = append(env, "NODE_ENV=production")
		}
	}

	img := base
	if img == nil {
		img = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	}
	created := v1.Time{Time: t}
	for _, pt := range parts {
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     pt.layer,
			MediaType: mt,
			History:   v1.History{Created: created, CreatedBy: pt.createdBy, Comment: "ferry " + BuilderVersion},
		})
		if err != nil {
			return nil, err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base image %s: %w", p.base.ref, err)
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.Architecture = b.opts.platform.Architecture
	cfg.OS = b.opts.platform.OS
	cfg.Variant = b.opts.platform.Variant
	cfg.Author = ""
	cfg.Container = ""
	cfg.DockerVersion = ""
	cfg.Config.Entrypoint = entrypoint
	cfg.Config.Cmd = nil
	cfg.Config.Env = mergeEnv(cfg.Config.Env, env)
	cfg.Config.WorkingDir = "/" + functionDir
	cfg.Config.User = imageUser
	cfg.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, b.annotations(p, t, info)).(v1.Image), nil
}

// annotations are the manifest's OCI annotations: where the source came
// from, the base, and ferry's own.
func (b *builder) annotations(p *plan, t time.Time, info Info) map[string]string {
	a := map[string]string{
		"org.opencontainers.image.created": t.UTC().Format(time.RFC3339),
		AnnotationRuntime:                  p.runtime,
	}
	if info.SourceURL != "" {
		a["org.opencontainers.image.source"] = info.SourceURL
	}
	if info.Revision != "" {
		a["org.opencontainers.image.revision"] = info.Revision
	}
	if !p.base.scratch() {
		a["org.opencontainers.image.base.name"] = p.base.ref
		a["org.opencontainers.image.base.digest"] = p.base.digest.DigestStr()
	} else if ep, err := invoker.Entrypoint(p.runtime); err == nil {
		// An invoker's entrypoint starts with its interpreter, which an
		// image on scratch needs from the host (a Go image has none).
		a[AnnotationHostInterpreter] = ep[0]
	}
	return a
}

// mergeEnv sets each NAME=value of add over base, keeping base's order.
func mergeEnv(base, add []string) []string {
	out := append([]string(nil), base...)
	for _, kv := range add {
		name, _, _ := strings.Cut(kv, "=")
		replaced := false
		for i, old := range out {
			if n, _, _ := strings.Cut(old, "="); n == name {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

// tempLayer writes a layer that no later build will reuse into the build's
// own folder.
func (b *builder) tempLayer(work string, s *layerSpec, t time.Time, mt types.MediaType) (v1.Layer, error) {
	return writeTempLayer(work, s, t, mt)
}

// CheckPortable says whether an image can run on a target that brings no
// interpreter of its own (Kubernetes): an image built on scratch for
// Python or Node.js cannot. annotations are the image manifest's.
func CheckPortable(function string, annotations map[string]string) error {
	if it := annotations[AnnotationHostInterpreter]; it != "" {
		rt := annotations[AnnotationRuntime]
		return fmt.Errorf("function %s: its image was built on scratch and needs the host's %s, which only the embedded target has; build it with a base image (ferry build --base %s=%s) to deploy it here", function, it, rt, DefaultBases[rt])
	}
	return nil
}
